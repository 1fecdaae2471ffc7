//! The data plane: packet views and flow keys, the FIB (longest-prefix match
//! for IPv4 and IPv6), the flow tracker that measures breakage, and the
//! traffic models (synthetic flow populations and flows read from pcap files)
//! that the comparison report and the emulator feed through the hashing code.

pub mod emulator;
pub mod fasthash;
pub mod fib;
pub mod io;
pub mod neigh;
pub mod packet;
pub mod pipeline;
pub mod tracker;
pub mod traffic;
