//! The control plane: BGP sessions, BFD, the RIB and multipath selection, and
//! the writer that programs the data plane.
//!
//! So far: [`bgp::wire`] frames a TCP byte
//! stream into BGP messages and decodes and encodes OPEN (with capabilities),
//! KEEPALIVE, NOTIFICATION and ROUTE-REFRESH, each refusal carrying the
//! NOTIFICATION that RFC 4271 section 6 calls for. [`rib`] holds every
//! peer's paths, runs the decision process with multipath and turns each
//! prefix's multipath set into FIB updates. Sessions, BFD and the FIB writer
//! task come in later steps.

pub mod bgp;
pub mod rib;
