//! The prefix table: a hash map per family with compact keys (8 octets for
//! IPv4, 17 for IPv6 instead of an 18-octet `Prefix` padded in every
//! bucket), since a full table holds about a million entries and the map
//! holds up to twice as many buckets.

use std::net::{Ipv4Addr, Ipv6Addr};

use dataplane::fasthash::FastMap;
use dataplane::fib::table::Prefix;

/// A map from prefix to `V`.
#[derive(Debug)]
pub(crate) struct PrefixTable<V> {
    v4: FastMap<(u32, u8), V>,
    v6: FastMap<([u8; 16], u8), V>,
}

impl<V> Default for PrefixTable<V> {
    fn default() -> Self {
        PrefixTable {
            v4: FastMap::default(),
            v6: FastMap::default(),
        }
    }
}

impl<V> PrefixTable<V> {
    pub fn get(&self, p: &Prefix) -> Option<&V> {
        match *p {
            Prefix::V4(a, l) => self.v4.get(&(u32::from(a), l)),
            Prefix::V6(a, l) => self.v6.get(&(a.octets(), l)),
        }
    }

    pub fn get_mut(&mut self, p: &Prefix) -> Option<&mut V> {
        match *p {
            Prefix::V4(a, l) => self.v4.get_mut(&(u32::from(a), l)),
            Prefix::V6(a, l) => self.v6.get_mut(&(a.octets(), l)),
        }
    }

    /// The entry for `p`, created empty if missing.
    pub fn entry(&mut self, p: Prefix) -> &mut V
    where
        V: Default,
    {
        match p {
            Prefix::V4(a, l) => self.v4.entry((u32::from(a), l)).or_default(),
            Prefix::V6(a, l) => self.v6.entry((a.octets(), l)).or_default(),
        }
    }

    pub fn remove(&mut self, p: &Prefix) -> Option<V> {
        match *p {
            Prefix::V4(a, l) => self.v4.remove(&(u32::from(a), l)),
            Prefix::V6(a, l) => self.v6.remove(&(a.octets(), l)),
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Prefix, &V)> + '_ {
        let v4 = self
            .v4
            .iter()
            .map(|(&(a, l), v)| (Prefix::V4(Ipv4Addr::from(a), l), v));
        let v6 = self
            .v6
            .iter()
            .map(|(&(a, l), v)| (Prefix::V6(Ipv6Addr::from(a), l), v));
        v4.chain(v6)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Prefix, &mut V)> + '_ {
        let v4 = self
            .v4
            .iter_mut()
            .map(|(&(a, l), v)| (Prefix::V4(Ipv4Addr::from(a), l), v));
        let v6 = self
            .v6
            .iter_mut()
            .map(|(&(a, l), v)| (Prefix::V6(Ipv6Addr::from(a), l), v));
        v4.chain(v6)
    }
}
