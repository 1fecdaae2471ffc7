//! Flow keys and the choice of header fields that feed the flow hash.
//!
//! A [`FlowKey`] holds every field a router might hash; a [`FieldSelection`]
//! says which of them count (mirroring Linux's `fib_multipath_hash_policy` and
//! `fib_multipath_hash_fields`) and serialises them into a [`HashInput`], the
//! byte string every hash function in [`crate::hash`] consumes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Every header field a flow hash may use, for IPv4 and IPv6 alike.
///
/// Ports are zero for protocols without ports and for IP fragments (Linux never
/// hashes ports of fragments; the packet parser clears them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol (IPv4) or upper-layer next header (IPv6).
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// IPv6 flow label (20 bits); zero for IPv4.
    pub flow_label: u32,
    /// The router port the packet arrived on.
    pub ingress_port: u32,
}

impl FlowKey {
    /// A TCP flow between two addresses, the common case in tests and models.
    pub fn tcp(src: IpAddr, src_port: u16, dst: IpAddr, dst_port: u16) -> Self {
        FlowKey {
            src,
            dst,
            proto: 6,
            src_port,
            dst_port,
            flow_label: 0,
            ingress_port: 0,
        }
    }

    /// The same flow seen in the other direction.
    pub fn reversed(&self) -> Self {
        FlowKey {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            ..*self
        }
    }
}

impl Default for FlowKey {
    fn default() -> Self {
        FlowKey::tcp(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            0,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            0,
        )
    }
}

/// A set of header fields, with the bit values of Linux's
/// `net.ipv4.fib_multipath_hash_fields` for the outer header, plus ecmpd's own
/// bit for the ingress port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct FieldMask(pub u32);

impl FieldMask {
    pub const SRC_IP: FieldMask = FieldMask(0x0001);
    pub const DST_IP: FieldMask = FieldMask(0x0002);
    pub const PROTO: FieldMask = FieldMask(0x0004);
    pub const FLOW_LABEL: FieldMask = FieldMask(0x0008);
    pub const SRC_PORT: FieldMask = FieldMask(0x0010);
    pub const DST_PORT: FieldMask = FieldMask(0x0020);
    /// Not a Linux bit: ecmpd's own, for hashing on the ingress port.
    pub const INGRESS_PORT: FieldMask = FieldMask(0x0001_0000);

    /// Every bit this crate understands.
    pub const ALL: FieldMask = FieldMask(0x0001_003f);

    const NAMES: [(&'static str, FieldMask); 7] = [
        ("src-ip", FieldMask::SRC_IP),
        ("dst-ip", FieldMask::DST_IP),
        ("proto", FieldMask::PROTO),
        ("flow-label", FieldMask::FLOW_LABEL),
        ("src-port", FieldMask::SRC_PORT),
        ("dst-port", FieldMask::DST_PORT),
        ("ingress-port", FieldMask::INGRESS_PORT),
    ];

    pub const fn union(self, other: FieldMask) -> FieldMask {
        FieldMask(self.0 | other.0)
    }

    pub const fn contains(self, other: FieldMask) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for FieldMask {
    type Output = FieldMask;
    fn bitor(self, rhs: FieldMask) -> FieldMask {
        self.union(rhs)
    }
}

impl fmt::Display for FieldMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = FieldMask::NAMES
            .iter()
            .filter(|(_, bit)| self.contains(*bit))
            .map(|(name, _)| *name)
            .collect();
        f.write_str(&names.join("+"))
    }
}

/// Which fields feed the hash: the Linux policies by name, or a custom mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashFields {
    /// Source and destination address; IPv6 adds the flow label
    /// (`fib_multipath_hash_policy=0`).
    L3,
    /// The 3-tuple: protocol, source and destination address.
    L3Proto,
    /// The 5-tuple: protocol, addresses and ports (`fib_multipath_hash_policy=1`).
    L4,
    /// Any combination of fields (`fib_multipath_hash_policy=3` with
    /// `fib_multipath_hash_fields`).
    Custom(FieldMask),
}

impl HashFields {
    /// The fields this selection hashes for a flow of the given address family.
    pub fn mask(self, ipv6: bool) -> FieldMask {
        match self {
            HashFields::L3 if ipv6 => FieldMask::SRC_IP | FieldMask::DST_IP | FieldMask::FLOW_LABEL,
            HashFields::L3 => FieldMask::SRC_IP | FieldMask::DST_IP,
            HashFields::L3Proto => FieldMask::SRC_IP | FieldMask::DST_IP | FieldMask::PROTO,
            HashFields::L4 => {
                FieldMask::SRC_IP
                    | FieldMask::DST_IP
                    | FieldMask::PROTO
                    | FieldMask::SRC_PORT
                    | FieldMask::DST_PORT
            }
            HashFields::Custom(mask) => mask,
        }
    }
}

impl fmt::Display for HashFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashFields::L3 => f.write_str("l3"),
            HashFields::L3Proto => f.write_str("l3-proto"),
            HashFields::L4 => f.write_str("l4"),
            HashFields::Custom(mask) => write!(f, "custom:{mask}"),
        }
    }
}

/// The error for a field selection that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hash fields '{given}': use l3, l3-proto, l4, a Linux fib_multipath_hash_fields mask such as 0x37, or fields joined by '+' from src-ip, dst-ip, proto, flow-label, src-port, dst-port, ingress-port")]
pub struct ParseFieldsError {
    pub given: String,
}

impl FromStr for HashFields {
    type Err = ParseFieldsError;

    /// Accepts `l3`, `l3-proto` (or `3-tuple`), `l4` (or `5-tuple`), a mask as
    /// hex (`0x37`) or decimal, or field names joined by `+`, optionally after
    /// `custom:`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseFieldsError {
            given: s.to_string(),
        };
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "l3" | "2-tuple" => return Ok(HashFields::L3),
            "l3-proto" | "3-tuple" => return Ok(HashFields::L3Proto),
            "l4" | "5-tuple" => return Ok(HashFields::L4),
            _ => {}
        }
        let body = t.strip_prefix("custom:").unwrap_or(&t);
        let mask = if let Some(hex) = body.strip_prefix("0x") {
            FieldMask(u32::from_str_radix(hex, 16).map_err(|_| err())?)
        } else if body.chars().all(|c| c.is_ascii_digit()) && !body.is_empty() {
            FieldMask(body.parse().map_err(|_| err())?)
        } else {
            let mut mask = FieldMask::default();
            for part in body.split('+') {
                let bit = FieldMask::NAMES
                    .iter()
                    .find(|(name, _)| *name == part)
                    .ok_or_else(err)?
                    .1;
                mask = mask | bit;
            }
            mask
        };
        if mask.0 == 0 || mask.0 & !FieldMask::ALL.0 != 0 {
            return Err(err());
        }
        Ok(HashFields::Custom(mask))
    }
}

/// Which fields to hash, whether both directions of a flow hash alike, and the
/// order of the serialised input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldSelection {
    pub fields: HashFields,
    /// Sort addresses and ports so that a flow and its reverse hash alike.
    pub symmetric: bool,
}

impl FieldSelection {
    pub fn new(fields: HashFields) -> Self {
        FieldSelection {
            fields,
            symmetric: false,
        }
    }

    pub fn symmetric(mut self, on: bool) -> Self {
        self.symmetric = on;
        self
    }

    /// Serialise the selected fields of `key`, in network byte order, in the
    /// order RSS/Toeplitz defines: source address, destination address, source
    /// port, destination port; then protocol, flow label and ingress port.
    ///
    /// With `symmetric`, the lower (address, port) pair goes first, as Linux's
    /// `__flow_hash_consistentify` orders them.
    #[inline]
    pub fn input(&self, key: &FlowKey) -> HashInput {
        // The common case, a 5-tuple, as straight-line stores at fixed
        // offsets: a third to a half of the cost of the general walk below
        // (benches/hashing.rs, field_selection_input).
        if self.fields == HashFields::L4 {
            let (mut src, mut dst, mut sport, mut dport) =
                (key.src, key.dst, key.src_port, key.dst_port);
            if self.symmetric && (dst, dport) < (src, sport) {
                std::mem::swap(&mut src, &mut dst);
                std::mem::swap(&mut sport, &mut dport);
            }
            match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    return five_tuple::<4>(&s.octets(), &d.octets(), sport, dport, key.proto)
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    return five_tuple::<16>(&s.octets(), &d.octets(), sport, dport, key.proto)
                }
                _ => {}
            }
        }
        self.input_general(key)
    }

    /// The same bytes as [`input`](Self::input) for the IPv4 key `FlowKey {
    /// src, dst, proto, src_port, dst_port, flow_label: 0, ingress_port }`,
    /// without building the key: the packet parser's fast path hands the
    /// header fields over as they are.
    #[inline]
    pub fn input_v4(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        src_port: u16,
        dst_port: u16,
        proto: u8,
        ingress_port: u32,
    ) -> HashInput {
        if self.fields == HashFields::L4 {
            // `IpAddr` orders two IPv4 addresses as `Ipv4Addr` does.
            if self.symmetric && (dst, dst_port) < (src, src_port) {
                return five_tuple::<4>(&dst.octets(), &src.octets(), dst_port, src_port, proto);
            }
            return five_tuple::<4>(&src.octets(), &dst.octets(), src_port, dst_port, proto);
        }
        self.input_general(&FlowKey {
            src: IpAddr::V4(src),
            dst: IpAddr::V4(dst),
            proto,
            src_port,
            dst_port,
            flow_label: 0,
            ingress_port,
        })
    }

    /// Any field selection, symmetric or not, mixed families.
    fn input_general(&self, key: &FlowKey) -> HashInput {
        let ipv6 = key.src.is_ipv6() || key.dst.is_ipv6();
        let mask = self.fields.mask(ipv6);
        let (mut src, mut dst, mut sport, mut dport) =
            (key.src, key.dst, key.src_port, key.dst_port);
        if self.symmetric && (dst, dport) < (src, sport) {
            std::mem::swap(&mut src, &mut dst);
            std::mem::swap(&mut sport, &mut dport);
        }
        let mut input = HashInput::new();
        if mask.contains(FieldMask::SRC_IP) {
            input.push_addr(src);
        }
        if mask.contains(FieldMask::DST_IP) {
            input.push_addr(dst);
        }
        if mask.contains(FieldMask::SRC_PORT) {
            input.push(&sport.to_be_bytes());
        }
        if mask.contains(FieldMask::DST_PORT) {
            input.push(&dport.to_be_bytes());
        }
        if mask.contains(FieldMask::PROTO) {
            input.push(&[key.proto]);
        }
        if mask.contains(FieldMask::FLOW_LABEL) && ipv6 {
            input.push(&(key.flow_label & 0x000f_ffff).to_be_bytes()[1..]);
        }
        if mask.contains(FieldMask::INGRESS_PORT) {
            input.push(&key.ingress_port.to_be_bytes());
        }
        input
    }
}

/// A 5-tuple serialised with every offset known at compile time.
#[inline(always)]
fn five_tuple<const A: usize>(
    src: &[u8; A],
    dst: &[u8; A],
    sport: u16,
    dport: u16,
    proto: u8,
) -> HashInput {
    let mut buf = [0u8; HashInput::CAPACITY];
    buf[..A].copy_from_slice(src);
    buf[A..2 * A].copy_from_slice(dst);
    buf[2 * A..2 * A + 2].copy_from_slice(&sport.to_be_bytes());
    buf[2 * A + 2..2 * A + 4].copy_from_slice(&dport.to_be_bytes());
    buf[2 * A + 4] = proto;
    HashInput {
        buf,
        len: (2 * A + 5) as u8,
    }
}

/// The serialised hash input: at most two IPv6 addresses, two ports, the
/// protocol, a flow label and an ingress port (44 bytes).
#[derive(Clone, Copy)]
pub struct HashInput {
    buf: [u8; HashInput::CAPACITY],
    len: u8,
}

impl HashInput {
    pub const CAPACITY: usize = 48;

    pub const fn new() -> Self {
        HashInput {
            buf: [0; HashInput::CAPACITY],
            len: 0,
        }
    }

    /// Build an input from raw bytes (for test vectors). Bytes past
    /// [`HashInput::CAPACITY`] are ignored.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut input = HashInput::new();
        input.push(&bytes[..bytes.len().min(HashInput::CAPACITY)]);
        input
    }

    #[inline]
    fn push(&mut self, bytes: &[u8]) {
        let at = self.len as usize;
        self.buf[at..at + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len() as u8;
    }

    #[inline]
    fn push_addr(&mut self, addr: IpAddr) {
        match addr {
            IpAddr::V4(a) => self.push(&a.octets()),
            IpAddr::V6(a) => self.push(&a.octets()),
        }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

impl Default for HashInput {
    fn default() -> Self {
        HashInput::new()
    }
}

impl fmt::Debug for HashInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HashInput(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn l4_input_is_addresses_then_ports_then_protocol() {
        let key = FlowKey::tcp(v4("66.9.149.187"), 2794, v4("161.142.100.80"), 1766);
        let input = FieldSelection::new(HashFields::L4).input(&key);
        assert_eq!(
            input.as_bytes(),
            &[66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6, 6]
        );
    }

    #[test]
    fn l3_ignores_ports_and_v6_adds_flow_label() {
        let a = FlowKey::tcp(v4("10.0.0.1"), 1, v4("10.0.0.2"), 2);
        let b = FlowKey::tcp(v4("10.0.0.1"), 3, v4("10.0.0.2"), 4);
        let l3 = FieldSelection::new(HashFields::L3);
        assert_eq!(l3.input(&a).as_bytes(), l3.input(&b).as_bytes());
        let mut v6 = FlowKey::tcp(
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            1,
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            2,
        );
        v6.flow_label = 0xabcde;
        assert_eq!(l3.input(&v6).as_bytes().len(), 32 + 3);
        assert_eq!(&l3.input(&v6).as_bytes()[32..], &[0x0a, 0xbc, 0xde]);
    }

    #[test]
    fn symmetric_selection_hashes_both_directions_alike() {
        let key = FlowKey::tcp(v4("192.0.2.9"), 40000, v4("198.51.100.1"), 443);
        let sym = FieldSelection::new(HashFields::L4).symmetric(true);
        assert_eq!(
            sym.input(&key).as_bytes(),
            sym.input(&key.reversed()).as_bytes()
        );
        let asym = FieldSelection::new(HashFields::L4);
        assert_ne!(
            asym.input(&key).as_bytes(),
            asym.input(&key.reversed()).as_bytes()
        );
    }

    proptest::proptest! {
        #[test]
        fn the_five_tuple_fast_path_serialises_like_the_general_walk(
            a in proptest::prelude::any::<u128>(),
            b in proptest::prelude::any::<u128>(),
            sport in proptest::prelude::any::<u16>(),
            dport in proptest::prelude::any::<u16>(),
            proto in proptest::prelude::any::<u8>(),
            v6 in proptest::prelude::any::<bool>(),
            symmetric in proptest::prelude::any::<bool>(),
        ) {
            let (src, dst) = if v6 {
                (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)))
            } else {
                (IpAddr::V4(Ipv4Addr::from(a as u32)), IpAddr::V4(Ipv4Addr::from(b as u32)))
            };
            let key = FlowKey { proto, ..FlowKey::tcp(src, sport, dst, dport) };
            let sel = FieldSelection::new(HashFields::L4).symmetric(symmetric);
            let (fast, general) = (sel.input(&key), sel.input_general(&key));
            proptest::prop_assert_eq!(fast.as_bytes(), general.as_bytes());
        }
    }

    proptest::proptest! {
        #[test]
        fn input_v4_serialises_like_input_of_the_same_key(
            src in proptest::prelude::any::<u32>(),
            dst in proptest::prelude::any::<u32>(),
            sport in proptest::prelude::any::<u16>(),
            dport in proptest::prelude::any::<u16>(),
            proto in proptest::prelude::any::<u8>(),
            ingress in proptest::prelude::any::<u32>(),
            mask in 1u32..=0x3f,
            ingress_bit in proptest::prelude::any::<bool>(),
            named in 0usize..5,
            symmetric in proptest::prelude::any::<bool>(),
        ) {
            let (s, d) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let key = FlowKey {
                proto,
                ingress_port: ingress,
                ..FlowKey::tcp(IpAddr::V4(s), sport, IpAddr::V4(d), dport)
            };
            let custom = FieldMask(mask | if ingress_bit { FieldMask::INGRESS_PORT.0 } else { 0 });
            let all = [
                HashFields::L3,
                HashFields::L3Proto,
                HashFields::L4,
                HashFields::Custom(custom),
                HashFields::Custom(FieldMask::ALL),
            ];
            let fields = all[named];
            let sel = FieldSelection::new(fields).symmetric(symmetric);
            let (fast, general) = (sel.input_v4(s, d, sport, dport, proto, ingress), sel.input(&key));
            proptest::prop_assert_eq!(fast.as_bytes(), general.as_bytes());
        }
    }

    #[test]
    fn fields_parse_from_names_masks_and_linux_values() {
        assert_eq!("l4".parse::<HashFields>().unwrap(), HashFields::L4);
        assert_eq!(
            "3-tuple".parse::<HashFields>().unwrap(),
            HashFields::L3Proto
        );
        // Linux's 0x37 is the 5-tuple; 0x3f adds the flow label.
        assert_eq!(
            "0x37".parse::<HashFields>().unwrap().mask(false),
            HashFields::L4.mask(false)
        );
        assert_eq!(
            "0x3f".parse::<HashFields>().unwrap().mask(true),
            HashFields::L4.mask(true) | FieldMask::FLOW_LABEL
        );
        assert_eq!(
            "src-ip+dst-port".parse::<HashFields>().unwrap(),
            HashFields::Custom(FieldMask::SRC_IP | FieldMask::DST_PORT)
        );
        assert!("src-ip+bogus".parse::<HashFields>().is_err());
        assert!("0x0".parse::<HashFields>().is_err());
        assert!(
            "0x40".parse::<HashFields>().is_err(),
            "inner-header bits are not supported"
        );
    }
}
