//! Tests of the packet layer: views, `parse_flow`'s flow-key rules (VLANs,
//! IPv6 extension headers, fragments, ICMP errors), drop reasons and the
//! never-panic guarantee.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::packet::{
    internet_checksum, ipv4_decrement_ttl, parse_flow, ArpPacket, DropCounters, DropReason,
    EthernetFrame, IpVersion, Ipv4Packet, Ipv6Packet, ParseOptions, ParsedPacket,
    MAX_IPV6_EXTENSIONS,
};
use hashing::FlowKey;
use proptest::prelude::*;

const A4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const B4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const R4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
const A6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const B6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
const R6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 9);

fn eth(tags: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    for &(tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, flags_frag: u16, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34]);
    p.extend_from_slice(&flags_frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    let mut view = Ipv4Packet::new_checked(&mut p[..]).unwrap();
    view.fill_checksum();
    p
}

fn ipv6(next: u8, src: Ipv6Addr, dst: Ipv6Addr, flow_label: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = (0x6000_0000u32 | flow_label).to_be_bytes().to_vec();
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = sport.to_be_bytes().to_vec();
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    u
}

fn icmp(msg_type: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![msg_type, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    m
}

/// An IPv6 extension header of `len8` 8-octet units beyond the first.
fn ext(next: u8, len8: u8) -> Vec<u8> {
    let mut e = vec![next, len8];
    e.resize(8 * (usize::from(len8) + 1), 0);
    e
}

fn opts(port: u32, inner: bool) -> ParseOptions {
    ParseOptions {
        ingress_port: port,
        icmp_errors_use_inner: inner,
    }
}

fn parse(frame: &[u8]) -> ParsedPacket {
    parse_flow(frame, &opts(7, false)).expect("frame parses")
}

fn v4_tcp_frame(tags: &[(u16, u16)]) -> Vec<u8> {
    eth(tags, 0x0800, &ipv4(6, A4, B4, 0x4000, &tcp(40000, 443)))
}

fn v6_ext_tcp_frame() -> Vec<u8> {
    let mut payload = ext(60, 0); // hop-by-hop, next: destination options
    payload.extend(ext(6, 1)); // destination options (16 bytes), next: TCP
    payload.extend(tcp(5000, 80));
    eth(&[], 0x86dd, &ipv6(0, A6, B6, 0x12345, &payload))
}

fn arp_frame() -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
    a.extend_from_slice(&A4.octets());
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&B4.octets());
    eth(&[], 0x0806, &a)
}

/// An ICMPv4 destination unreachable from R to A quoting A's TCP packet to B.
fn icmpv4_unreachable_frame() -> (Vec<u8>, Vec<u8>) {
    let offending = ipv4(6, A4, B4, 0x4000, &tcp(40000, 443));
    let quoted = &offending[..28]; // header + 8 bytes, as routers send
    let frame = eth(
        &[],
        0x0800,
        &ipv4(1, R4, A4, 0, &icmp(3, 4, [0, 0, 0x05, 0xdc], quoted)),
    );
    (frame, eth(&[], 0x0800, &offending))
}

/// An ICMPv6 packet too big from R to A quoting A's UDP packet to B.
fn icmpv6_too_big_frame() -> (Vec<u8>, Vec<u8>) {
    let offending = ipv6(17, A6, B6, 0xbeef, &udp(5353, 53, &[0xaa; 1400]));
    let quoted = &offending[..1232 - 48];
    let frame = eth(
        &[],
        0x86dd,
        &ipv6(58, R6, A6, 0, &icmp(2, 0, 1280u32.to_be_bytes(), quoted)),
    );
    (frame, eth(&[], 0x86dd, &offending))
}

#[test]
fn tcp_over_untagged_ethernet_takes_addresses_and_ports() {
    let p = parse(&v4_tcp_frame(&[]));
    let mut want = FlowKey::tcp(A4.into(), 40000, B4.into(), 443);
    want.ingress_port = 7;
    assert_eq!(p.key, want);
    assert_eq!(p.vlan_count(), 0);
    assert_eq!(p.l3_offset, 14);
    assert_eq!(p.ethertype, 0x0800);
    assert_eq!(p.ip_version, IpVersion::V4);
    assert_eq!((p.ttl, p.l3_len), (64, 40));
    assert!(!p.fragment && !p.icmp_error);
}

#[test]
fn tcp_over_single_vlan_records_the_tag_and_takes_ports() {
    let p = parse(&v4_tcp_frame(&[(0x8100, 0x2064)]));
    let tag = p.vlans[0].unwrap();
    assert_eq!((tag.tpid, tag.vid(), tag.pcp()), (0x8100, 100, 1));
    assert_eq!(p.vlan_count(), 1);
    assert_eq!(p.l3_offset, 18);
    assert_eq!((p.key.src_port, p.key.dst_port), (40000, 443));
}

#[test]
fn tcp_over_qinq_records_both_tags_outermost_first() {
    let p = parse(&v4_tcp_frame(&[(0x88a8, 10), (0x8100, 20)]));
    assert_eq!(p.vlans[0].unwrap().vid(), 10);
    assert_eq!(p.vlans[1].unwrap().vid(), 20);
    assert_eq!(p.l3_offset, 22);
    assert_eq!((p.key.src_port, p.key.dst_port), (40000, 443));
}

#[test]
fn three_vlan_tags_are_too_many() {
    let f = v4_tcp_frame(&[(0x88a8, 1), (0x8100, 2), (0x8100, 3)]);
    assert_eq!(
        parse_flow(&f, &opts(0, false)).unwrap_err(),
        DropReason::TooManyVlanTags
    );
}

#[test]
fn ipv6_hop_by_hop_and_destination_options_walk_to_tcp_ports() {
    let p = parse(&v6_ext_tcp_frame());
    assert_eq!(p.ip_version, IpVersion::V6);
    assert_eq!(p.key.src, IpAddr::V6(A6));
    assert_eq!(p.key.dst, IpAddr::V6(B6));
    assert_eq!(p.key.proto, 6);
    assert_eq!((p.key.src_port, p.key.dst_port), (5000, 80));
    assert_eq!(p.key.flow_label, 0x12345);
    assert_eq!(p.l3_len, 40 + 8 + 16 + 20);
}

#[test]
fn ipv6_routing_and_ah_headers_are_walked() {
    let mut payload = ext(51, 0); // routing, next: AH
    payload.extend_from_slice(&[17, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // AH: (1 + 2) * 4
    payload.extend(udp(1, 2, b"x"));
    let p = parse(&eth(&[], 0x86dd, &ipv6(43, A6, B6, 0, &payload)));
    assert_eq!((p.key.proto, p.key.src_port, p.key.dst_port), (17, 1, 2));
}

#[test]
fn ipv6_esp_and_no_next_header_stop_with_ports_zero() {
    for next in [50u8, 59] {
        let p = parse(&eth(&[], 0x86dd, &ipv6(next, A6, B6, 0, &[0xab; 16])));
        assert_eq!((p.key.proto, p.key.src_port, p.key.dst_port), (next, 0, 0));
    }
}

#[test]
fn first_ipv4_fragment_has_no_ports() {
    let f = eth(
        &[],
        0x0800,
        &ipv4(17, A4, B4, 0x2000, &udp(1000, 2000, &[0; 16])),
    );
    let p = parse(&f);
    assert!(p.fragment);
    assert_eq!((p.key.proto, p.key.src_port, p.key.dst_port), (17, 0, 0));
}

#[test]
fn non_first_ipv4_fragment_has_no_ports() {
    for flags in [0x0003u16, 0x2003] {
        let f = eth(&[], 0x0800, &ipv4(6, A4, B4, flags, &[0x55; 24]));
        let p = parse(&f);
        assert!(p.fragment);
        assert_eq!((p.key.proto, p.key.src_port, p.key.dst_port), (6, 0, 0));
    }
}

#[test]
fn ipv6_fragment_header_means_no_ports_first_or_not() {
    // First fragment (offset 0, M set): the TCP header is there but unused.
    let mut first = vec![6, 0, 0x00, 0x01, 0, 0, 0, 42];
    first.extend(tcp(1, 2));
    // Later fragment (offset 185 * 8): data only.
    let mut later = vec![6, 0, 0x05, 0xc8, 0, 0, 0, 42];
    later.extend_from_slice(&[0x77; 8]);
    for payload in [first, later] {
        let p = parse(&eth(&[], 0x86dd, &ipv6(44, A6, B6, 0, &payload)));
        assert!(p.fragment);
        assert_eq!((p.key.proto, p.key.src_port, p.key.dst_port), (6, 0, 0));
    }
}

#[test]
fn icmp_echo_has_ports_zero() {
    let v4 = eth(
        &[],
        0x0800,
        &ipv4(1, A4, B4, 0, &icmp(8, 0, [0x12, 0x34, 0, 1], b"ping")),
    );
    let v6 = eth(
        &[],
        0x86dd,
        &ipv6(58, A6, B6, 0, &icmp(128, 0, [0x12, 0x34, 0, 1], b"ping")),
    );
    for (f, proto) in [(v4, 1u8), (v6, 58)] {
        let p = parse_flow(&f, &opts(0, true)).unwrap();
        assert!(!p.icmp_error);
        assert_eq!((p.key.proto, p.key.src_port, p.key.dst_port), (proto, 0, 0));
    }
}

#[test]
fn icmpv4_dest_unreachable_with_inner_option_hashes_like_the_inner_flow() {
    let (error, offending) = icmpv4_unreachable_frame();
    let o = opts(3, true);
    let inner_key = parse_flow(&offending, &o).unwrap().key;
    let p = parse_flow(&error, &o).unwrap();
    assert!(p.icmp_error && p.key_from_inner);
    assert_eq!(p.key, inner_key);
    assert_eq!(p.key.src, IpAddr::V4(A4)); // inner addresses as-is, like Linux
}

#[test]
fn icmpv4_dest_unreachable_without_option_uses_the_outer_header() {
    let (error, _) = icmpv4_unreachable_frame();
    let p = parse_flow(&error, &opts(3, false)).unwrap();
    assert!(p.icmp_error && !p.key_from_inner);
    assert_eq!((p.key.src, p.key.dst), (IpAddr::V4(R4), IpAddr::V4(A4)));
    assert_eq!((p.key.proto, p.key.src_port, p.key.dst_port), (1, 0, 0));
}

#[test]
fn icmpv6_packet_too_big_with_inner_option_hashes_like_the_inner_flow() {
    let (error, offending) = icmpv6_too_big_frame();
    let o = opts(9, true);
    let inner_key = parse_flow(&offending, &o).unwrap().key;
    let p = parse_flow(&error, &o).unwrap();
    assert!(p.icmp_error && p.key_from_inner);
    assert_eq!(p.key, inner_key);
    assert_eq!(
        (p.key.src_port, p.key.dst_port, p.key.flow_label),
        (5353, 53, 0xbeef)
    );
}

#[test]
fn icmpv6_packet_too_big_without_option_uses_the_outer_header() {
    let (error, _) = icmpv6_too_big_frame();
    let p = parse_flow(&error, &opts(9, false)).unwrap();
    assert!(p.icmp_error && !p.key_from_inner);
    assert_eq!((p.key.src, p.key.dst), (IpAddr::V6(R6), IpAddr::V6(A6)));
    assert_eq!((p.key.proto, p.key.src_port, p.key.dst_port), (58, 0, 0));
}

#[test]
fn icmp_error_with_unreadable_embedded_header_falls_back_to_outer_key() {
    let f = eth(
        &[],
        0x0800,
        &ipv4(1, R4, A4, 0, &icmp(11, 0, [0; 4], &[0x45, 0, 0])),
    );
    let p = parse_flow(&f, &opts(0, true)).unwrap();
    assert!(p.icmp_error && !p.key_from_inner);
    assert_eq!(p.key.src, IpAddr::V4(R4));
}

#[test]
fn every_truncation_of_a_valid_frame_is_a_drop_never_a_panic() {
    let frames = [
        v4_tcp_frame(&[]),
        v4_tcp_frame(&[(0x88a8, 10), (0x8100, 20)]),
        v6_ext_tcp_frame(),
        icmpv4_unreachable_frame().0,
        icmpv6_too_big_frame().0,
        arp_frame(),
    ];
    for frame in &frames {
        for o in [opts(0, false), opts(0, true)] {
            assert!(parse_flow(frame, &o).is_ok() || frame == &arp_frame());
            for len in 0..frame.len() {
                let r = parse_flow(&frame[..len], &o);
                assert!(r.is_err(), "prefix of {len} bytes parsed: {r:?}");
                assert_ne!(r.unwrap_err(), DropReason::ControlArp);
            }
        }
    }
}

#[test]
fn ethernet_padding_after_the_ip_total_length_is_ignored() {
    let mut f = eth(&[], 0x0800, &ipv4(1, A4, B4, 0, &icmp(8, 0, [0; 4], &[])));
    f.resize(60, 0);
    let p = parse(&f);
    assert_eq!(p.l3_len, 28);
}

fn set_ipv4_byte(frame: &mut [u8], at: usize, value: u8) {
    frame[14 + at] = value;
}

#[test]
fn ipv4_header_length_below_five_words_is_dropped() {
    let mut f = v4_tcp_frame(&[]);
    set_ipv4_byte(&mut f, 0, 0x44);
    assert_eq!(
        parse_flow(&f, &opts(0, false)).unwrap_err(),
        DropReason::BadIpv4HeaderLength
    );
}

#[test]
fn ipv4_total_length_beyond_the_buffer_is_truncated() {
    let mut f = v4_tcp_frame(&[]);
    set_ipv4_byte(&mut f, 3, 41);
    assert_eq!(
        parse_flow(&f, &opts(0, false)).unwrap_err(),
        DropReason::TruncatedIpv4
    );
}

#[test]
fn ipv4_total_length_below_the_header_is_dropped() {
    let mut f = v4_tcp_frame(&[]);
    set_ipv4_byte(&mut f, 3, 19);
    assert_eq!(
        parse_flow(&f, &opts(0, false)).unwrap_err(),
        DropReason::BadIpv4TotalLength
    );
}

#[test]
fn ipv4_header_length_beyond_the_buffer_is_truncated() {
    let mut f = eth(&[], 0x0800, &ipv4(6, A4, B4, 0, &[]));
    set_ipv4_byte(&mut f, 0, 0x46);
    set_ipv4_byte(&mut f, 3, 24);
    assert_eq!(
        parse_flow(&f, &opts(0, false)).unwrap_err(),
        DropReason::TruncatedIpv4
    );
}

#[test]
fn ipv4_version_mismatch_and_truncated_tcp_are_dropped() {
    let mut f = v4_tcp_frame(&[]);
    set_ipv4_byte(&mut f, 0, 0x65);
    assert_eq!(
        parse_flow(&f, &opts(0, false)).unwrap_err(),
        DropReason::BadIpv4Version
    );
    let f = eth(&[], 0x0800, &ipv4(6, A4, B4, 0, &tcp(1, 2)[..12]));
    assert_eq!(
        parse_flow(&f, &opts(0, false)).unwrap_err(),
        DropReason::TruncatedL4
    );
}

fn dstopts_chain(n: usize) -> Vec<u8> {
    let mut payload = Vec::new();
    for i in 0..n {
        payload.extend(ext(if i + 1 == n { 6 } else { 60 }, 0));
    }
    payload.extend(tcp(1, 2));
    eth(&[], 0x86dd, &ipv6(60, A6, B6, 0, &payload))
}

#[test]
fn ipv6_extension_chain_longer_than_the_limit_is_dropped() {
    let ok = parse(&dstopts_chain(MAX_IPV6_EXTENSIONS));
    assert_eq!((ok.key.src_port, ok.key.dst_port), (1, 2));
    assert_eq!(
        parse_flow(&dstopts_chain(MAX_IPV6_EXTENSIONS + 1), &opts(0, false)).unwrap_err(),
        DropReason::Ipv6ExtensionChainTooLong
    );
}

#[test]
fn ipv6_extension_past_the_payload_is_truncated_extension() {
    let f = eth(&[], 0x86dd, &ipv6(0, A6, B6, 0, &[6, 3, 0, 0, 0, 0, 0, 0]));
    assert_eq!(
        parse_flow(&f, &opts(0, false)).unwrap_err(),
        DropReason::TruncatedIpv6Extension
    );
}

#[test]
fn arp_frame_is_recognised_as_control_arp() {
    let f = arp_frame();
    assert_eq!(
        parse_flow(&f, &opts(0, false)).unwrap_err(),
        DropReason::ControlArp
    );
    let frame = EthernetFrame::new_checked(&f[..]).unwrap();
    let arp = ArpPacket::new_checked(frame.payload()).unwrap();
    assert_eq!(
        (arp.hardware_type(), arp.protocol_type(), arp.operation()),
        (1, 0x0800, 1)
    );
    assert_eq!(arp.sender_protocol_addr(), &A4.octets());
    assert_eq!(arp.target_protocol_addr(), &B4.octets());
    let other = eth(&[], 0x88cc, &[0; 40]);
    assert_eq!(
        parse_flow(&other, &opts(0, false)).unwrap_err(),
        DropReason::NotIp
    );
}

#[test]
fn router_rewrites_macs_ttl_and_hop_limit() {
    let mut f = v4_tcp_frame(&[]);
    let mut frame = EthernetFrame::new_checked(&mut f[..]).unwrap();
    frame.set_dst_addr([0xaa; 6]);
    frame.set_src_addr([0xbb; 6]);
    assert_eq!((frame.dst_addr(), frame.src_addr()), ([0xaa; 6], [0xbb; 6]));
    assert_eq!(ipv4_decrement_ttl(&mut f[14..]), Ok(63));
    assert!(Ipv4Packet::new_checked(&f[14..]).unwrap().verify_checksum());
    f[14 + 8] = 1;
    let before = f.clone();
    assert_eq!(
        ipv4_decrement_ttl(&mut f[14..]),
        Err(DropReason::TtlExceeded)
    );
    assert_eq!(f, before);

    let mut v6 = ipv6(59, A6, B6, 0, &[]);
    let mut ip = Ipv6Packet::new_checked(&mut v6[..]).unwrap();
    assert_eq!(ip.decrement_hop_limit(), Ok(63));
    ip.set_hop_limit(1);
    assert_eq!(ip.decrement_hop_limit(), Err(DropReason::HopLimitExceeded));
}

#[test]
fn drop_reasons_have_unique_kebab_case_names_and_counters() {
    let mut names: Vec<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
    assert!(names.iter().all(|n| n
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')));
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), DropReason::COUNT);
    for (i, r) in DropReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
    let mut c = DropCounters::new();
    c.record(DropReason::TruncatedL4);
    c.record(DropReason::TruncatedL4);
    c.record(DropReason::NotIp);
    assert_eq!(c.count(DropReason::TruncatedL4), 2);
    assert_eq!(c.total(), 3);
    assert_eq!(c.iter().filter(|(_, n)| *n > 0).count(), 2);
    assert_eq!(
        DropReason::TruncatedIpv4.to_string(),
        "the frame ends inside the IPv4 packet"
    );
}

#[test]
fn internet_checksum_of_a_filled_header_verifies() {
    let p = ipv4(6, A4, B4, 0, &[]);
    assert_eq!(internet_checksum(&p[..20]), 0);
    assert!(Ipv4Packet::new_checked(&p[..]).unwrap().verify_checksum());
}

fn random_ipv4_header() -> impl Strategy<Value = Vec<u8>> {
    (5usize..=15, 2u8..=255, any::<[u8; 60]>()).prop_map(|(ihl, ttl, mut bytes)| {
        let len = ihl * 4;
        bytes[0] = 0x40 | ihl as u8;
        let total = len as u16 + u16::from(bytes[2] & 0x3f);
        bytes[2..4].copy_from_slice(&total.to_be_bytes());
        bytes[8] = ttl;
        let mut h = bytes[..len].to_vec();
        Ipv4Packet::new_checked_header(&mut h[..])
            .unwrap()
            .fill_checksum();
        h
    })
}

proptest! {
    #[test]
    fn ttl_decrement_incremental_checksum_equals_recomputation(mut h in random_ipv4_header()) {
        let ttl = h[8];
        prop_assert_eq!(ipv4_decrement_ttl(&mut h[..]), Ok(ttl - 1));
        let view = Ipv4Packet::new_checked_header(&h[..]).unwrap();
        prop_assert_eq!(view.checksum(), view.compute_checksum());
        prop_assert!(view.verify_checksum());
    }

    #[test]
    fn random_bytes_never_panic_parse_flow(bytes in proptest::collection::vec(any::<u8>(), 0..200), inner: bool) {
        let _ = parse_flow(&bytes, &opts(1, inner));
    }

    #[test]
    fn random_ip_payloads_never_panic_parse_flow(
        ethertype in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x8100), Just(0x0806)],
        version in 0u8..16,
        next in prop_oneof![Just(0u8), Just(1), Just(6), Just(17), Just(43), Just(44), Just(51), Just(58), Just(60), any::<u8>()],
        mut bytes in proptest::collection::vec(any::<u8>(), 0..300),
        inner: bool,
    ) {
        if let Some(b) = bytes.get_mut(0) { *b = (version << 4) | (*b & 0x0f); }
        if bytes.len() > 9 { bytes[if ethertype == 0x0800 { 9 } else { 6 }] = next; }
        let _ = parse_flow(&eth(&[], ethertype, &bytes), &opts(1, inner));
    }
}

proptest! {
    #[test]
    fn corrupted_valid_frames_never_panic_parse_flow(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
        inner: bool,
    ) {
        let mut f = match which {
            0 => v4_tcp_frame(&[(0x8100, 5)]),
            1 => v6_ext_tcp_frame(),
            2 => icmpv4_unreachable_frame().0,
            3 => icmpv6_too_big_frame().0,
            _ => dstopts_chain(3),
        };
        for (at, value) in edits {
            let i = at % f.len();
            f[i] = value;
        }
        f.truncate(cut % (f.len() + 1));
        let _ = parse_flow(&f, &opts(2, inner));
    }
}
