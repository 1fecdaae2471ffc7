//! The forwarding information base: longest-prefix match for IPv4 and IPv6
//! with lock-free lookups while one writer updates. A route's value is a
//! nexthop-group id (nexthop groups and the writer API that ties routes to
//! groups come next).

pub mod lpm4;
pub mod lpm6;
pub mod table;

/// Why a FIB update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FibError {
    #[error("prefix length {len} is out of range for {family} (0 to {max})")]
    PrefixLength {
        family: &'static str,
        len: u8,
        max: u8,
    },
    #[error("route value {value} is out of range (at most {max})")]
    ValueTooLarge { value: u32, max: u32 },
    #[error("the {family} table is full: all {groups} second-level groups are in use (raise the table's group limit)")]
    OutOfGroups { family: &'static str, groups: u32 },
}
