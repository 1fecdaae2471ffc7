//! A cluster-shaped topology: one router namespace and N node namespaces on one L2
//! segment, as Kubernetes nodes share a subnet with their upstream router.
//!
//! The segment is a bridge `br0` in the router namespace carrying the router's addresses
//! (10.10.0.1/24, fd00:10::1/64); node i (from 1) joins it by its own veth pair, `eth0`
//! in the node and port `n<i>` on the bridge, with 10.10.0.(10+i) and fd00:10::(10+i).
//! A bridge keeps every node one hop away on a shared subnet like a real cluster, and
//! still lets a test cut one node's link (either end of its veth) without touching the
//! others. Service IPs go on the nodes' `lo` (there are no dummy interfaces here).
//! Nodes route everything else via the router, as a cluster's default gateway.
//!
//! [`Topology::with_client`] adds a client namespace on its own link to the router
//! (`up0` 10.20.0.1/24 and fd00:20::1/64 in the router, `eth0` 10.20.0.2 and fd00:20::2 in
//! the client, default routes via the router), to send traffic to the service IPs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{veth, Netns, Result};

/// The router's side: a namespace with the bridge that joins every node.
pub struct Router {
    pub ns: Netns,
    /// The bridge carrying the router's addresses.
    pub bridge: String,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

/// One node: its namespace, the interface facing the router, its addresses.
pub struct Node {
    /// 1-based, as in the addresses (node 1 is 10.10.0.11).
    pub index: usize,
    pub ns: Netns,
    /// The node's interface towards the router (`eth0`).
    pub ifname: String,
    /// The node's port on the router's bridge (`n<index>`).
    pub router_port: String,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

/// A namespace on the far side of the router, sending traffic to the service IPs.
pub struct Client {
    pub ns: Netns,
    pub ifname: String,
    /// The router's interface towards the client (`up0`).
    pub router_port: String,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

/// A router and its nodes. Dropping it deletes every namespace (and so every veth and
/// bridge) after killing what still runs inside; drop the speakers first (declare them
/// after the topology) so they stop cleanly.
pub struct Topology {
    pub router: Router,
    pub nodes: Vec<Node>,
    /// Present when built with [`Topology::with_client`].
    pub client: Option<Client>,
}

/// The prefix length of the cluster subnet, IPv4 and IPv6.
pub const SUBNET_V4_LEN: u8 = 24;
pub const SUBNET_V6_LEN: u8 = 64;

impl Topology {
    /// Builds the router and `nodes` nodes (at most 200), all links up.
    pub fn new(nodes: usize) -> Result<Topology> {
        assert!(nodes <= 200, "the cluster /24 holds at most 200 nodes");
        crate::require_root()?;
        crate::require_programs(&["ip", "sysctl"])?;
        let router = Router {
            ns: Netns::new()?,
            bridge: "br0".to_string(),
            v4: Ipv4Addr::new(10, 10, 0, 1),
            v6: "fd00:10::1".parse().expect("valid"),
        };
        quiet_ipv6(&router.ns)?;
        let r = &router.ns;
        r.ip(&["link", "add", "name", &router.bridge, "type", "bridge"])?;
        r.add_addr(&router.bridge, router.v4.into(), SUBNET_V4_LEN)?;
        r.add_addr(&router.bridge, router.v6.into(), SUBNET_V6_LEN)?;
        r.set_link(&router.bridge, true)?;

        let mut topo = Topology {
            router,
            nodes: Vec::with_capacity(nodes),
            client: None,
        };
        for index in 1..=nodes {
            let node = Node {
                index,
                ns: Netns::new()?,
                ifname: "eth0".to_string(),
                router_port: format!("n{index}"),
                v4: Ipv4Addr::new(10, 10, 0, 10 + index as u8),
                v6: Ipv6Addr::new(0xfd00, 0x10, 0, 0, 0, 0, 0, 0x10 + index as u16),
            };
            quiet_ipv6(&node.ns)?;
            let r = &topo.router;
            veth(&r.ns, &node.router_port, &node.ns, &node.ifname)?;
            // A bridge port needs no addresses of its own.
            r.ns.sysctl(
                &format!("net.ipv6.conf.{}.disable_ipv6", node.router_port),
                "1",
            )?;
            r.ns.ip(&["link", "set", "dev", &node.router_port, "master", &r.bridge])?;
            r.ns.set_link(&node.router_port, true)?;
            node.ns
                .add_addr(&node.ifname, node.v4.into(), SUBNET_V4_LEN)?;
            node.ns
                .add_addr(&node.ifname, node.v6.into(), SUBNET_V6_LEN)?;
            node.ns.set_link(&node.ifname, true)?;
            default_routes(&node.ns, r.v4, r.v6)?;
            topo.nodes.push(node);
        }
        Ok(topo)
    }

    /// Like [`Topology::new`], plus a client namespace behind the router.
    pub fn with_client(nodes: usize) -> Result<Topology> {
        let mut topo = Topology::new(nodes)?;
        let client = Client {
            ns: Netns::new()?,
            ifname: "eth0".to_string(),
            router_port: "up0".to_string(),
            v4: Ipv4Addr::new(10, 20, 0, 2),
            v6: "fd00:20::2".parse().expect("valid"),
        };
        quiet_ipv6(&client.ns)?;
        let r = &topo.router;
        veth(&r.ns, &client.router_port, &client.ns, &client.ifname)?;
        r.ns.add_addr(
            &client.router_port,
            Ipv4Addr::new(10, 20, 0, 1).into(),
            SUBNET_V4_LEN,
        )?;
        let router_up_v6: Ipv6Addr = "fd00:20::1".parse().expect("valid");
        r.ns.add_addr(&client.router_port, router_up_v6.into(), SUBNET_V6_LEN)?;
        r.ns.set_link(&client.router_port, true)?;
        client
            .ns
            .add_addr(&client.ifname, client.v4.into(), SUBNET_V4_LEN)?;
        client
            .ns
            .add_addr(&client.ifname, client.v6.into(), SUBNET_V6_LEN)?;
        client.ns.set_link(&client.ifname, true)?;
        default_routes(&client.ns, Ipv4Addr::new(10, 20, 0, 1), router_up_v6)?;
        topo.client = Some(client);
        Ok(topo)
    }

    /// Lets the router namespace's kernel forward IPv4 and IPv6 (the reference router
    /// does; ecmpd keeps kernel forwarding off and forwards in userspace).
    pub fn enable_router_forwarding(&self) -> Result<()> {
        self.router.ns.sysctl("net.ipv4.ip_forward", "1")?;
        self.router.ns.sysctl("net.ipv6.conf.all.forwarding", "1")
    }
}

fn default_routes(ns: &Netns, v4: Ipv4Addr, v6: Ipv6Addr) -> Result<()> {
    ns.ip(&["-4", "route", "add", "default", "via", &v4.to_string()])?;
    ns.ip(&["-6", "route", "add", "default", "via", &v6.to_string()])
        .map(drop)
}

/// No duplicate address detection in the namespace, so addresses (link-local ones too)
/// are usable at once.
fn quiet_ipv6(ns: &Netns) -> Result<()> {
    ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
    ns.sysctl("net.ipv6.conf.default.accept_dad", "0")
}

impl Node {
    /// Puts a service IP on the node's `lo`, as kube-proxy (IPVS) or MetalLB users do.
    pub fn add_service_ip(&self, ip: IpAddr) -> Result<()> {
        let host_len = if ip.is_ipv4() { 32 } else { 128 };
        self.ns.add_addr("lo", ip, host_len)
    }

    /// Cuts (false) or restores (true) the node's link at the node's end.
    pub fn set_link(&self, up: bool) -> Result<()> {
        self.ns.set_link(&self.ifname, up)
    }
}
