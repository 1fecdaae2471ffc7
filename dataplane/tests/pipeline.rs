//! Behaviour of the forwarding pipeline through the memory backend: rewrite
//! and TTL, spreading and stickiness, member removal, the control path and
//! ICMP errors, rate limiting, neighbour misses, garbage input, counters and
//! the flow tracker.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use dataplane::fib::lpm4::Lpm4Config;
use dataplane::fib::lpm6::Lpm6Config;
use dataplane::fib::table::{
    self, Applied, FibConfig, FibReader, FibUpdate, FibWriter, GroupPolicy, Nexthop,
};
use dataplane::io::{MemoryIo, PacketBatch, PacketIo};
use dataplane::neigh::{Neighbour, StaticNeighbours};
use dataplane::packet::{internet_checksum, DropReason, Ipv4Packet};
use dataplane::pipeline::{
    ControlPacket, ControlReason, Counters, Disposition, DropCause, IcmpConfig, Pipeline,
    PipelineConfig, PipelineDrop, PortConfig,
};
use hashing::{Algorithm, MemberId};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

const SEC: u64 = 1_000_000_000;
const CLIENT_MAC: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 1];
const ROUTER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const SERVICE_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const MEMBERS: [MemberId; 4] = [1, 2, 3, 4];

fn router_v6() -> Ipv6Addr {
    "2001:db8::1".parse().unwrap()
}

fn service_v6() -> Ipv6Addr {
    "2001:db8:5::10".parse().unwrap()
}

/// Port `p`'s MAC.
fn port_mac(p: u32) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, p as u8]
}

/// Member `m`'s MAC; member `m` sits behind port `m`.
fn member_mac(m: MemberId) -> [u8; 6] {
    [0x02, 0xaa, 0, 0, 0, m as u8]
}

fn nh4(m: MemberId) -> Nexthop {
    Nexthop::new(m, IpAddr::V4(Ipv4Addr::new(10, 0, 0, m as u8)))
}

fn nh6(m: MemberId) -> Nexthop {
    Nexthop::new(
        m,
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, m as u16)),
    )
}

fn route(prefix: &str, nexthops: Vec<Nexthop>, algorithm: Algorithm) -> FibUpdate {
    FibUpdate::SetRoute {
        prefix: prefix.parse().unwrap(),
        nexthops,
        policy: Some(GroupPolicy {
            algorithm,
            ..GroupPolicy::default()
        }),
    }
}

fn routes(members: &[MemberId], algorithm: Algorithm) -> Vec<FibUpdate> {
    vec![
        route(
            "198.51.100.0/24",
            members.iter().map(|&m| nh4(m)).collect(),
            algorithm,
        ),
        route(
            "2001:db8:5::/48",
            members.iter().map(|&m| nh6(m)).collect(),
            algorithm,
        ),
    ]
}

struct Router {
    writer: FibWriter,
    pipeline: Pipeline,
    neighbours: Arc<StaticNeighbours>,
    io: MemoryIo,
    rx: PacketBatch,
    tx: PacketBatch,
}

struct Outcome {
    dispositions: Vec<Disposition>,
    tx: Vec<(u32, Vec<u8>)>,
    control: Vec<ControlPacket>,
}

fn config() -> PipelineConfig {
    let mut ports = vec![PortConfig {
        mac: port_mac(0),
        addrs: vec![IpAddr::V4(ROUTER_V4), IpAddr::V6(router_v6())],
    }];
    for p in 1..=4u32 {
        ports.push(PortConfig {
            mac: port_mac(p),
            addrs: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100 + p as u8))],
        });
    }
    PipelineConfig::new(ports)
}

fn router_with(config: PipelineConfig, algorithm: Algorithm) -> Router {
    let (mut writer, reader): (FibWriter, FibReader) = table::new(FibConfig {
        lpm4: Lpm4Config { tbl8_groups: 16 },
        lpm6: Lpm6Config { groups: 64 },
        grace: Duration::from_millis(20),
        ..FibConfig::default()
    });
    writer.apply(&routes(&MEMBERS, algorithm), 0).unwrap();
    let neighbours = Arc::new(StaticNeighbours::new());
    for m in MEMBERS {
        for nh in [nh4(m), nh6(m)] {
            neighbours.insert(
                nh.addr,
                Neighbour {
                    mac: member_mac(m),
                    port: m,
                },
            );
        }
    }
    let pipeline = Pipeline::new(config, reader, neighbours.clone()).unwrap();
    Router {
        writer,
        pipeline,
        neighbours,
        io: MemoryIo::new(),
        rx: PacketBatch::default(),
        tx: PacketBatch::default(),
    }
}

fn router() -> Router {
    router_with(config(), Algorithm::Resilient)
}

impl Router {
    /// Feeds `frames` (all on `port`) through the pipeline at `now`.
    fn run(&mut self, port: u32, frames: &[Vec<u8>], now: u64) -> Outcome {
        for f in frames {
            self.io.inject(port, f.clone());
        }
        let mut out = Outcome {
            dispositions: Vec::new(),
            tx: Vec::new(),
            control: Vec::new(),
        };
        while self.io.receive(&mut self.rx) > 0 {
            self.pipeline
                .process(&mut self.rx, &mut self.tx, &mut out.control, now);
            out.dispositions
                .extend_from_slice(self.pipeline.dispositions());
            assert_eq!(self.io.transmit(&self.tx), self.tx.len());
            self.tx.clear();
        }
        out.tx = self.io.take_transmitted();
        out
    }

    fn apply(&mut self, updates: &[FibUpdate], now: u64) -> Applied {
        self.writer.apply(updates, now).unwrap()
    }
}

fn eth(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn tcp(sport: u16, dport: u16) -> [u8; 24] {
    let mut t = [0u8; 24];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02; // SYN
    t[20..24].copy_from_slice(b"data");
    t
}

fn ipv4_tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, ttl: u8) -> Vec<u8> {
    let l4 = tcp(sport, dport);
    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip[8] = ttl;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let c = internet_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&l4);
    eth(port_mac(0), 0x0800, &ip)
}

fn ipv6_tcp(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, hops: u8) -> Vec<u8> {
    let l4 = tcp(sport, dport);
    let mut ip = vec![0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
    ip[6] = 6;
    ip[7] = hops;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&dst.octets());
    ip.extend_from_slice(&l4);
    eth(port_mac(0), 0x86dd, &ip)
}

fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&CLIENT_MAC);
    a.extend_from_slice(&[192, 0, 2, 50]);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&target.octets());
    eth([0xff; 6], 0x0806, &a)
}

/// `n` TCP flows from random clients to the IPv4 service, as frames.
fn flows(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Pcg64::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let src = Ipv4Addr::from(rng.gen::<u32>() | 0x0100_0000);
            ipv4_tcp(src, rng.gen_range(1024..65535), SERVICE_V4, 443, 64)
        })
        .collect()
}

fn egress(d: &Disposition) -> u32 {
    match d {
        Disposition::Forward { port } => *port,
        other => panic!("not forwarded: {other:?}"),
    }
}

fn assert_counters_add_up(c: &Counters) {
    assert_eq!(c.rx_packets, c.forwarded + c.drops() + c.control_total());
    assert_eq!(c.tx_packets(), c.forwarded + c.icmp.generated);
}

#[test]
fn tcp_to_service_ip_leaves_on_member_port_with_macs_rewritten_and_ttl_decremented() {
    let mut r = router();
    let frame = ipv4_tcp(Ipv4Addr::new(203, 0, 113, 7), 40000, SERVICE_V4, 443, 64);
    let out = r.run(0, std::slice::from_ref(&frame), 0);
    let port = egress(&out.dispositions[0]);
    assert!(MEMBERS.contains(&port));
    assert_eq!(out.tx.len(), 1);
    let (tx_port, sent) = &out.tx[0];
    assert_eq!(*tx_port, port);
    assert_eq!(sent[0..6], member_mac(port));
    assert_eq!(sent[6..12], port_mac(port));
    let ip = Ipv4Packet::new_checked(&sent[14..]).unwrap();
    assert_eq!(ip.ttl(), 63);
    assert!(ip.verify_checksum());
    assert_eq!(sent[14..22], frame[14..22], "only TTL and checksum change");
    assert_eq!(sent[14 + 9], frame[14 + 9]);
    assert_eq!(sent[14 + 12..], frame[14 + 12..]);
    assert!(out.control.is_empty());
}

#[test]
fn ipv6_hop_limit_is_decremented_and_macs_rewritten() {
    let mut r = router();
    let src: Ipv6Addr = "2001:db8:c::7".parse().unwrap();
    let frame = ipv6_tcp(src, 40000, service_v6(), 443, 10);
    let out = r.run(0, std::slice::from_ref(&frame), 0);
    let port = egress(&out.dispositions[0]);
    let (_, sent) = &out.tx[0];
    assert_eq!(sent[0..6], member_mac(port));
    assert_eq!(sent[6..12], port_mac(port));
    assert_eq!(sent[14 + 7], 9);
    assert_eq!(sent[14 + 8..], frame[14 + 8..]);
}

#[test]
fn flows_spread_over_all_members_and_each_flow_sticks_to_its_member() {
    let mut r = router();
    let frames = flows(2000, 1);
    let first = r.run(0, &frames, 0);
    let second = r.run(0, &frames, SEC);
    let mut per_member = [0usize; 5];
    for (a, b) in first.dispositions.iter().zip(&second.dispositions) {
        assert_eq!(egress(a), egress(b), "a flow changed member");
        per_member[egress(a) as usize] += 1;
    }
    for m in MEMBERS {
        assert!(per_member[m as usize] > 300, "member {m}: {per_member:?}");
    }
    let c = r.pipeline.counters();
    assert_eq!(c.forwarded, 4000);
    assert_eq!(c.groups().count(), 1);
    assert_eq!(c.members().count(), 4);
    assert_eq!(c.members().map(|(_, n)| n).sum::<u64>(), 4000);
    assert_eq!(c.groups().map(|(_, n)| n).sum::<u64>(), 4000);
}

/// Egress ports of `frames` before and after removing member 4.
fn egress_across_removal(algorithm: Algorithm) -> Vec<(u32, u32)> {
    let mut r = router_with(config(), algorithm);
    let frames = flows(2000, 2);
    let before = r.run(0, &frames, 0);
    r.apply(&routes(&[1, 2, 3], algorithm), SEC);
    let after = r.run(0, &frames, 2 * SEC);
    before
        .dispositions
        .iter()
        .zip(&after.dispositions)
        .map(|(a, b)| (egress(a), egress(b)))
        .collect()
}

#[test]
fn removing_a_member_moves_only_its_flows_with_resilient() {
    let pairs = egress_across_removal(Algorithm::Resilient);
    for &(before, after) in &pairs {
        assert_ne!(after, 4);
        if before == 4 {
            assert_ne!(after, 4);
        } else {
            assert_eq!(before, after, "a flow of a surviving member moved");
        }
    }
    assert!(pairs.iter().any(|&(b, _)| b == 4));
}

#[test]
fn removing_a_member_moves_most_flows_with_modulo() {
    let pairs = egress_across_removal(Algorithm::ModuloN);
    let moved = pairs.iter().filter(|(b, a)| b != a).count();
    assert!(pairs.iter().all(|&(_, a)| a != 4));
    assert!(moved * 2 > pairs.len(), "moved {moved} of {}", pairs.len());
}

#[test]
fn ttl_one_goes_to_control_path_and_yields_time_exceeded_quoting_the_header() {
    let mut r = router();
    let client = Ipv4Addr::new(203, 0, 113, 7);
    let frame = ipv4_tcp(client, 40000, SERVICE_V4, 443, 1);
    let out = r.run(0, std::slice::from_ref(&frame), 0);
    assert_eq!(
        out.dispositions,
        [Disposition::Control(ControlReason::TtlExceeded)]
    );
    assert_eq!(out.control.len(), 1);
    assert_eq!(out.control[0].frame, frame);
    assert_eq!(out.tx.len(), 1);
    let (port, reply) = &out.tx[0];
    assert_eq!(*port, 0);
    assert_eq!(reply[0..6], CLIENT_MAC);
    assert_eq!(reply[6..12], port_mac(0));
    let ip = Ipv4Packet::new_checked(&reply[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.protocol(), 1);
    assert_eq!(ip.src_addr(), ROUTER_V4);
    assert_eq!(ip.dst_addr(), client);
    let icmp = ip.payload();
    assert_eq!((icmp[0], icmp[1]), (11, 0));
    assert_eq!(internet_checksum(icmp), 0);
    assert_eq!(
        icmp[8..],
        frame[14..],
        "the whole original packet is quoted"
    );
    assert_eq!(r.pipeline.counters().icmp.generated, 1);
}

#[test]
fn ipv6_hop_limit_one_yields_icmpv6_time_exceeded_with_valid_checksum() {
    let mut r = router();
    let client: Ipv6Addr = "2001:db8:c::7".parse().unwrap();
    let frame = ipv6_tcp(client, 40000, service_v6(), 443, 1);
    let out = r.run(0, std::slice::from_ref(&frame), 0);
    assert_eq!(
        out.dispositions,
        [Disposition::Control(ControlReason::TtlExceeded)]
    );
    let (_, reply) = &out.tx[0];
    let ip = &reply[14..];
    assert_eq!(ip[6], 58);
    assert_eq!(ip[8..24], router_v6().octets());
    assert_eq!(ip[24..40], client.octets());
    let msg = &ip[40..];
    assert_eq!((msg[0], msg[1]), (3, 0));
    assert_eq!(msg[8..], frame[14..]);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&ip[8..40]);
    pseudo.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(msg);
    assert_eq!(internet_checksum(&pseudo), 0);
}

#[test]
fn no_route_goes_to_control_path_and_yields_icmp_unreachable() {
    let mut r = router();
    let client = Ipv4Addr::new(203, 0, 113, 7);
    let frame = ipv4_tcp(client, 40000, Ipv4Addr::new(8, 8, 8, 8), 53, 64);
    let out = r.run(0, std::slice::from_ref(&frame), 0);
    assert_eq!(
        out.dispositions,
        [Disposition::Control(ControlReason::NoRoute)]
    );
    let (port, reply) = &out.tx[0];
    assert_eq!(*port, 0);
    let ip = Ipv4Packet::new_checked(&reply[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.dst_addr(), client);
    let icmp = ip.payload();
    assert_eq!((icmp[0], icmp[1]), (3, 0));
    assert_eq!(internet_checksum(icmp), 0);
    assert_eq!(icmp[8..28], frame[14..34]);
    assert_eq!(
        r.pipeline.counters().control_count(ControlReason::NoRoute),
        1
    );
}

#[test]
fn icmp_rate_limiter_caps_errors_per_second_of_virtual_time() {
    let mut config = config();
    config.icmp = IcmpConfig {
        rate_pps: 10,
        burst: 5,
    };
    let mut r = router_with(config, Algorithm::Resilient);
    let frame = ipv4_tcp(
        Ipv4Addr::new(203, 0, 113, 7),
        1,
        Ipv4Addr::new(8, 8, 8, 8),
        2,
        64,
    );
    // 100 packets per second for 3 seconds.
    let mut sent = 0;
    for i in 0..300u64 {
        sent += r
            .run(0, std::slice::from_ref(&frame), i * SEC / 100)
            .tx
            .len() as u64;
    }
    let icmp = r.pipeline.counters().icmp;
    assert_eq!(icmp.generated, sent);
    assert!(sent <= 5 + 10 * 3, "{sent} errors in 3 s");
    assert!(sent >= 10 * 3 - 1, "{sent} errors in 3 s");
    assert_eq!(icmp.generated + icmp.rate_limited, 300);
    // A quiet second refills the bucket up to its burst.
    let after = r.run(0, &vec![frame; 20], 10 * SEC).tx.len();
    assert_eq!(after, 5);
}

#[test]
fn neighbour_miss_is_dropped_counted_and_requested() {
    let mut r = router();
    for m in MEMBERS {
        r.neighbours.remove(nh4(m).addr);
    }
    let frame = ipv4_tcp(Ipv4Addr::new(203, 0, 113, 7), 40000, SERVICE_V4, 443, 64);
    let out = r.run(0, &[frame], 0);
    let miss = DropCause::Pipeline(PipelineDrop::NeighbourMiss);
    assert_eq!(out.dispositions, [Disposition::Drop(miss)]);
    assert!(out.tx.is_empty());
    assert_eq!(r.pipeline.counters().drop_count(miss), 1);
    let requested = r.neighbours.requests();
    assert_eq!(requested.len(), 1);
    assert!(MEMBERS.iter().any(|&m| nh4(m).addr == requested[0]));
}

#[test]
fn packets_to_router_address_and_arp_go_to_control_path() {
    let mut r = router();
    let client = Ipv4Addr::new(192, 0, 2, 50);
    let local = ipv4_tcp(client, 40000, ROUTER_V4, 179, 1);
    let local6 = ipv6_tcp("2001:db8::50".parse().unwrap(), 1, router_v6(), 179, 1);
    let arp = arp_request(ROUTER_V4);
    let out = r.run(0, &[local.clone(), local6, arp.clone()], 0);
    assert_eq!(
        out.dispositions,
        [
            Disposition::Control(ControlReason::Local),
            Disposition::Control(ControlReason::Local),
            Disposition::Control(ControlReason::Arp),
        ]
    );
    assert_eq!(out.control[0].frame, local);
    assert_eq!(out.control[2].frame, arp);
    assert!(out.control.iter().all(|c| c.port == 0));
    assert!(out.tx.is_empty(), "no ICMP for local traffic");
}

#[test]
fn unicast_frames_for_another_mac_are_dropped_as_not_for_us() {
    let mut r = router();
    let mut frame = ipv4_tcp(Ipv4Addr::new(203, 0, 113, 7), 40000, SERVICE_V4, 443, 64);
    frame[0..6].copy_from_slice(&[0x02, 0x99, 0, 0, 0, 9]);
    let out = r.run(0, &[frame], 0);
    let cause = DropCause::Pipeline(PipelineDrop::NotForUs);
    assert_eq!(out.dispositions, [Disposition::Drop(cause)]);
    assert_eq!(cause.as_str(), "not-for-us");
    assert_eq!(r.pipeline.counters().drop_count(cause), 1);
}

#[test]
fn truncated_frames_are_dropped_with_their_reason() {
    let mut r = router();
    let frame = ipv4_tcp(Ipv4Addr::new(203, 0, 113, 7), 40000, SERVICE_V4, 443, 64);
    let out = r.run(0, &[frame[..10].to_vec(), frame[..30].to_vec()], 0);
    assert_eq!(
        out.dispositions,
        [
            Disposition::Drop(DropCause::Parse(DropReason::TruncatedEthernet)),
            Disposition::Drop(DropCause::Parse(DropReason::TruncatedIpv4)),
        ]
    );
    let c = r.pipeline.counters();
    assert_eq!(c.parse_drops.count(DropReason::TruncatedIpv4), 1);
    assert_counters_add_up(c);
}

#[test]
fn counters_add_up_per_port_and_merge_across_workers() {
    let mut r = router();
    let mut frames = flows(100, 3);
    frames.push(ipv4_tcp(Ipv4Addr::new(203, 0, 113, 7), 1, SERVICE_V4, 2, 1));
    frames.push(ipv4_tcp(
        Ipv4Addr::new(203, 0, 113, 7),
        1,
        Ipv4Addr::new(8, 8, 8, 8),
        2,
        9,
    ));
    frames.push(arp_request(ROUTER_V4));
    frames.push(vec![0xde, 0xad]);
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    r.run(0, &frames, 0);
    let c = r.pipeline.counters().clone();
    assert_eq!(c.rx_packets, 104);
    assert_eq!(c.rx_bytes, bytes);
    assert_eq!(c.ports[0].rx_packets, 104);
    assert_eq!(c.forwarded, 100);
    assert_eq!(c.control_total(), 3);
    assert_eq!(c.drops(), 1);
    assert_eq!(c.icmp.generated, 2);
    assert_eq!(c.ports[0].tx_packets, 2);
    assert_eq!(c.ports[1..].iter().map(|p| p.tx_packets).sum::<u64>(), 100);
    assert_counters_add_up(&c);

    let mut total = Counters::default();
    total.merge(&c);
    total.merge(&c);
    assert_eq!(total.rx_packets, 208);
    assert_eq!(total.ports[0].rx_bytes, 2 * bytes);
    assert_eq!(total.members().map(|(_, n)| n).sum::<u64>(), 200);
    for ((g, m), n) in c.members() {
        assert_eq!(total.member_packets(g, m), 2 * n);
    }
    for (g, n) in c.groups() {
        assert_eq!(total.group_packets(g), 2 * n);
    }
    assert_eq!(total.drops(), 2);
    assert_counters_add_up(&total);
}

#[test]
fn tracker_reports_match_the_flows_that_changed_egress() {
    let mut config = config();
    config.track_flows = true;
    let mut r = router_with(config, Algorithm::ModuloN);
    let frames = flows(2000, 4);
    let before = r.run(0, &frames, 0);
    let applied = r.apply(&routes(&[1, 2, 3], Algorithm::ModuloN), SEC);
    assert_eq!(applied.changes.len(), 2, "one change per family's group");
    for change in applied.changes {
        r.pipeline.group_changed(change).unwrap();
    }
    let after = r.run(0, &frames, 2 * SEC);
    let (mut unavoidable, mut collateral) = (0u64, 0u64);
    for (a, b) in before.dispositions.iter().zip(&after.dispositions) {
        match (egress(a), egress(b)) {
            (4, _) => unavoidable += 1,
            (x, y) if x != y => collateral += 1,
            _ => {}
        }
    }
    let tracker = r.pipeline.tracker().unwrap();
    let v4_group = r
        .pipeline
        .counters()
        .groups()
        .map(|(g, _)| g)
        .collect::<Vec<_>>();
    let report = tracker
        .reports()
        .into_iter()
        .find(|rep| v4_group.contains(&rep.group))
        .unwrap();
    assert_eq!(report.live_flows, 2000);
    assert_eq!(report.unavoidable, unavoidable);
    assert_eq!(report.collateral, collateral);
    assert!(unavoidable > 0 && collateral > 0);
}

#[test]
fn memory_io_round_robins_ports_and_drops_oversize_frames() {
    let mut io = MemoryIo::new();
    io.inject(2, vec![2u8; 60]);
    io.inject(1, vec![1u8; 60]);
    io.inject(1, vec![1u8; 61]);
    io.inject(1, vec![0u8; 5000]);
    let mut batch = PacketBatch::new(2, 2048);
    assert_eq!(io.receive(&mut batch), 2);
    let ports: Vec<u32> = batch.iter().map(|b| b.port()).collect();
    assert_eq!(ports, [1, 2]);
    batch.clear();
    assert_eq!(io.receive(&mut batch), 1);
    assert_eq!(batch.get(0).unwrap().len(), 61);
    assert_eq!(io.oversize_drops(), 1);
    assert_eq!(io.pending(), 0);
    assert_eq!(io.transmit(&batch), 1);
    assert_eq!(io.take_transmitted(), [(1, vec![1u8; 61])]);
}

/// Random frames, plus valid ones with a byte changed and cut short (which
/// reach deeper layers).
fn garbage() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let random = prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..40);
    let mutations = prop::collection::vec((any::<usize>(), any::<u8>(), any::<usize>()), 0..8);
    (random, mutations).prop_map(|(mut all, mutations)| {
        for (at, byte, cut) in mutations {
            let mut f = if at % 2 == 0 {
                ipv6_tcp("2001:db8:c::7".parse().unwrap(), 1, service_v6(), 2, 64)
            } else {
                ipv4_tcp(Ipv4Addr::new(203, 0, 113, 7), 1, SERVICE_V4, 2, 64)
            };
            let i = at % f.len();
            f[i] = byte;
            f.truncate(cut % (f.len() + 1));
            all.push(f);
        }
        all
    })
}

#[test]
fn garbage_frames_never_panic_and_every_frame_is_counted() {
    // One router for every case: building a FIB allocates the 64 MiB IPv4
    // table.
    let r = std::cell::RefCell::new(router());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(256));
    runner
        .run(&garbage(), |all| {
            let mut r = r.borrow_mut();
            let before = r.pipeline.counters().clone();
            let out = r.run(0, &all, 0);
            prop_assert_eq!(out.dispositions.len(), all.len());
            let c = r.pipeline.counters();
            prop_assert_eq!(c.rx_packets - before.rx_packets, all.len() as u64);
            prop_assert_eq!(c.rx_packets, c.forwarded + c.drops() + c.control_total());
            prop_assert_eq!(c.tx_packets(), c.forwarded + c.icmp.generated);
            prop_assert_eq!(out.tx.len() as u64, c.tx_packets() - before.tx_packets());
            Ok(())
        })
        .unwrap();
}

#[test]
fn neighbour_changes_between_batches_take_effect_at_the_next_batch() {
    let mut r = router();
    let frame = ipv4_tcp(Ipv4Addr::new(203, 0, 113, 7), 40000, SERVICE_V4, 443, 64);
    let out = r.run(0, std::slice::from_ref(&frame), 0);
    let member = egress(&out.dispositions[0]);
    assert_eq!(out.tx[0].1[0..6], member_mac(member));

    // A new MAC for the member's nexthop: the next batch uses it.
    let new_mac = [0x02, 0xbb, 0, 0, 0, 9];
    r.neighbours.insert(
        nh4(member).addr,
        Neighbour {
            mac: new_mac,
            port: member,
        },
    );
    let out = r.run(0, std::slice::from_ref(&frame), SEC);
    assert_eq!(out.dispositions, [Disposition::Forward { port: member }]);
    assert_eq!(out.tx[0].1[0..6], new_mac);

    // Removed: a miss, requested, in every later batch until it returns.
    r.neighbours.remove(nh4(member).addr);
    let miss = Disposition::Drop(DropCause::Pipeline(PipelineDrop::NeighbourMiss));
    for t in 2..4 {
        let out = r.run(0, &[frame.clone(), frame.clone()], t * SEC);
        assert_eq!(out.dispositions, [miss, miss]);
        assert_eq!(r.neighbours.take_requests(), [nh4(member).addr]);
    }
    r.neighbours.insert(
        nh4(member).addr,
        Neighbour {
            mac: member_mac(member),
            port: member,
        },
    );
    let out = r.run(0, std::slice::from_ref(&frame), 4 * SEC);
    assert_eq!(out.dispositions, [Disposition::Forward { port: member }]);
    assert_eq!(out.tx[0].1[0..6], member_mac(member));
}

/// A table that promises nothing about changes (no generation), so the
/// pipeline must resolve again in every batch.
struct Unversioned(std::sync::Mutex<Option<Neighbour>>);

impl dataplane::neigh::NeighbourTable for Unversioned {
    fn resolve(&self, _addr: IpAddr) -> Option<Neighbour> {
        *self.0.lock().unwrap()
    }
}

#[test]
fn a_neighbour_table_without_generations_is_read_in_every_batch() {
    let (mut writer, reader) = table::new(FibConfig {
        lpm4: Lpm4Config { tbl8_groups: 16 },
        lpm6: Lpm6Config { groups: 16 },
        grace: Duration::from_millis(1),
        ..FibConfig::default()
    });
    writer
        .apply(
            &[route("198.51.100.0/24", vec![nh4(1)], Algorithm::Resilient)],
            0,
        )
        .unwrap();
    let table = Arc::new(Unversioned(std::sync::Mutex::new(Some(Neighbour {
        mac: member_mac(1),
        port: 1,
    }))));
    let mut pipeline = Pipeline::new(config(), reader, table.clone()).unwrap();
    let frame = ipv4_tcp(Ipv4Addr::new(203, 0, 113, 7), 40000, SERVICE_V4, 443, 64);
    let run = |pipeline: &mut Pipeline| {
        let mut rx = PacketBatch::default();
        let mut tx = PacketBatch::default();
        rx.push(0, &frame);
        pipeline.process(&mut rx, &mut tx, &mut Vec::new(), 0);
        let sent: Option<Vec<u8>> = tx.iter().next().map(|b| b.frame().to_vec());
        (pipeline.dispositions().to_vec(), sent)
    };
    let (d, sent) = run(&mut pipeline);
    assert_eq!(d, [Disposition::Forward { port: 1 }]);
    assert_eq!(sent.unwrap()[0..6], member_mac(1));
    *table.0.lock().unwrap() = Some(Neighbour {
        mac: member_mac(2),
        port: 2,
    });
    let (d, sent) = run(&mut pipeline);
    assert_eq!(d, [Disposition::Forward { port: 2 }]);
    assert_eq!(sent.unwrap()[0..6], member_mac(2));
    *table.0.lock().unwrap() = None;
    let (d, _) = run(&mut pipeline);
    assert_eq!(
        d,
        [Disposition::Drop(DropCause::Pipeline(
            PipelineDrop::NeighbourMiss
        ))]
    );
}

#[test]
fn forwarding_marks_the_flows_resilient_bucket_busy() {
    let mut r = router();
    let (src, sport) = (Ipv4Addr::new(203, 0, 113, 7), 40000);
    let frame = ipv4_tcp(src, sport, SERVICE_V4, 443, 64);
    let now = 7 * SEC + 123;
    let out = r.run(0, std::slice::from_ref(&frame), now);
    assert!(matches!(out.dispositions[0], Disposition::Forward { .. }));
    let id = r
        .writer
        .route("198.51.100.0/24".parse().unwrap())
        .expect("routed");
    let group = r.writer.group(id).expect("published");
    let key = hashing::FlowKey::tcp(IpAddr::V4(src), sport, IpAddr::V4(SERVICE_V4), 443);
    let hash = group.hasher().hash(&key);
    let hashing::AnySelector::Resilient(sel) = group.selector() else {
        panic!("a resilient group");
    };
    let bucket = sel.bucket_index(hash) as usize;
    assert_eq!(sel.bucket_last_used(bucket), Some(now));
}
