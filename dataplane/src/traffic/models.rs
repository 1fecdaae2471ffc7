//! The synthetic traffic models (uniform, CGNAT, Zipf heavy hitters): seeded
//! generators of distinct flows, identical bit for bit for a given spec.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use hashing::FlowKey;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp1, LogNormal, Pareto, Zipf};
use rand_pcg::Pcg64Mcg;

use super::{Flow, Population, TrafficError, TrafficModel, TrafficSpec, MAX_SYNTHETIC_FLOWS};

/// Linux's default `net.ipv4.ip_local_port_range`.
const EPHEMERAL_PORTS: RangeInclusive<u16> = 32768..=60999;
/// The ports a CGNAT hands out: all but the well-known ones, allocated at
/// random as RFC 6056 and RFC 6888 recommend (no port blocks).
const CGNAT_PORTS: RangeInclusive<u16> = 1024..=65535;
/// The share of flows that are TCP; the rest are UDP.
const TCP_SHARE: f64 = 0.9;
/// The share of TCP flows to port 443; the rest go to 80. UDP flows are QUIC,
/// to 443.
const HTTPS_SHARE_OF_TCP: f64 = 0.85;
/// The first CGNAT public address is 198.51.100.1 (TEST-NET-2).
const CGNAT_FIRST: [u8; 4] = [198, 51, 100, 1];
/// Public addresses available to the CGNAT model (198.51.100.1-254).
const MAX_CGNAT_PUBLIC_IPS: u32 = 254;
/// The most clients the Zipf model has.
const MAX_ZIPF_CLIENTS: u32 = 10_000_000;
/// How many source ports to try for one flow before giving up.
const MAX_PORT_ATTEMPTS: u32 = 1_000;

/// Uniform and CGNAT flow sizes: log-normal with this median (16 KiB) ...
const LOGNORMAL_MEDIAN_BYTES: f64 = 16_384.0;
/// ... and this sigma (mean about 27 KiB, 99th percentile about 167 KiB) ...
const LOGNORMAL_SIGMA: f64 = 1.0;
/// ... clamped to this range.
const MODERATE_BYTES: RangeInclusive<u64> = 64..=16 << 20;
/// Zipf-model flow sizes: Pareto with this minimum (4 KiB) ...
const PARETO_SCALE_BYTES: f64 = 4_096.0;
/// ... and this shape, for which the largest 1% of flows carry 46% of the
/// bytes in the limit (0.01^(1 - 1/1.2)); the variance is infinite, so a
/// sample of 10,000 flows typically shows 30-45%.
const PARETO_SHAPE: f64 = 1.2;
/// The largest flow the Zipf model generates (1 GiB).
const MAX_FLOW_BYTES: u64 = 1 << 30;
/// Packets of a synthetic flow: its bytes over this mean packet size (a mix
/// of full-size segments and small ones), at least 1.
const MEAN_PACKET_BYTES: u64 = 1_000;
/// Flows start as a Poisson process of this rate.
const ARRIVALS_PER_SECOND: f64 = 10_000.0;
/// A flow lasts one round trip (uniform in this range, ns) ...
const RTT_NS: std::ops::Range<f64> = 5e6..100e6;
/// ... plus its bytes at a rate log-uniform between these (bit/s).
const RATE_BPS: (f64, f64) = (2e6, 200e6);
/// Mixed into the seed for the sizes-and-times stream.
const SIZES_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;

/// Where sources come from, per model.
enum Sources {
    Uniform,
    Cgnat {
        public_ips: u32,
    },
    Zipf {
        v4: Vec<Ipv4Addr>,
        v6: Vec<Ipv6Addr>,
        popularity: Zipf<f64>,
    },
}

/// How big flows are, per model.
enum Sizes {
    Moderate(LogNormal<f64>),
    HeavyTailed(Pareto<f64>),
}

impl Sizes {
    fn bytes(&self, rng: &mut Pcg64Mcg) -> u64 {
        match self {
            // `as` saturates, and the clamp bounds the rest.
            Sizes::Moderate(d) => {
                (d.sample(rng) as u64).clamp(*MODERATE_BYTES.start(), *MODERATE_BYTES.end())
            }
            Sizes::HeavyTailed(d) => {
                (d.sample(rng) as u64).clamp(PARETO_SCALE_BYTES as u64, MAX_FLOW_BYTES)
            }
        }
    }
}

fn invalid(message: String) -> TrafficError {
    TrafficError::InvalidSpec(message)
}

/// Generates the population of a synthetic model.
///
/// Two PCG streams are derived from the seed: one draws the keys (family,
/// protocol, ports, addresses, flow label), the other sizes and times, so the
/// keys of a seed do not depend on the size model. Flows are drawn one after
/// the other with nothing scaled by the flow count, so the first N flows of a
/// larger population are the population of N flows.
pub(super) fn generate(spec: &TrafficSpec) -> Result<Population, TrafficError> {
    let share = spec.ipv6_share;
    if spec.flows == 0 {
        return Err(invalid("a synthetic model needs at least 1 flow".into()));
    }
    if spec.flows > MAX_SYNTHETIC_FLOWS {
        return Err(invalid(format!(
            "{} flows is more than the {MAX_SYNTHETIC_FLOWS} a synthetic model generates",
            spec.flows
        )));
    }
    if !(0.0..=1.0).contains(&share) {
        return Err(invalid(format!(
            "ipv6_share must be between 0 and 1, not {share}"
        )));
    }
    let v4: Vec<IpAddr> = spec
        .services
        .iter()
        .copied()
        .filter(IpAddr::is_ipv4)
        .collect();
    let v6: Vec<IpAddr> = spec
        .services
        .iter()
        .copied()
        .filter(IpAddr::is_ipv6)
        .collect();
    if share > 0.0 && v6.is_empty() {
        return Err(invalid(format!(
            "ipv6_share is {share} but no IPv6 service address is given"
        )));
    }
    if share < 1.0 && v4.is_empty() {
        return Err(invalid(format!(
            "ipv6_share is {share}, so IPv4 flows are needed, but no IPv4 service address is given"
        )));
    }

    let mut keys = Pcg64Mcg::seed_from_u64(spec.seed);
    let mut times = Pcg64Mcg::seed_from_u64(spec.seed ^ SIZES_STREAM);
    let moderate = || {
        Sizes::Moderate(
            LogNormal::new(LOGNORMAL_MEDIAN_BYTES.ln(), LOGNORMAL_SIGMA).expect("valid log-normal"),
        )
    };
    let (sources, sizes) = match spec.model {
        TrafficModel::Uniform => (Sources::Uniform, moderate()),
        TrafficModel::Cgnat { public_ips } => {
            if !(1..=MAX_CGNAT_PUBLIC_IPS).contains(&public_ips) {
                return Err(invalid(format!(
                    "cgnat needs 1 to {MAX_CGNAT_PUBLIC_IPS} public addresses (198.51.100.1-254), not {public_ips}"
                )));
            }
            // Keep the busiest port pool (TCP/443 and UDP/443 share it) at
            // most half full, so that random allocation stays quick.
            let ports = (*CGNAT_PORTS.end() - *CGNAT_PORTS.start()) as f64 + 1.0;
            let capacity = f64::from(public_ips) * v4.len() as f64 * ports / 2.0;
            let v4_flows = spec.flows as f64 * (1.0 - share);
            if v4_flows > capacity {
                return Err(invalid(format!(
                    "{} IPv4 flows do not fit {public_ips} CGNAT public addresses and {} IPv4 services (at most {capacity:.0}); use more public addresses or fewer flows",
                    v4_flows.ceil(),
                    v4.len()
                )));
            }
            (Sources::Cgnat { public_ips }, moderate())
        }
        TrafficModel::Zipf { clients, exponent } => {
            if !(1..=MAX_ZIPF_CLIENTS).contains(&clients) {
                return Err(invalid(format!(
                    "zipf needs 1 to {MAX_ZIPF_CLIENTS} clients, not {clients}"
                )));
            }
            if !(exponent.is_finite() && exponent >= 0.0) {
                return Err(invalid(format!(
                    "the zipf exponent must be a finite number of at least 0, not {exponent}"
                )));
            }
            let popularity = Zipf::new(u64::from(clients), exponent)
                .map_err(|e| invalid(format!("zipf popularity: {e}")))?;
            let (v4, v6) = client_table(&mut keys, clients as usize);
            let pareto = Pareto::new(PARETO_SCALE_BYTES, PARETO_SHAPE).expect("valid Pareto");
            (
                Sources::Zipf { v4, v6, popularity },
                Sizes::HeavyTailed(pareto),
            )
        }
        TrafficModel::Pcap(_) => unreachable!("captures are read, not generated"),
    };

    let mut seen: HashSet<(IpAddr, u16, IpAddr, u16)> = HashSet::with_capacity(spec.flows);
    let mut flows = Vec::with_capacity(spec.flows);
    let mean_gap_ns = 1e9 / ARRIVALS_PER_SECOND;
    let mut clock_ns = 0.0f64;
    for i in 0..spec.flows {
        // Draws are made in the same order whatever the outcome, so that one
        // spec gives one population.
        let ipv6 = keys.gen::<f64>() < share;
        let (proto, dst_port) = if keys.gen::<f64>() < TCP_SHARE {
            let https = keys.gen::<f64>() < HTTPS_SHARE_OF_TCP;
            (6, if https { 443 } else { 80 })
        } else {
            (17, 443)
        };
        let services = if ipv6 { &v6 } else { &v4 };
        let dst = services[keys.gen_range(0..services.len())];
        let (src, ports) = match &sources {
            Sources::Uniform => (public_addr(&mut keys, ipv6), EPHEMERAL_PORTS),
            // NAT44 only: IPv6 flows reach the router from the clients.
            Sources::Cgnat { .. } if ipv6 => (public_addr(&mut keys, true), EPHEMERAL_PORTS),
            Sources::Cgnat { public_ips } => {
                let index = keys.gen_range(0..*public_ips);
                let [a, b, c, d] = CGNAT_FIRST;
                let addr = Ipv4Addr::new(a, b, c, d + index as u8);
                (IpAddr::V4(addr), CGNAT_PORTS)
            }
            Sources::Zipf { v4, v6, popularity } => {
                let rank = (popularity.sample(&mut keys) as usize).clamp(1, v4.len()) - 1;
                let src = if ipv6 {
                    IpAddr::V6(v6[rank])
                } else {
                    IpAddr::V4(v4[rank])
                };
                (src, EPHEMERAL_PORTS)
            }
        };
        let src_port = free_port(&mut keys, &mut seen, src, dst, dst_port, ports).ok_or_else(|| {
            invalid(format!(
                "no free source port for flow {} from {src} to {dst} port {dst_port} after {MAX_PORT_ATTEMPTS} tries: {} flows are too many for this model's sources; use more sources or fewer flows",
                i + 1,
                spec.flows
            ))
        })?;
        let flow_label = if ipv6 {
            keys.gen::<u32>() & 0x000f_ffff
        } else {
            0
        };

        let bytes = sizes.bytes(&mut times);
        let gap: f64 = Exp1.sample(&mut times);
        clock_ns += gap * mean_gap_ns;
        let rtt_ns = times.gen_range(RTT_NS);
        let rate_bps = RATE_BPS.0 * (RATE_BPS.1 / RATE_BPS.0).powf(times.gen::<f64>());
        let duration_ns = rtt_ns + bytes as f64 * 8e9 / rate_bps;
        let first_seen_ns = clock_ns as u64;
        flows.push(Flow {
            key: FlowKey {
                src,
                dst,
                proto,
                src_port,
                dst_port,
                flow_label,
                ingress_port: 0,
            },
            bytes,
            packets: bytes.div_ceil(MEAN_PACKET_BYTES).max(1),
            first_seen_ns,
            last_seen_ns: first_seen_ns.saturating_add(duration_ns as u64),
        });
    }
    Ok(Population::from_flows(spec.model.name(), flows))
}

/// Draws a source port not yet used towards (`dst`, `dst_port`) from `src`.
fn free_port(
    rng: &mut Pcg64Mcg,
    seen: &mut HashSet<(IpAddr, u16, IpAddr, u16)>,
    src: IpAddr,
    dst: IpAddr,
    dst_port: u16,
    ports: RangeInclusive<u16>,
) -> Option<u16> {
    (0..MAX_PORT_ATTEMPTS).find_map(|_| {
        let port = rng.gen_range(ports.clone());
        seen.insert((src, port, dst, dst_port)).then_some(port)
    })
}

/// `clients` distinct client addresses of each family, most popular first.
fn client_table(rng: &mut Pcg64Mcg, clients: usize) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
    let mut seen = HashSet::with_capacity(clients * 2);
    let mut draw = |ipv6| loop {
        let addr = public_addr(rng, ipv6);
        if seen.insert(addr) {
            return addr;
        }
    };
    let mut v4 = Vec::with_capacity(clients);
    let mut v6 = Vec::with_capacity(clients);
    for _ in 0..clients {
        match (draw(false), draw(true)) {
            (IpAddr::V4(a), IpAddr::V6(b)) => {
                v4.push(a);
                v6.push(b);
            }
            _ => unreachable!("public_addr returns the family asked for"),
        }
    }
    (v4, v6)
}

/// A random address that looks like a public client: IPv4 outside private,
/// shared, loopback, link-local, documentation, benchmarking, multicast and
/// reserved space; IPv6 in 2000::/3 outside documentation, Teredo and 6to4.
pub(super) fn public_addr(rng: &mut Pcg64Mcg, ipv6: bool) -> IpAddr {
    if ipv6 {
        loop {
            let bits = (rng.gen::<u128>() >> 3) | (1u128 << 125);
            let top32 = (bits >> 96) as u32;
            let top16 = top32 >> 16;
            if top32 != 0x2001_0db8 && top32 != 0x2001_0000 && top16 != 0x2002 {
                return IpAddr::V6(Ipv6Addr::from(bits));
            }
        }
    }
    loop {
        let addr = Ipv4Addr::from(rng.gen::<u32>());
        if is_public_v4(addr) {
            return IpAddr::V4(addr);
        }
    }
}

/// Whether an IPv4 address is outside every special-purpose block a client
/// would not have.
fn is_public_v4(addr: Ipv4Addr) -> bool {
    let [a, b, c, _] = addr.octets();
    let special = a == 0
        || a == 10
        || a == 127
        || a >= 224
        || (a == 100 && b & 0xc0 == 64)
        || (a == 169 && b == 254)
        || (a == 172 && b & 0xf0 == 16)
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 198 && b & 0xfe == 18)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113);
    !special
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_ipv4_blocks_are_not_public() {
        for s in [
            "10.1.2.3",
            "100.64.0.1",
            "172.31.0.1",
            "192.168.1.1",
            "198.51.100.7",
            "203.0.113.10",
            "224.0.0.1",
            "198.19.0.1",
        ] {
            assert!(!is_public_v4(s.parse().unwrap()), "{s}");
        }
        for s in ["8.8.8.8", "100.128.0.1", "172.32.0.1", "198.20.0.1"] {
            assert!(is_public_v4(s.parse().unwrap()), "{s}");
        }
    }

    #[test]
    fn random_ipv6_clients_are_global_unicast() {
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        for _ in 0..1000 {
            let IpAddr::V6(a) = public_addr(&mut rng, true) else {
                panic!("not v6")
            };
            assert_eq!(a.segments()[0] >> 13, 0b001);
            assert_ne!(&a.segments()[..2], &[0x2001, 0xdb8]);
        }
    }
}
