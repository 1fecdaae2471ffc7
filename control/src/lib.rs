//! The control plane: BGP sessions, BFD, the RIB and multipath selection, and
//! the writer that programs the data plane.
//!
//! So far only the BGP wire codec exists: [`bgp::wire`] frames a TCP byte
//! stream into BGP messages and decodes and encodes OPEN (with capabilities),
//! KEEPALIVE, NOTIFICATION and ROUTE-REFRESH, each refusal carrying the
//! NOTIFICATION that RFC 4271 section 6 calls for. UPDATE decoding, sessions,
//! BFD, the RIB and the FIB writer come in later steps.

pub mod bfd;
pub mod bgp;
pub mod config;
