//! The data plane. For now it holds the traffic models (synthetic flow
//! populations and flows read from pcap files) that the comparison report and,
//! later, the emulator feed through the hashing code.

pub mod packet;
pub mod traffic;
