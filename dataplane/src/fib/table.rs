//! STUB (being written): nexthop groups and the FIB writer API.
