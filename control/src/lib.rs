//! The control plane: BGP sessions, BFD, the RIB and multipath selection, and
//! the writer that programs the data plane.
//!
//! - [`bgp::wire`]: the BGP-4 codec: framing, OPEN with capabilities,
//!   UPDATE with every path attribute and RFC 7606 error handling,
//!   NOTIFICATION, KEEPALIVE, ROUTE-REFRESH.
//! - [`bgp::fsm`]: the RFC 4271 session state machine as a pure function of
//!   events and time; [`bgp::session`] drives it over TCP;
//!   [`bgp::speaker`] emulates a MetalLB native speaker.
//! - [`bfd`]: RFC 5880/5881 packets, sessions and a UDP runner.
//! - [`api`]: the management HTTP/JSON API and the views it returns.
//! - [`rib`]: Adj-RIBs-In, the decision process with multipath, import
//!   policy, graceful-restart stale paths, and each prefix's multipath set
//!   turned into FIB updates.
//! - [`config`]: the router's TOML configuration, checked with the line and
//!   field of every fault.

pub mod api;
pub mod bfd;
pub mod bgp;
pub mod config;
mod reader;
pub mod rib;
pub mod router;
