//! Frames for a flow key: what a client's packet of that flow looks like on
//! the wire (Ethernet, IPv4 or IPv6, then TCP, UDP, SCTP or 8 bytes of
//! another protocol), padded to Ethernet's 60-byte minimum.

use std::net::IpAddr;

use hashing::FlowKey;

use crate::packet::internet_checksum;

/// Ethernet's minimum frame length without the FCS.
const MIN_FRAME: usize = 60;

/// A frame of `key`'s flow from `src_mac` to `dst_mac` with `ttl` (hop
/// limit), valid checksums (IPv4 header, TCP/UDP over the pseudo-header) and
/// no payload. A key mixing address families is sent as IPv6 with the IPv4
/// address mapped (`::ffff:a.b.c.d`).
pub fn build_frame(key: &FlowKey, src_mac: [u8; 6], dst_mac: [u8; 6], ttl: u8) -> Vec<u8> {
    let l4 = l4_header(key);
    let mut f = Vec::with_capacity(MIN_FRAME + 40);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    match (key.src, key.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let total = (20 + l4.len()) as u16;
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = ttl;
            ip[9] = key.proto;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = internet_checksum(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
            let pseudo = pseudo_header(&s.octets(), &d.octets(), key.proto, l4.len());
            f.extend_from_slice(&with_checksum(key.proto, l4, pseudo));
        }
        (s, d) => {
            let s = v6(s).octets();
            let d = v6(d).octets();
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            let mut ip = [0u8; 40];
            let first = 0x6000_0000u32 | (key.flow_label & 0x000f_ffff);
            ip[0..4].copy_from_slice(&first.to_be_bytes());
            ip[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
            ip[6] = key.proto;
            ip[7] = ttl;
            ip[8..24].copy_from_slice(&s);
            ip[24..40].copy_from_slice(&d);
            f.extend_from_slice(&ip);
            let pseudo = pseudo_header(&s, &d, key.proto, l4.len());
            f.extend_from_slice(&with_checksum(key.proto, l4, pseudo));
        }
    }
    if f.len() < MIN_FRAME {
        f.resize(MIN_FRAME, 0);
    }
    f
}

fn v6(a: IpAddr) -> std::net::Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// The transport header, checksum zero.
fn l4_header(key: &FlowKey) -> Vec<u8> {
    let ports = |len: usize| {
        let mut h = vec![0u8; len];
        h[0..2].copy_from_slice(&key.src_port.to_be_bytes());
        h[2..4].copy_from_slice(&key.dst_port.to_be_bytes());
        h
    };
    match key.proto {
        6 => {
            let mut h = ports(20);
            h[4..8].copy_from_slice(&1u32.to_be_bytes()); // sequence
            h[12] = 5 << 4; // data offset
            h[13] = 0x10; // ACK
            h[14..16].copy_from_slice(&65535u16.to_be_bytes()); // window
            h
        }
        17 => {
            let mut h = ports(8);
            h[4..6].copy_from_slice(&8u16.to_be_bytes());
            h
        }
        132 => ports(12),
        _ => vec![0u8; 8],
    }
}

/// The TCP/UDP pseudo-header (RFC 793, RFC 8200 8.1): addresses, a zero
/// byte or padding, the protocol and the transport length.
fn pseudo_header(src: &[u8], dst: &[u8], proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(src);
    p.extend_from_slice(dst);
    if src.len() == 4 {
        p.extend_from_slice(&[0, proto]);
        p.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        p.extend_from_slice(&(len as u32).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, proto]);
    }
    p
}

/// Fills in the TCP/UDP checksum over `pseudo` and the header (other
/// protocols are left as they are).
fn with_checksum(proto: u8, mut l4: Vec<u8>, mut pseudo: Vec<u8>) -> Vec<u8> {
    let at = match proto {
        6 => 16,
        17 => 6,
        _ => return l4,
    };
    pseudo.extend_from_slice(&l4);
    let mut c = internet_checksum(&pseudo);
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    l4
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{parse_flow, ParseOptions};

    #[test]
    fn frames_parse_back_to_their_key() {
        let keys = [
            FlowKey::tcp(
                "198.51.100.7".parse().unwrap(),
                40000,
                "203.0.113.10".parse().unwrap(),
                443,
            ),
            FlowKey {
                proto: 17,
                flow_label: 0x12345,
                ..FlowKey::tcp(
                    "2001:db8::7".parse().unwrap(),
                    5353,
                    "2001:db8::10".parse().unwrap(),
                    443,
                )
            },
        ];
        for key in keys {
            let f = build_frame(&key, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], 64);
            assert!(f.len() >= MIN_FRAME);
            let p = parse_flow(&f, &ParseOptions::default()).unwrap();
            assert_eq!(p.key, key);
            assert_eq!(p.ttl, 64);
        }
    }

    #[test]
    fn checksums_verify() {
        let key = FlowKey::tcp(
            "198.51.100.7".parse().unwrap(),
            40000,
            "203.0.113.10".parse().unwrap(),
            443,
        );
        let f = build_frame(&key, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], 64);
        assert_eq!(internet_checksum(&f[14..34]), 0, "IPv4 header");
        let mut whole = pseudo_header(&f[26..30], &f[30..34], 6, 20);
        whole.extend_from_slice(&f[34..54]);
        assert_eq!(internet_checksum(&whole), 0, "TCP");

        let key = FlowKey {
            proto: 17,
            ..FlowKey::tcp(
                "2001:db8::7".parse().unwrap(),
                5353,
                "2001:db8::10".parse().unwrap(),
                443,
            )
        };
        let f = build_frame(&key, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], 64);
        let mut whole = pseudo_header(&f[22..38], &f[38..54], 17, 8);
        whole.extend_from_slice(&f[54..62]);
        assert_eq!(internet_checksum(&whole), 0, "UDP over IPv6");
    }
}
