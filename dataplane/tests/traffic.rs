//! Tests of the traffic models and of the capture reader, with pcap and pcapng
//! files built by hand in a temporary directory.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dataplane::traffic::{
    default_services, parse_frame, read_capture, LinkType, Population, SkipReason, TrafficError,
    TrafficModel, TrafficSpec,
};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, TsResolution};
use proptest::prelude::*;

// ---------------------------------------------------------------- models --

fn spec(model: TrafficModel, flows: usize, seed: u64) -> TrafficSpec {
    TrafficSpec {
        seed,
        ..TrafficSpec::new(model, flows)
    }
}

fn models() -> Vec<TrafficModel> {
    vec![
        TrafficModel::Uniform,
        TrafficModel::cgnat(),
        TrafficModel::zipf(),
    ]
}

#[test]
fn each_model_is_deterministic_for_a_seed_and_differs_across_seeds() {
    for model in models() {
        for share in [0.0, 0.3] {
            let mut a = spec(model.clone(), 5_000, 7);
            a.ipv6_share = share;
            let first = a.generate().unwrap();
            let again = a.generate().unwrap();
            assert_eq!(first, again, "{model} is not deterministic");
            let other = TrafficSpec {
                seed: 8,
                ..a.clone()
            }
            .generate()
            .unwrap();
            assert_ne!(
                first.flows, other.flows,
                "{model}: seeds 7 and 8 give the same flows"
            );
            let keys_a: HashSet<_> = first.flows.iter().map(|f| f.key).collect();
            let keys_b: HashSet<_> = other.flows.iter().map(|f| f.key).collect();
            assert!(
                keys_a.intersection(&keys_b).count() < 50,
                "{model}: seeds share most keys"
            );
        }
    }
}

#[test]
fn a_smaller_population_is_a_prefix_of_a_larger_one() {
    for model in models() {
        let small = spec(model.clone(), 1_000, 3).generate().unwrap();
        let large = spec(model.clone(), 4_000, 3).generate().unwrap();
        assert_eq!(small.flows[..], large.flows[..1_000], "{model}");
    }
}

#[test]
fn population_names_and_stats_match_the_flows() {
    for (model, name) in models().into_iter().zip(["uniform", "cgnat", "zipf"]) {
        let population = spec(model, 2_000, 1).generate().unwrap();
        assert_eq!(population.name, name);
        let again = Population::from_flows(name, population.flows.clone());
        assert_eq!(population.stats, again.stats);
        assert_eq!(population.stats.flows, 2_000);
        assert_eq!(
            population.stats.total_bytes,
            population.flows.iter().map(|f| f.bytes).sum::<u64>()
        );
        assert!(population.stats.capture.is_none());
        let keys: HashSet<_> = population.flows.iter().map(|f| f.key).collect();
        assert_eq!(keys.len(), 2_000, "keys are distinct");
    }
}

#[test]
fn uniform_has_distinct_sources_ephemeral_ports_and_the_services() {
    let population = spec(TrafficModel::Uniform, 10_000, 11).generate().unwrap();
    assert!(
        population.stats.distinct_sources > 9_500,
        "{} distinct sources",
        population.stats.distinct_sources
    );
    let services = default_services();
    let mut tcp = 0;
    let mut https = 0;
    for flow in &population.flows {
        let key = flow.key;
        assert!(
            (32768..=60999).contains(&key.src_port),
            "port {}",
            key.src_port
        );
        assert!(services.contains(&key.dst));
        assert!(key.src.is_ipv4() && key.flow_label == 0);
        assert!(matches!(key.dst_port, 443 | 80));
        assert!(matches!(key.proto, 6 | 17));
        tcp += usize::from(key.proto == 6);
        https += usize::from(key.dst_port == 443);
        assert!(flow.bytes >= 64 && flow.packets >= 1);
        assert!(flow.last_seen_ns > flow.first_seen_ns);
    }
    assert!((8_700..=9_300).contains(&tcp), "{tcp} TCP flows of 10000");
    assert!(https > 8_000, "{https} flows to 443");
    // Moderate spread: the largest 1% of flows carry about 9% of the bytes.
    let share = top_share(&population, 0.01);
    assert!(
        (0.05..0.15).contains(&share),
        "top 1% of uniform flows carry {share:.3}"
    );
    // Flows start in time order.
    assert!(population
        .flows
        .windows(2)
        .all(|w| w[0].first_seen_ns <= w[1].first_seen_ns));
}

#[test]
fn cgnat_has_exactly_its_public_ips_and_unique_tuples() {
    for public_ips in [1, 8, 32] {
        let population = spec(TrafficModel::Cgnat { public_ips }, 20_000, 5)
            .generate()
            .unwrap();
        assert_eq!(population.stats.distinct_sources, public_ips as usize);
        let mut tuples = HashSet::new();
        for flow in &population.flows {
            let key = flow.key;
            let IpAddr::V4(src) = key.src else {
                panic!("IPv6 source with ipv6_share 0")
            };
            assert_eq!(&src.octets()[..3], &[198, 51, 100]);
            assert!((1..=public_ips).contains(&u32::from(src.octets()[3])));
            assert!(key.src_port >= 1024);
            assert!(
                tuples.insert((key.src, key.src_port, key.dst, key.dst_port)),
                "tuple reused: {key:?}"
            );
        }
        // A 3-tuple hash can tell apart at most sources x services x protocols.
        assert!(population.stats.distinct_3tuples <= public_ips as usize * 4 * 2);
    }
}

#[test]
fn cgnat_ports_spread_over_the_whole_range() {
    let population = spec(TrafficModel::Cgnat { public_ips: 2 }, 20_000, 9)
        .generate()
        .unwrap();
    let low = population
        .flows
        .iter()
        .filter(|f| f.key.src_port < 32768)
        .count();
    // 1024..32767 is 49% of 1024..=65535.
    assert!((9_000..=10_600).contains(&low), "{low} ports below 32768");
}

fn top_share(population: &Population, fraction: f64) -> f64 {
    let mut bytes: Vec<u64> = population.flows.iter().map(|f| f.bytes).collect();
    bytes.sort_unstable_by(|a, b| b.cmp(a));
    let top = ((bytes.len() as f64 * fraction).ceil() as usize).max(1);
    bytes[..top].iter().sum::<u64>() as f64 / bytes.iter().sum::<u64>() as f64
}

#[test]
fn zipf_top_percent_of_flows_carries_a_large_share_of_bytes() {
    // Pareto(shape 1.2) sizes: the top 1% carry 0.01^(1 - 1/1.2) = 46% in the
    // limit; with infinite variance, samples of 10,000 flows mostly land at
    // 30-45% (seeds 0..30 ranged from 25% to 66%, median 35%).
    let mut shares = Vec::new();
    for seed in 0..9 {
        let population = spec(TrafficModel::zipf(), 10_000, seed).generate().unwrap();
        let share = top_share(&population, 0.01);
        assert!(
            share > 0.22,
            "seed {seed}: top 1% of flows carry only {share:.3} of bytes"
        );
        shares.push(share);
        for flow in &population.flows {
            assert!(flow.bytes >= 4_096 && flow.bytes <= 1 << 30);
        }
    }
    shares.sort_by(f64::total_cmp);
    assert!(
        shares[4] > 0.30,
        "median share of the top 1%: {:.3}",
        shares[4]
    );
}

#[test]
fn zipf_clients_have_zipf_popularity() {
    let population = spec(TrafficModel::zipf(), 20_000, 2).generate().unwrap();
    let mut per_source: HashMap<IpAddr, usize> = HashMap::new();
    for flow in &population.flows {
        *per_source.entry(flow.key.src).or_default() += 1;
    }
    let mut counts: Vec<usize> = per_source.into_values().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    // Zipf(1.1) over 10,000 clients: the top client has about 1/H = 14% of
    // flows, the second about 2^-1.1 of that.
    let top = counts[0] as f64 / 20_000.0;
    assert!(
        (0.11..=0.18).contains(&top),
        "top client has {top:.3} of flows"
    );
    let ratio = counts[1] as f64 / counts[0] as f64;
    assert!((0.38..=0.56).contains(&ratio), "second/first = {ratio:.2}");
    assert!(counts.len() < 10_000);
}

#[test]
fn ipv6_share_is_honoured() {
    for model in models() {
        let population = TrafficSpec {
            ipv6_share: 0.25,
            ..spec(model.clone(), 10_000, 4)
        }
        .generate()
        .unwrap();
        let v6 = population.stats.ipv6_flows;
        assert!(
            (2_300..=2_700).contains(&v6),
            "{model}: {v6} IPv6 flows of 10000"
        );
        let mut labels = HashSet::new();
        for flow in &population.flows {
            let key = flow.key;
            assert_eq!(key.src.is_ipv6(), key.dst.is_ipv6(), "{key:?}");
            if key.src.is_ipv6() {
                assert!(key.flow_label < 1 << 20);
                labels.insert(key.flow_label);
            } else {
                assert_eq!(key.flow_label, 0);
            }
        }
        assert!(labels.len() > 2_000, "{model}: flow labels are random");
    }
    let all_v6 = TrafficSpec {
        ipv6_share: 1.0,
        ..spec(TrafficModel::Uniform, 1_000, 4)
    }
    .generate()
    .unwrap();
    assert_eq!(all_v6.stats.ipv6_flows, 1_000);
}

#[test]
fn invalid_specs_are_rejected_with_a_reason() {
    let cases = [
        (spec(TrafficModel::Uniform, 0, 0), "at least 1 flow"),
        (
            TrafficSpec {
                ipv6_share: 1.5,
                ..TrafficSpec::default()
            },
            "ipv6_share",
        ),
        (
            TrafficSpec {
                ipv6_share: 0.5,
                services: vec!["203.0.113.1".parse().unwrap()],
                ..TrafficSpec::default()
            },
            "no IPv6 service",
        ),
        (
            TrafficSpec {
                services: vec![],
                ..TrafficSpec::default()
            },
            "no IPv4 service",
        ),
        (
            spec(TrafficModel::Cgnat { public_ips: 0 }, 10, 0),
            "1 to 254",
        ),
        (
            spec(TrafficModel::Cgnat { public_ips: 1 }, 200_000, 0),
            "more public addresses",
        ),
        (
            spec(
                TrafficModel::Zipf {
                    clients: 0,
                    exponent: 1.1,
                },
                10,
                0,
            ),
            "clients",
        ),
        (
            spec(
                TrafficModel::Zipf {
                    clients: 10,
                    exponent: f64::NAN,
                },
                10,
                0,
            ),
            "exponent",
        ),
        (
            spec(
                TrafficModel::Zipf {
                    clients: 1,
                    exponent: 1.1,
                },
                200_000,
                0,
            ),
            "no free source port",
        ),
    ];
    for (spec, needle) in cases {
        match spec.generate() {
            Err(err @ TrafficError::InvalidSpec(_)) => {
                let message = err.to_string();
                assert!(message.contains(needle), "{message:?} lacks {needle:?}");
            }
            other => panic!("{spec:?} gave {other:?}"),
        }
    }
}

#[test]
fn model_names_parse_and_print() {
    assert_eq!(
        "uniform".parse::<TrafficModel>().unwrap(),
        TrafficModel::Uniform
    );
    assert_eq!(
        "CGNAT".parse::<TrafficModel>().unwrap(),
        TrafficModel::Cgnat { public_ips: 8 }
    );
    assert_eq!(
        "cgnat:16".parse::<TrafficModel>().unwrap(),
        TrafficModel::Cgnat { public_ips: 16 }
    );
    assert_eq!(
        "zipf".parse::<TrafficModel>().unwrap(),
        TrafficModel::Zipf {
            clients: 10_000,
            exponent: 1.1
        }
    );
    assert_eq!(
        "zipf:1.3:500".parse::<TrafficModel>().unwrap(),
        TrafficModel::Zipf {
            clients: 500,
            exponent: 1.3
        }
    );
    assert_eq!(
        "pcap:/tmp/My Trace.pcapng".parse::<TrafficModel>().unwrap(),
        TrafficModel::Pcap(PathBuf::from("/tmp/My Trace.pcapng"))
    );
    for model in models()
        .into_iter()
        .chain([TrafficModel::Pcap("a/b.pcap".into())])
    {
        assert_eq!(model.to_string().parse::<TrafficModel>().unwrap(), model);
    }
    assert_eq!(TrafficModel::Pcap("a/b.pcap".into()).name(), "pcap:b.pcap");
    for bad in [
        "",
        "poisson",
        "pcap",
        "pcap:",
        "cgnat:x",
        "zipf:1.1:x",
        "uniform:3",
        "zipf:inf",
    ] {
        let err = bad.parse::<TrafficModel>().unwrap_err().to_string();
        assert!(err.contains("choose from uniform, cgnat"), "{err}");
        assert!(err.contains("pcap:PATH"), "{err}");
    }
}

#[test]
fn default_services_are_documentation_addresses() {
    let services = default_services();
    assert!(services.iter().any(IpAddr::is_ipv4) && services.iter().any(IpAddr::is_ipv6));
    for service in services {
        match service {
            IpAddr::V4(a) => assert_eq!(&a.octets()[..3], &[203, 0, 113]),
            IpAddr::V6(a) => assert_eq!(&a.segments()[..2], &[0x2001, 0xdb8]),
        }
    }
}

#[test]
fn two_hundred_thousand_flows_generate_quickly() {
    // Well under a second in release; debug builds get more slack.
    let limit = if cfg!(debug_assertions) { 20.0 } else { 1.0 };
    for model in models() {
        let started = std::time::Instant::now();
        let population = TrafficSpec {
            ipv6_share: 0.2,
            ..spec(model.clone(), 200_000, 1)
        }
        .generate()
        .unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(population.flows.len(), 200_000);
        assert!(elapsed < limit, "{model}: {elapsed:.2}s");
    }
}

// ---------------------------------------------------------------- frames --

const CLIENT: [u8; 4] = [192, 0, 2, 1];
const SERVER: [u8; 4] = [203, 0, 113, 10];

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An Ethernet frame with the given VLAN tags (TPID, VID) before `ethertype`.
fn eth(tags: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for (tpid, vid) in tags {
        f.extend(tpid.to_be_bytes());
        f.extend(vid.to_be_bytes());
    }
    f.extend(ethertype.to_be_bytes());
    f.extend(payload);
    f
}

/// An IPv4 header (no options) with `flags_frag` as the flags/offset word.
fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, flags_frag: u16, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend(total.to_be_bytes());
    p.extend([0x12, 0x34]);
    p.extend(flags_frag.to_be_bytes());
    p.extend([64, proto, 0, 0]);
    p.extend(src);
    p.extend(dst);
    p.extend(payload);
    p
}

fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend(sport.to_be_bytes());
    t.extend(dport.to_be_bytes());
    t.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend(sport.to_be_bytes());
    u.extend(dport.to_be_bytes());
    u.extend(((8 + data.len()) as u16).to_be_bytes());
    u.extend([0, 0]);
    u.extend(data);
    u
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, flow_label: u32, payload: &[u8]) -> Vec<u8> {
    let first = (6u32 << 28) | (flow_label & 0xfffff);
    let mut p = first.to_be_bytes().to_vec();
    p.extend((payload.len() as u16).to_be_bytes());
    p.extend([next, 64]);
    p.extend(src.octets());
    p.extend(dst.octets());
    p.extend(payload);
    p
}

/// An 8-byte hop-by-hop options header (a router alert option, then PadN).
fn hop_by_hop(next: u8) -> Vec<u8> {
    vec![next, 0, 5, 2, 0, 0, 1, 0]
}

// ----------------------------------------------------------- capture I/O --

fn write_pcap(path: &Path, link: DataLink, packets: &[(u64, Vec<u8>)]) {
    let header = PcapHeader {
        datalink: link,
        ts_resolution: TsResolution::NanoSecond,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(File::create(path).unwrap(), header).unwrap();
    for (ts, data) in packets {
        let packet = PcapPacket::new(Duration::from_nanos(*ts), data.len() as u32, data);
        writer.write_packet(&packet).unwrap();
    }
}

/// A pcapng file with one interface per link type; packets are (interface,
/// timestamp in that interface's units, frame). Interfaces given a
/// resolution get an `if_tsresol` option; others default to microseconds.
fn write_pcapng(
    path: &Path,
    endianness: Endianness,
    interfaces: &[(DataLink, Option<u8>)],
    packets: &[(u32, u64, Vec<u8>)],
) {
    let mut writer =
        PcapNgWriter::with_endianness(File::create(path).unwrap(), endianness).unwrap();
    for (link, tsresol) in interfaces {
        let options = tsresol
            .map(InterfaceDescriptionOption::IfTsResol)
            .into_iter()
            .collect();
        let idb = InterfaceDescriptionBlock {
            linktype: *link,
            snaplen: 65535,
            options,
        };
        writer.write_pcapng_block(idb).unwrap();
    }
    for (interface_id, ticks, data) in packets {
        let epb = EnhancedPacketBlock {
            interface_id: *interface_id,
            // The writer stores the nanoseconds of this duration as raw ticks.
            timestamp: Duration::from_nanos(*ticks),
            original_len: data.len() as u32,
            data: Cow::Borrowed(data),
            options: vec![],
        };
        writer.write_pcapng_block(epb).unwrap();
    }
}

fn read(path: &Path) -> Population {
    read_capture(path, 0).unwrap_or_else(|e| panic!("{e}"))
}

fn skipped(population: &Population, reason: SkipReason) -> u64 {
    let capture = population.stats.capture.as_ref().expect("capture stats");
    capture.skipped.get(&reason).copied().unwrap_or(0)
}

#[test]
fn pcap_ethernet_with_vlan_tags_gives_an_ipv4_tcp_flow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vlan.pcap");
    let single = eth(
        &[(0x8100, 100)],
        0x0800,
        &ipv4(CLIENT, SERVER, 6, 0x4000, &tcp(40000, 443)),
    );
    let qinq = eth(
        &[(0x88a8, 7), (0x8100, 100)],
        0x0800,
        &ipv4(CLIENT, SERVER, 6, 0x4000, &tcp(40001, 443)),
    );
    write_pcap(
        &path,
        DataLink::ETHERNET,
        &[(1_000_000_000, single), (1_000_000_500, qinq)],
    );
    let population = read(&path);
    assert_eq!(population.name, "pcap:vlan.pcap");
    assert_eq!(population.flows.len(), 2);
    let flow = population.flows[0];
    assert_eq!(flow.key.src, ip("192.0.2.1"));
    assert_eq!(flow.key.dst, ip("203.0.113.10"));
    assert_eq!(
        (flow.key.proto, flow.key.src_port, flow.key.dst_port),
        (6, 40000, 443)
    );
    assert_eq!(flow.bytes, 18 + 40);
    assert_eq!(population.flows[1].key.src_port, 40001);
    assert_eq!(
        population.flows[1].first_seen_ns, 500,
        "times are relative to the first packet"
    );
    let capture = population.stats.capture.unwrap();
    assert_eq!(capture.start_ns, 1_000_000_000);
    assert_eq!((capture.packets_read, capture.packets_used), (2, 2));
}

#[test]
fn pcap_ipv6_with_hop_by_hop_header_gives_udp_ports_and_flow_label() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v6.pcap");
    let mut payload = hop_by_hop(17);
    payload.extend(udp(5353, 443, b"quic"));
    let src = v6("2001:db8:1::1");
    let dst = v6("2001:db8::10");
    let frame = eth(&[], 0x86dd, &ipv6(src, dst, 0, 0xabcde, &payload));
    write_pcap(&path, DataLink::ETHERNET, &[(5, frame)]);
    let key = read(&path).flows[0].key;
    assert_eq!((key.src, key.dst), (IpAddr::V6(src), IpAddr::V6(dst)));
    assert_eq!(
        (key.proto, key.src_port, key.dst_port, key.flow_label),
        (17, 5353, 443, 0xabcde)
    );
}

#[test]
fn ipv6_extension_headers_are_walked_and_esp_stops_the_walk() {
    let src = v6("2001:db8:1::1");
    let dst = v6("2001:db8::10");
    // Destination options (16 bytes), routing (8 bytes), then TCP.
    let mut payload = vec![43, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    payload.extend([6, 0, 0, 0, 0, 0, 0, 0]);
    payload.extend(tcp(1234, 80));
    let key = parse_frame(LinkType::Ipv6, &ipv6(src, dst, 60, 0, &payload)).unwrap();
    assert_eq!((key.proto, key.src_port, key.dst_port), (6, 1234, 80));
    // AH (length field 4: (4 + 2) * 4 = 24 bytes), then UDP.
    let mut ah = vec![17, 4];
    ah.extend([0; 22]);
    ah.extend(udp(9, 10, b""));
    let key = parse_frame(LinkType::Ipv6, &ipv6(src, dst, 51, 0, &ah)).unwrap();
    assert_eq!((key.proto, key.src_port, key.dst_port), (17, 9, 10));
    // ESP: encrypted, no ports.
    let key = parse_frame(LinkType::Ipv6, &ipv6(src, dst, 50, 0, &[0xaa; 32])).unwrap();
    assert_eq!((key.proto, key.src_port, key.dst_port), (50, 0, 0));
    // A hop-by-hop header cut short.
    let frame = ipv6(src, dst, 0, 0, &[6, 3, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        parse_frame(LinkType::Ipv6, &frame),
        Err(SkipReason::TruncatedIpv6Ext)
    );
}

#[test]
fn fragments_have_no_ports() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frag.pcap");
    // First fragment (MF set, offset 0) still carries the TCP header; a later
    // one (offset 185 * 8) carries payload only. Linux hashes both without
    // ports, so they form one flow.
    let first = eth(
        &[],
        0x0800,
        &ipv4(CLIENT, SERVER, 6, 0x2000, &tcp(40000, 443)),
    );
    let later = eth(&[], 0x0800, &ipv4(CLIENT, SERVER, 6, 185, &[0xee; 100]));
    write_pcap(&path, DataLink::ETHERNET, &[(10, first), (20, later)]);
    let population = read(&path);
    assert_eq!(population.flows.len(), 1);
    let flow = population.flows[0];
    assert_eq!(
        (flow.key.proto, flow.key.src_port, flow.key.dst_port),
        (6, 0, 0)
    );
    assert_eq!(flow.packets, 2);
    assert_eq!((flow.first_seen_ns, flow.last_seen_ns), (0, 10));
    // IPv6 fragment header: ports 0 too, for first and later fragments.
    let src = v6("2001:db8:1::1");
    let dst = v6("2001:db8::10");
    let mut first6 = vec![6, 0, 0, 1, 0, 0, 0, 42];
    first6.extend(tcp(1, 2));
    let key = parse_frame(LinkType::Ipv6, &ipv6(src, dst, 44, 0, &first6)).unwrap();
    assert_eq!((key.proto, key.src_port, key.dst_port), (6, 0, 0));
    let mut later6 = vec![6, 0, 0x05, 0xc8, 0, 0, 0, 42];
    later6.extend([0xee; 40]);
    let key = parse_frame(LinkType::Ipv6, &ipv6(src, dst, 44, 0, &later6)).unwrap();
    assert_eq!((key.proto, key.src_port, key.dst_port), (6, 0, 0));
}

#[test]
fn raw_ip_link_types_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.pcap");
    let v4 = ipv4(CLIENT, SERVER, 17, 0, &udp(1000, 53, b"q"));
    let v6 = ipv6(
        v6("2001:db8:1::2"),
        v6("2001:db8::11"),
        6,
        7,
        &tcp(2000, 443),
    );
    write_pcap(&raw, DataLink::RAW, &[(1, v4.clone()), (2, v6.clone())]);
    let population = read(&raw);
    assert_eq!(population.flows.len(), 2);
    assert_eq!(population.flows[0].key.dst_port, 53);
    assert_eq!(population.flows[1].key.flow_label, 7);
    assert_eq!(population.stats.ipv6_flows, 1);

    let only_v4 = dir.path().join("ipv4.pcap");
    write_pcap(&only_v4, DataLink::IPV4, &[(1, v4)]);
    assert_eq!(read(&only_v4).flows[0].key.src_port, 1000);
    let only_v6 = dir.path().join("ipv6.pcap");
    write_pcap(&only_v6, DataLink::IPV6, &[(1, v6)]);
    assert_eq!(read(&only_v6).flows[0].key.src_port, 2000);
}

#[test]
fn cooked_and_loopback_link_types_are_read() {
    let packet = ipv4(CLIENT, SERVER, 6, 0, &tcp(3333, 443));
    // Linux SLL: packet type, ARPHRD, address length, 8 address bytes, protocol.
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    sll.extend(&packet);
    // Linux SLL2: protocol, reserved, interface index, ARPHRD, type, length, address.
    let mut sll2 = vec![
        0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
    ];
    sll2.extend(&packet);
    let mut null = 2u32.to_le_bytes().to_vec();
    null.extend(&packet);
    for (link, frame) in [
        (DataLink::LINUX_SLL, sll),
        (DataLink::LINUX_SLL2, sll2),
        (DataLink::NULL, null),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cooked.pcap");
        write_pcap(&path, link, &[(1, frame)]);
        let population = read(&path);
        assert_eq!(population.flows[0].key.src_port, 3333, "{link:?}");
    }
}

#[test]
fn pcapng_is_read_with_interfaces_resolutions_and_either_byte_order() {
    for endianness in [Endianness::Little, Endianness::Big] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.pcapng");
        let a = eth(&[], 0x0800, &ipv4(CLIENT, SERVER, 6, 0, &tcp(41000, 443)));
        let b = ipv4(CLIENT, SERVER, 6, 0, &tcp(41001, 443));
        write_pcapng(
            &path,
            endianness,
            &[(DataLink::ETHERNET, Some(9)), (DataLink::RAW, None)],
            &[
                (0, 2_000_000_000, a.clone()),
                // Interface 1 has the default resolution, microseconds.
                (1, 2_000_001, b.clone()),
                (0, 2_000_003_000, a.clone()),
            ],
        );
        let population = read(&path);
        assert_eq!(population.name, "pcap:trace.pcapng");
        assert_eq!(population.flows.len(), 2, "{endianness:?}");
        let (first, second) = (population.flows[0], population.flows[1]);
        assert_eq!((first.key.src_port, first.key.ingress_port), (41000, 0));
        assert_eq!((second.key.src_port, second.key.ingress_port), (41001, 1));
        assert_eq!((first.packets, first.bytes), (2, 2 * a.len() as u64));
        assert_eq!((first.first_seen_ns, first.last_seen_ns), (0, 3_000));
        assert_eq!(second.first_seen_ns, 1_000);
        assert_eq!(population.stats.capture.unwrap().start_ns, 2_000_000_000);
    }
}

#[test]
fn pcapng_packets_on_unknown_interfaces_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ifaces.pcapng");
    let frame = ipv4(CLIENT, SERVER, 6, 0, &tcp(1, 2));
    let mut writer = PcapNgWriter::new(File::create(&path).unwrap()).unwrap();
    writer
        .write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::RAW, 65535))
        .unwrap();
    let epb = |interface_id| EnhancedPacketBlock {
        interface_id,
        timestamp: Duration::from_nanos(1),
        original_len: frame.len() as u32,
        data: Cow::Borrowed(&frame[..]),
        options: vec![],
    };
    writer.write_pcapng_block(epb(0)).unwrap();
    // The writer refuses unknown interfaces, so write a raw EPB for interface 5.
    let mut body = Vec::new();
    for word in [5u32, 0, 1, frame.len() as u32, frame.len() as u32] {
        body.extend(word.to_ne_bytes());
    }
    body.extend(&frame);
    body.resize(body.len().div_ceil(4) * 4, 0);
    let total = (body.len() + 12) as u32;
    let mut raw = Vec::new();
    raw.extend(6u32.to_ne_bytes());
    raw.extend(total.to_ne_bytes());
    raw.extend(&body);
    raw.extend(total.to_ne_bytes());
    let mut file = writer.into_inner();
    std::io::Write::write_all(&mut file, &raw).unwrap();
    drop(file);
    let population = read(&path);
    assert_eq!(population.flows.len(), 1);
    assert_eq!(skipped(&population, SkipReason::UnknownInterface), 1);
}

#[test]
fn packets_of_one_five_tuple_aggregate_into_one_flow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agg.pcap");
    let forward = |pad: usize| {
        let mut t = tcp(40000, 443);
        t.extend(vec![0u8; pad]);
        eth(&[], 0x0800, &ipv4(CLIENT, SERVER, 6, 0, &t))
    };
    let reverse = eth(&[], 0x0800, &ipv4(SERVER, CLIENT, 6, 0, &tcp(443, 40000)));
    let other = eth(&[], 0x0800, &ipv4(CLIENT, SERVER, 6, 0, &tcp(40002, 443)));
    let packets = vec![
        (100, forward(0)),
        (150, reverse),
        (200, forward(100)),
        (250, other),
        (300, forward(1000)),
    ];
    write_pcap(&path, DataLink::ETHERNET, &packets);
    let population = read(&path);
    let ports: Vec<u16> = population.flows.iter().map(|f| f.key.src_port).collect();
    assert_eq!(
        ports,
        [40000, 443, 40002],
        "flows in first-seen order, one per direction"
    );
    let flow = population.flows[0];
    assert_eq!(flow.packets, 3);
    assert_eq!(flow.bytes, 3 * 54 + 100 + 1000);
    assert_eq!(
        (flow.first_seen_ns, flow.last_seen_ns, flow.duration_ns()),
        (0, 200, 200)
    );
    assert_eq!(population.stats.total_packets, 5);
    assert_eq!(population.stats.distinct_sources, 2);
}

#[test]
fn bytes_are_original_lengths_even_beyond_the_snaplen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.pcap");
    let frame = eth(&[], 0x0800, &ipv4(CLIENT, SERVER, 6, 0, &tcp(40000, 443)));
    let header = PcapHeader {
        snaplen: 64,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(File::create(&path).unwrap(), header).unwrap();
    writer
        .write_packet(&PcapPacket::new(Duration::from_micros(3), 1514, &frame))
        .unwrap();
    drop(writer);
    assert_eq!(read(&path).flows[0].bytes, 1514);
}

#[test]
fn a_truncated_packet_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trunc.pcap");
    let good = eth(&[], 0x0800, &ipv4(CLIENT, SERVER, 6, 0, &tcp(40000, 443)));
    let cut_ip = good[..14 + 12].to_vec();
    let cut_tcp = good[..14 + 20 + 3].to_vec();
    let cut_eth = good[..10].to_vec();
    let arp = eth(&[], 0x0806, &[0; 28]);
    write_pcap(
        &path,
        DataLink::ETHERNET,
        &[(1, good), (2, cut_ip), (3, cut_tcp), (4, cut_eth), (5, arp)],
    );
    let population = read(&path);
    assert_eq!(population.flows.len(), 1);
    assert_eq!(skipped(&population, SkipReason::TruncatedIpv4), 1);
    assert_eq!(skipped(&population, SkipReason::TruncatedL4), 1);
    assert_eq!(skipped(&population, SkipReason::TruncatedLinkHeader), 1);
    assert_eq!(skipped(&population, SkipReason::NonIp), 1);
    let capture = population.stats.capture.unwrap();
    assert_eq!(
        (
            capture.packets_read,
            capture.packets_used,
            capture.packets_skipped()
        ),
        (5, 1, 4)
    );
    assert!(capture.skipped_summary().contains("truncated-ipv4: 1"));
}

#[test]
fn a_file_cut_inside_a_record_keeps_the_flows_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.pcap");
    let frame = eth(&[], 0x0800, &ipv4(CLIENT, SERVER, 6, 0, &tcp(40000, 443)));
    write_pcap(&path, DataLink::ETHERNET, &[(1, frame.clone()), (2, frame)]);
    let len = std::fs::metadata(&path).unwrap().len();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let population = read(&path);
    assert_eq!(population.flows[0].packets, 1);
    assert_eq!(skipped(&population, SkipReason::TruncatedRecord), 1);
}

#[test]
fn the_flow_limit_keeps_the_first_flows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limit.pcap");
    let frame = |port| eth(&[], 0x0800, &ipv4(CLIENT, SERVER, 6, 0, &tcp(port, 443)));
    write_pcap(
        &path,
        DataLink::ETHERNET,
        &[(1, frame(1)), (2, frame(2)), (3, frame(1)), (4, frame(3))],
    );
    let population = read_capture(&path, 1).unwrap();
    assert_eq!(population.flows.len(), 1);
    assert_eq!(population.flows[0].packets, 2);
    assert_eq!(skipped(&population, SkipReason::FlowLimit), 2);
    // A spec's flow count is for synthetic models: a capture is read whole.
    let spec = TrafficSpec::new(TrafficModel::Pcap(path.clone()), 1);
    let population = spec.generate().unwrap();
    assert_eq!(population.flows.len(), 3);
    assert_eq!(population.name, "pcap:limit.pcap");
}

fn capture_error(path: &Path) -> String {
    match read_capture(path, 0) {
        Ok(population) => panic!(
            "{} read as {} flows",
            path.display(),
            population.flows.len()
        ),
        Err(err) => err.to_string(),
    }
}

#[test]
fn a_garbage_file_is_a_clear_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.pcap");
    std::fs::write(&path, b"this is not a capture, just some text\n").unwrap();
    let message = capture_error(&path);
    assert_eq!(
        message,
        format!(
            "cannot read capture {}: file is not a pcap or pcapng capture",
            path.display()
        )
    );

    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    assert!(capture_error(&empty).ends_with("empty.pcap: file is empty"));

    let gz = dir.path().join("trace.pcap.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]).unwrap();
    assert!(capture_error(&gz).contains("gzip-compressed; decompress it first"));

    let header_only = dir.path().join("short.pcap");
    std::fs::write(&header_only, 0xa1b2c3d4u32.to_be_bytes()).unwrap();
    let message = capture_error(&header_only);
    assert!(
        message.contains("short.pcap: the pcap file header is malformed or truncated"),
        "{message}"
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.pcap");
    assert_eq!(
        capture_error(&path),
        format!(
            "cannot read capture {}: file does not exist",
            path.display()
        )
    );
    let spec = TrafficSpec::new(TrafficModel::Pcap(path.clone()), 0);
    assert!(matches!(spec.generate(), Err(TrafficError::Pcap { .. })));
}

#[test]
fn a_capture_without_ip_flows_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let arp = dir.path().join("arp.pcap");
    write_pcap(&arp, DataLink::ETHERNET, &[(1, eth(&[], 0x0806, &[0; 28]))]);
    let message = capture_error(&arp);
    assert!(
        message.contains("arp.pcap holds no IPv4 or IPv6 flow"),
        "{message}"
    );
    assert!(
        message.contains("1 packets read; skipped: non-ip: 1"),
        "{message}"
    );

    let wifi = dir.path().join("wifi.pcap");
    write_pcap(&wifi, DataLink::IEEE802_11, &[(1, vec![0; 40])]);
    let message = capture_error(&wifi);
    assert!(
        message.contains("unsupported-link-type: 1 (link type 105)"),
        "{message}"
    );

    let nothing = dir.path().join("nothing.pcapng");
    write_pcapng(
        &nothing,
        Endianness::Little,
        &[(DataLink::ETHERNET, None)],
        &[],
    );
    assert!(matches!(
        read_capture(&nothing, 0),
        Err(TrafficError::NoFlows { packets: 0, .. })
    ));
}

// ------------------------------------------------------------- proptests --

const LINKS: [LinkType; 8] = [
    LinkType::Null,
    LinkType::Ethernet,
    LinkType::Raw,
    LinkType::Loop,
    LinkType::LinuxSll,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::LinuxSll2,
];

/// Ports are zero unless the protocol has ports; IPv4 has no flow label.
fn check_key(result: Result<hashing::FlowKey, SkipReason>) {
    match result {
        Ok(key) => {
            assert_eq!(key.src.is_ipv4(), key.dst.is_ipv4());
            if !matches!(key.proto, 6 | 17 | 33 | 132 | 136) {
                assert_eq!((key.src_port, key.dst_port), (0, 0));
            }
            if key.src.is_ipv4() {
                assert_eq!(key.flow_label, 0);
            }
            assert!(key.flow_label < 1 << 20);
            assert_eq!(key.ingress_port, 0);
        }
        Err(reason) => assert!(!reason.as_str().is_empty()),
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic_the_parser(
        link in 0..LINKS.len(),
        frame in proptest::collection::vec(any::<u8>(), 0..160),
    ) {
        check_key(parse_frame(LINKS[link], &frame));
    }

    #[test]
    fn random_bytes_after_plausible_headers_never_panic_the_parser(
        v6 in any::<bool>(),
        tags in 0usize..10,
        first in any::<u8>(),
        next in prop::sample::select(vec![0u8, 6, 17, 43, 44, 50, 51, 59, 60, 132]),
        tail in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        // Ethernet, some VLAN tags, then an IP header whose fields and
        // payload are random.
        let mut frame = vec![0u8; 12];
        for _ in 0..tags {
            frame.extend([0x81, 0x00, 0, 1]);
        }
        frame.extend(if v6 { [0x86, 0xdd] } else { [0x08, 0x00] });
        frame.push(if v6 { 0x60 | (first & 0x0f) } else { 0x40 | (first & 0x0f) });
        if v6 {
            frame.extend([0, 0, 0, 0, next, 64]);
        }
        frame.extend(&tail);
        check_key(parse_frame(LinkType::Ethernet, &frame));
        if tags > 8 {
            prop_assert_eq!(parse_frame(LinkType::Ethernet, &frame), Err(SkipReason::TooManyVlanTags));
        }
    }

    #[test]
    fn every_prefix_of_a_valid_frame_is_a_key_or_a_skip(cut in 0usize..200, with_hbh in any::<bool>()) {
        let mut payload = if with_hbh { hop_by_hop(6) } else { Vec::new() };
        payload.extend(tcp(1, 2));
        let next = if with_hbh { 0 } else { 6 };
        let frame = eth(&[(0x8100, 1)], 0x86dd, &ipv6(v6("2001:db8::1"), v6("2001:db8::2"), next, 0, &payload));
        let cut = cut.min(frame.len());
        let result = parse_frame(LinkType::Ethernet, &frame[..cut]);
        check_key(result);
        prop_assert_eq!(result.is_ok(), cut == frame.len() || cut >= frame.len() - 16);
    }
}
