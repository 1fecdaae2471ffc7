//! STUB (being written): the neighbour table.
