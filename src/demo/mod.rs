//! `ecmpd demo`: the whole router on loopback.

pub mod live;
