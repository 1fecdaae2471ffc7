//! The `hashing` crate: flow keys, flow hash functions, ECMP nexthop
//! selectors and the maths of how many flows a change of the member set
//! moves. Pure computation: no I/O, no clock, deterministic for a given seed.

pub mod disrupt;
pub mod hash;
pub mod key;
pub mod select;

pub use hash::{FlowHasher, HashFunction};
pub use key::{FieldMask, FieldSelection, FlowKey, HashFields, HashInput};
pub use select::{Algorithm, AnySelector, Member, MemberId, Nanos, Selector, SelectorParams};
