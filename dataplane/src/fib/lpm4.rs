//! STUB (being written): IPv4 longest-prefix match.
