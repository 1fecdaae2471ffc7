//! BGP-4 (RFC 4271) for ecmpd.
//!
//! [`wire`] frames a TCP byte stream into BGP messages and decodes/encodes
//! every message type; UPDATE bodies are framed raw and decoded with the
//! session's negotiated context by [`wire::decode_update`]. [`fsm`] is the
//! session state machine (RFC 4271 section 8) as a pure function of events
//! and time. [`session`] is the tokio glue around it: listeners with dynamic
//! neighbours from prefix ranges, outbound dials, TCP MD5 and GTSM, one
//! instance task owning every FSM. [`speaker`] is an in-process emulated
//! MetalLB native speaker for tests and the demo.
#![warn(missing_docs)]

pub mod fsm;
pub mod session;
pub mod speaker;
pub mod wire;
