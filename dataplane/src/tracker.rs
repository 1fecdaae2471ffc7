//! STUB (being written): the flow tracker.
