//! STUB (being written): IPv6 longest-prefix match.
