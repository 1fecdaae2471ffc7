//! BGP-4 (RFC 4271) for ecmpd.
//!
//! Only the wire codec exists so far: [`wire`] frames a TCP byte stream into
//! BGP messages and decodes/encodes OPEN (with capabilities), KEEPALIVE,
//! NOTIFICATION and ROUTE-REFRESH. UPDATE bodies are carried as raw bytes and
//! decoded in a later step; sessions (the RFC 4271 section 8 FSM) come after.
#![warn(missing_docs)]

pub mod wire;
