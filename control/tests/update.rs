//! UPDATE decoding and encoding: hand-built vectors of what MetalLB's native
//! speaker and FRR send, every RFC 7606 outcome, 2-octet AS sessions with
//! AS4_PATH, and property tests (round trips, no panics on any input).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use control::bgp::wire::attrs::{
    Aggregator, AsPath, AsSegment, Community, LargeCommunity, Origin, PathAttributes, RawAttribute,
    SegmentKind,
};
use control::bgp::wire::update::{MpNextHop, MpReach, MpUnreach, ProblemAction};
use control::bgp::wire::{
    decode_update, frame, AfiSafi, Message, Outcome, Update, UpdateContext, WireError,
    MAX_MESSAGE_LEN,
};
use dataplane::fib::table::Prefix;
use proptest::prelude::*;

fn v4(s: &str) -> Prefix {
    s.parse().unwrap()
}

/// One attribute: flags, code, one-octet length, value.
fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, code, value.len() as u8];
    v.extend_from_slice(value);
    v
}

/// An UPDATE body from its three parts.
fn body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut v = (withdrawn.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(withdrawn);
    v.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    v.extend_from_slice(attrs);
    v.extend_from_slice(nlri);
    v
}

const ORIGIN_IGP: [u8; 4] = [0x40, 1, 1, 0];

/// AS_PATH of one AS_SEQUENCE with 4-octet ASes.
fn as_path4(asns: &[u32]) -> Vec<u8> {
    let mut v = vec![2, asns.len() as u8];
    for a in asns {
        v.extend_from_slice(&a.to_be_bytes());
    }
    attr(0x40, 2, &v)
}

fn next_hop(a: [u8; 4]) -> Vec<u8> {
    attr(0x40, 3, &a)
}

fn ebgp() -> UpdateContext {
    UpdateContext {
        four_octet_as: true,
        ibgp: false,
        peer_as: Some(64512),
    }
}

fn ibgp() -> UpdateContext {
    UpdateContext {
        four_octet_as: true,
        ibgp: true,
        peer_as: None,
    }
}

/// What MetalLB's native speaker sends for one service IP (eBGP): ORIGIN
/// IGP, AS_PATH [64512], NEXT_HOP its address, a community, one /32.
fn metallb_update() -> Vec<u8> {
    let attrs = [
        ORIGIN_IGP.to_vec(),
        as_path4(&[64512]),
        next_hop([10, 0, 0, 2]),
        attr(0xc0, 8, &[0xfd, 0xe8, 0x00, 0x64]), // 65000:100
    ]
    .concat();
    body(&[], &attrs, &[32, 192, 168, 10, 1])
}

#[test]
fn metallb_native_update_decodes() {
    let d = decode_update(&metallb_update(), &ebgp()).unwrap();
    assert_eq!(d.outcome, Outcome::Accept);
    assert!(d.problems.is_empty());
    let a = &d.update.attributes;
    assert_eq!(a.origin, Some(Origin::Igp));
    assert_eq!(a.as_path, Some(AsPath::sequence([64512])));
    assert_eq!(a.next_hop, Some(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(a.communities, vec![Community::new(65000, 100)]);
    assert_eq!(d.update.nlri, vec![v4("192.168.10.1/32")]);
    assert_eq!(
        d.announced().collect::<Vec<_>>(),
        vec![v4("192.168.10.1/32")]
    );
    assert_eq!(d.withdrawn().count(), 0);
    // Encoding the decoded update gives the same bytes back.
    assert_eq!(d.update.encode_body(&ebgp()).unwrap(), metallb_update());
}

#[test]
fn metallb_ibgp_update_keeps_local_pref_and_an_empty_path() {
    let attrs = [
        ORIGIN_IGP.to_vec(),
        attr(0x40, 2, &[]),
        next_hop([10, 0, 0, 3]),
        attr(0x40, 5, &[0, 0, 0, 150]),
    ]
    .concat();
    let d = decode_update(&body(&[], &attrs, &[24, 198, 51, 100]), &ibgp()).unwrap();
    assert_eq!(d.outcome, Outcome::Accept);
    assert_eq!(d.update.attributes.local_pref, Some(150));
    assert!(d.update.attributes.as_path.as_ref().unwrap().is_empty());
    assert_eq!(d.update.nlri, vec![v4("198.51.100.0/24")]);
}

/// FRR announcing an IPv6 service: MP_REACH_NLRI with a 32-octet next hop
/// (global and link-local), a large community, AS 4200000001.
fn frr_ipv6_update() -> Vec<u8> {
    let global: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let ll: Ipv6Addr = "fe80::a8bb:ccff:fedd:eeff".parse().unwrap();
    let mut mp = vec![0, 2, 1, 32];
    mp.extend_from_slice(&global.octets());
    mp.extend_from_slice(&ll.octets());
    mp.push(0);
    mp.extend_from_slice(&[64, 0x20, 0x01, 0x0d, 0xb8, 0, 0x10, 0, 0]); // 2001:db8:10::/64
    mp.extend_from_slice(&[
        128, 0x20, 0x01, 0x0d, 0xb8, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ]);
    let mut large = Vec::new();
    for w in [4_200_000_001u32, 1, 2] {
        large.extend_from_slice(&w.to_be_bytes());
    }
    let attrs = [
        ORIGIN_IGP.to_vec(),
        as_path4(&[4_200_000_001]),
        attr(0x80, 4, &[0, 0, 0, 0]),
        attr(0x90 & 0xef, 14, &mp),
        attr(0xc0, 32, &large),
    ]
    .concat();
    body(&[], &attrs, &[])
}

#[test]
fn frr_ipv6_update_with_32_octet_next_hop_decodes() {
    let ctx = UpdateContext {
        peer_as: Some(4_200_000_001),
        ..UpdateContext::default()
    };
    let d = decode_update(&frr_ipv6_update(), &ctx).unwrap();
    assert_eq!(d.outcome, Outcome::Accept, "{:?}", d.problems);
    let mp = d.update.mp_reach.as_ref().unwrap();
    assert_eq!(mp.family, AfiSafi::IPV6_UNICAST);
    assert_eq!(mp.next_hop.global, "2001:db8::2".parse::<IpAddr>().unwrap());
    assert_eq!(
        mp.next_hop.link_local,
        Some("fe80::a8bb:ccff:fedd:eeff".parse().unwrap())
    );
    assert_eq!(
        mp.nlri,
        vec![
            "2001:db8:10::/64".parse().unwrap(),
            "2001:db8:10::1/128".parse().unwrap()
        ]
    );
    assert_eq!(d.update.attributes.med, Some(0));
    assert_eq!(
        d.update.attributes.large_communities,
        vec![LargeCommunity {
            global: 4_200_000_001,
            local1: 1,
            local2: 2
        }]
    );
    assert_eq!(d.announced().count(), 2);
    // NEXT_HOP is not required for MP_REACH-only updates (RFC 4760).
    assert!(d.update.attributes.next_hop.is_none());
}

#[test]
fn ipv6_next_hop_of_16_octets_has_no_link_local() {
    let mut mp = vec![0, 2, 1, 16];
    mp.extend_from_slice(&"2001:db8::9".parse::<Ipv6Addr>().unwrap().octets());
    mp.extend_from_slice(&[0, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 1]);
    let attrs = [ORIGIN_IGP.to_vec(), as_path4(&[64512]), attr(0x80, 14, &mp)].concat();
    let d = decode_update(&body(&[], &attrs, &[]), &ebgp()).unwrap();
    let reach = d.update.mp_reach.unwrap();
    assert_eq!(reach.next_hop.link_local, None);
    assert_eq!(reach.nlri, vec!["2001:db8:1::/48".parse().unwrap()]);
}

#[test]
fn end_of_rib_markers_for_both_families() {
    let v4_eor = body(&[], &[], &[]);
    let d = decode_update(&v4_eor, &ebgp()).unwrap();
    assert_eq!(d.update.end_of_rib_family(), Some(AfiSafi::IPV4_UNICAST));
    assert_eq!(
        Update::end_of_rib(AfiSafi::IPV4_UNICAST)
            .encode_body(&ebgp())
            .unwrap(),
        v4_eor
    );

    let v6_eor = body(&[], &attr(0x80, 15, &[0, 2, 1]), &[]);
    let d = decode_update(&v6_eor, &ebgp()).unwrap();
    assert_eq!(d.update.end_of_rib_family(), Some(AfiSafi::IPV6_UNICAST));
    assert_eq!(
        Update::end_of_rib(AfiSafi::IPV6_UNICAST)
            .encode_body(&ebgp())
            .unwrap(),
        v6_eor
    );
    // A withdrawal is not an End-of-RIB.
    let w = decode_update(&body(&[32, 192, 168, 10, 1], &[], &[]), &ebgp()).unwrap();
    assert_eq!(w.update.end_of_rib_family(), None);
    assert_eq!(
        w.withdrawn().collect::<Vec<_>>(),
        vec![v4("192.168.10.1/32")]
    );
}

#[test]
fn host_bits_past_the_length_are_cleared() {
    let d = decode_update(&body(&[24, 10, 1, 2], &[], &[]), &ebgp()).unwrap();
    assert_eq!(d.update.withdrawn, vec![v4("10.1.2.0/24")]);
    let d = decode_update(&body(&[20, 10, 1, 0xff], &[], &[]), &ebgp()).unwrap();
    assert_eq!(d.update.withdrawn, vec![v4("10.1.240.0/20")]);
}

// ---------------------------------------------------------------------------
// RFC 7606 outcomes.

/// Decode the MetalLB update with `extra` attributes appended (or replacing
/// the standard set when `replace`), returning outcome and problem actions.
fn with_attrs(attrs: &[u8], ctx: &UpdateContext) -> (Outcome, Vec<(u8, ProblemAction)>) {
    let d = decode_update(&body(&[], attrs, &[32, 192, 168, 10, 1]), ctx).unwrap();
    (
        d.outcome,
        d.problems.iter().map(|p| (p.code, p.action)).collect(),
    )
}

fn base() -> Vec<u8> {
    [
        ORIGIN_IGP.to_vec(),
        as_path4(&[64512]),
        next_hop([10, 0, 0, 2]),
    ]
    .concat()
}

fn base_with(extra: &[u8]) -> Vec<u8> {
    [base(), extra.to_vec()].concat()
}

#[test]
fn invalid_origin_value_is_treat_as_withdraw() {
    let attrs = [
        vec![0x40, 1, 1, 3],
        as_path4(&[64512]),
        next_hop([10, 0, 0, 2]),
    ]
    .concat();
    let d = decode_update(&body(&[], &attrs, &[32, 192, 168, 10, 1]), &ebgp()).unwrap();
    assert_eq!(d.outcome, Outcome::TreatAsWithdraw);
    assert_eq!(d.announced().count(), 0);
    assert_eq!(
        d.withdrawn().collect::<Vec<_>>(),
        vec![v4("192.168.10.1/32")]
    );
    assert_eq!(d.problems[0].attribute, "ORIGIN");
}

/// What, attributes, context, expected outcome, expected problems.
type Case = (
    &'static str,
    Vec<u8>,
    UpdateContext,
    Outcome,
    Vec<(u8, ProblemAction)>,
);

#[test]
fn each_attribute_gets_the_rfc_7606_action() {
    use ProblemAction::*;
    let taw = Outcome::TreatAsWithdraw;
    let ok = Outcome::Accept;
    let cases: Vec<Case> = vec![
        (
            "MED of 2 octets",
            base_with(&attr(0x80, 4, &[0, 1])),
            ebgp(),
            taw,
            vec![(4, TreatAsWithdraw)],
        ),
        (
            "LOCAL_PREF from eBGP",
            base_with(&attr(0x40, 5, &[0, 0, 0, 200])),
            ebgp(),
            ok,
            vec![(5, AttributeDiscard)],
        ),
        (
            "LOCAL_PREF of 3 octets on iBGP",
            base_with(&attr(0x40, 5, &[0, 0, 200])),
            ibgp(),
            taw,
            vec![(5, TreatAsWithdraw)],
        ),
        (
            "ATOMIC_AGGREGATE with a value",
            base_with(&attr(0x40, 6, &[1])),
            ebgp(),
            ok,
            vec![(6, AttributeDiscard)],
        ),
        (
            "AGGREGATOR of 6 octets on a 4-octet session",
            base_with(&attr(0xc0, 7, &[0xfc, 0, 10, 0, 0, 1])),
            ebgp(),
            ok,
            vec![(7, AttributeDiscard)],
        ),
        (
            "COMMUNITIES of 3 octets",
            base_with(&attr(0xc0, 8, &[0, 1, 2])),
            ebgp(),
            taw,
            vec![(8, TreatAsWithdraw)],
        ),
        (
            "COMMUNITIES empty",
            base_with(&attr(0xc0, 8, &[])),
            ebgp(),
            taw,
            vec![(8, TreatAsWithdraw)],
        ),
        (
            "LARGE_COMMUNITY of 8 octets",
            base_with(&attr(0xc0, 32, &[0; 8])),
            ebgp(),
            taw,
            vec![(32, TreatAsWithdraw)],
        ),
        (
            "EXTENDED COMMUNITIES of 7 octets",
            base_with(&attr(0xc0, 16, &[0; 7])),
            ebgp(),
            taw,
            vec![(16, TreatAsWithdraw)],
        ),
        (
            "ORIGINATOR_ID of 5 octets",
            base_with(&attr(0x80, 9, &[0; 5])),
            ibgp(),
            taw,
            vec![(9, TreatAsWithdraw)],
        ),
        (
            "CLUSTER_LIST of 6 octets",
            base_with(&attr(0x80, 10, &[0; 6])),
            ibgp(),
            taw,
            vec![(10, TreatAsWithdraw)],
        ),
        (
            "MED marked transitive",
            base_with(&attr(0xc0, 4, &[0, 0, 0, 1])),
            ebgp(),
            taw,
            vec![(4, TreatAsWithdraw)],
        ),
        (
            "AGGREGATOR marked well-known",
            base_with(&attr(0x40, 7, &[0, 0, 0xfc, 0, 10, 0, 0, 1])),
            ebgp(),
            ok,
            vec![(7, AttributeDiscard)],
        ),
        (
            "a repeated COMMUNITIES",
            base_with(&[attr(0xc0, 8, &[0, 1, 0, 2]), attr(0xc0, 8, &[0, 1])].concat()),
            ebgp(),
            ok,
            vec![(8, Ignored)],
        ),
        (
            "AS4_PATH on a 4-octet session",
            base_with(&attr(0xc0, 17, &[2, 1, 0, 0, 0, 1])),
            ebgp(),
            ok,
            vec![(17, Ignored)],
        ),
        (
            "NEXT_HOP 0.0.0.0",
            [
                ORIGIN_IGP.to_vec(),
                as_path4(&[64512]),
                next_hop([0, 0, 0, 0]),
            ]
            .concat(),
            ebgp(),
            taw,
            vec![(3, TreatAsWithdraw)],
        ),
        (
            "NEXT_HOP multicast",
            [
                ORIGIN_IGP.to_vec(),
                as_path4(&[64512]),
                next_hop([224, 0, 0, 5]),
            ]
            .concat(),
            ebgp(),
            taw,
            vec![(3, TreatAsWithdraw)],
        ),
        (
            "NEXT_HOP missing",
            [ORIGIN_IGP.to_vec(), as_path4(&[64512])].concat(),
            ebgp(),
            taw,
            vec![(3, TreatAsWithdraw)],
        ),
        (
            "ORIGIN missing",
            [as_path4(&[64512]), next_hop([10, 0, 0, 2])].concat(),
            ebgp(),
            taw,
            vec![(1, TreatAsWithdraw)],
        ),
        (
            "AS_PATH missing",
            [ORIGIN_IGP.to_vec(), next_hop([10, 0, 0, 2])].concat(),
            ebgp(),
            taw,
            vec![(2, TreatAsWithdraw)],
        ),
        (
            "AS_PATH of another AS on eBGP",
            [
                ORIGIN_IGP.to_vec(),
                as_path4(&[64999]),
                next_hop([10, 0, 0, 2]),
            ]
            .concat(),
            ebgp(),
            taw,
            vec![(2, TreatAsWithdraw)],
        ),
        (
            "AS_PATH with an empty segment",
            [
                ORIGIN_IGP.to_vec(),
                attr(0x40, 2, &[2, 0]),
                next_hop([10, 0, 0, 2]),
            ]
            .concat(),
            ebgp(),
            taw,
            vec![(2, TreatAsWithdraw)],
        ),
        (
            "AS_PATH with segment type 9",
            [
                ORIGIN_IGP.to_vec(),
                attr(0x40, 2, &[9, 1, 0, 0, 0xfc, 0]),
                next_hop([10, 0, 0, 2]),
            ]
            .concat(),
            ebgp(),
            taw,
            vec![(2, TreatAsWithdraw)],
        ),
        (
            "AS_PATH cut inside an AS",
            [
                ORIGIN_IGP.to_vec(),
                attr(0x40, 2, &[2, 1, 0, 0, 0xfc]),
                next_hop([10, 0, 0, 2]),
            ]
            .concat(),
            ebgp(),
            taw,
            vec![(2, TreatAsWithdraw)],
        ),
        (
            "attribute list ends inside a header",
            base_with(&[0x40, 1]),
            ebgp(),
            taw,
            vec![(0, TreatAsWithdraw)],
        ),
        (
            "attribute overruns the list",
            base_with(&[0xc0, 8, 9, 0, 1, 0, 2]),
            ebgp(),
            taw,
            vec![(8, TreatAsWithdraw)],
        ),
    ];
    for (what, attrs, ctx, outcome, problems) in cases {
        let (got, got_problems) = with_attrs(&attrs, &ctx);
        assert_eq!(got, outcome, "{what}");
        assert_eq!(got_problems, problems, "{what}");
    }
}

#[test]
fn discarded_attributes_are_gone_and_the_routes_stay() {
    let attrs = base_with(&[attr(0x40, 5, &[0, 0, 0, 200]), attr(0x40, 6, &[1])].concat());
    let d = decode_update(&body(&[], &attrs, &[32, 192, 168, 10, 1]), &ebgp()).unwrap();
    assert_eq!(d.outcome, Outcome::Accept);
    assert_eq!(d.update.attributes.local_pref, None);
    assert!(!d.update.attributes.atomic_aggregate);
    assert_eq!(d.announced().count(), 1);
}

#[test]
fn first_of_repeated_attributes_wins() {
    let attrs = base_with(&[attr(0xc0, 8, &[0, 1, 0, 2]), attr(0xc0, 8, &[0, 3, 0, 4])].concat());
    let d = decode_update(&body(&[], &attrs, &[32, 192, 168, 10, 1]), &ebgp()).unwrap();
    assert_eq!(d.update.attributes.communities, vec![Community::new(1, 2)]);
}

#[test]
fn unknown_optional_transitive_is_kept_with_partial_and_non_transitive_dropped() {
    let attrs = base_with(&[attr(0xc0, 99, &[1, 2, 3]), attr(0x80, 98, &[4])].concat());
    let d = decode_update(&body(&[], &attrs, &[32, 192, 168, 10, 1]), &ebgp()).unwrap();
    assert_eq!(d.outcome, Outcome::Accept);
    assert_eq!(
        d.update.attributes.unknown,
        vec![RawAttribute {
            flags: 0xe0,
            code: 99,
            value: vec![1, 2, 3]
        }]
    );
}

fn reset(body: &[u8]) -> (u8, u8, Vec<u8>) {
    let e = decode_update(body, &ebgp()).expect_err("session reset expected");
    assert!(matches!(e, WireError::Update { .. }), "{e:?}");
    let n = e.notification();
    (n.code, n.subcode, n.data)
}

#[test]
fn session_reset_only_where_routes_cannot_be_located() {
    // Withdrawn routes length beyond the message: Malformed Attribute List.
    assert_eq!(reset(&[0, 9, 24, 10, 0]).1, 1);
    // Total attribute length beyond the message.
    assert_eq!(reset(&[0, 0, 0, 40, 0x40, 1, 1, 0]).1, 1);
    // A /33 in the NLRI field: Invalid Network Field.
    assert_eq!(reset(&body(&[], &base(), &[33, 1, 2, 3, 4, 5])).1, 10);
    // An NLRI cut short.
    assert_eq!(reset(&body(&[], &base(), &[24, 10, 1])).1, 10);
    // A bad withdrawn prefix.
    assert_eq!(reset(&body(&[40, 1, 2, 3, 4, 5], &[], &[])).1, 10);
    // MP_REACH_NLRI twice: Malformed Attribute List.
    let mp = attr(0x80, 15, &[0, 2, 1]);
    assert_eq!(reset(&body(&[], &[mp.clone(), mp].concat(), &[])).1, 1);
    // MP_REACH_NLRI with a 12-octet IPv6 next hop: Optional Attribute Error,
    // the attribute as data.
    let mut bad = vec![0, 2, 1, 12];
    bad.extend_from_slice(&[0; 12]);
    bad.push(0);
    let a = attr(0x80, 14, &bad);
    assert_eq!(reset(&body(&[], &a, &[])), (3, 9, a.clone()));
    // MP_UNREACH_NLRI with a /129.
    assert_eq!(
        reset(&body(&[], &attr(0x80, 15, &[0, 2, 1, 129, 0]), &[])).1,
        9
    );
    // MP_REACH_NLRI marked transitive: Attribute Flags Error.
    assert_eq!(reset(&body(&[], &attr(0xc0, 15, &[0, 2, 1]), &[])).1, 4);
    // An unrecognised well-known attribute: subcode 2, the attribute as data.
    let unk = attr(0x40, 99, &[7]);
    assert_eq!(reset(&body(&[], &base_with(&unk), &[])), (3, 2, unk));
}

#[test]
fn unknown_family_in_mp_reach_is_ignored_not_fatal() {
    // L2VPN EVPN (25/70): not negotiated, not routed here.
    let attrs = base_with(&attr(0x80, 14, &[0, 25, 70, 4, 10, 0, 0, 1, 0, 1, 2, 3]));
    let d = decode_update(&body(&[], &attrs, &[]), &ebgp()).unwrap();
    assert_eq!(d.outcome, Outcome::Accept);
    assert!(d.update.mp_reach.is_none());
    assert_eq!(d.problems[0].action, ProblemAction::Ignored);
}

// ---------------------------------------------------------------------------
// 2-octet AS sessions (RFC 6793).

fn two_octet() -> UpdateContext {
    UpdateContext {
        four_octet_as: false,
        ibgp: false,
        peer_as: None,
    }
}

#[test]
fn as4_path_restores_the_real_path_on_2_octet_sessions() {
    // AS_PATH [65001 AS_TRANS 65002], AS4_PATH [4200000001 65002].
    let as_path = attr(0x40, 2, &[2, 3, 0xfd, 0xe9, 0x5b, 0xa0, 0xfd, 0xea]);
    let mut as4 = vec![2, 2];
    as4.extend_from_slice(&4_200_000_001u32.to_be_bytes());
    as4.extend_from_slice(&65002u32.to_be_bytes());
    let mut agg4 = 4_200_000_001u32.to_be_bytes().to_vec();
    agg4.extend_from_slice(&[10, 9, 9, 9]);
    let attrs = [
        ORIGIN_IGP.to_vec(),
        as_path,
        next_hop([10, 0, 0, 2]),
        attr(0xc0, 7, &[0x5b, 0xa0, 10, 9, 9, 9]),
        attr(0xc0, 17, &as4),
        attr(0xc0, 18, &agg4),
    ]
    .concat();
    let d = decode_update(&body(&[], &attrs, &[32, 192, 168, 10, 1]), &two_octet()).unwrap();
    assert_eq!(d.outcome, Outcome::Accept, "{:?}", d.problems);
    assert_eq!(
        d.update.attributes.as_path,
        Some(AsPath::sequence([65001, 4_200_000_001, 65002]))
    );
    assert_eq!(
        d.update.attributes.aggregator,
        Some(Aggregator {
            asn: 4_200_000_001,
            address: Ipv4Addr::new(10, 9, 9, 9)
        })
    );
    // And back: AS_TRANS in AS_PATH, the truth in AS4_PATH.
    let again = decode_update(&d.update.encode_body(&two_octet()).unwrap(), &two_octet()).unwrap();
    assert_eq!(again.update, d.update);
}

#[test]
fn as4_path_longer_than_as_path_is_ignored() {
    let as_path = attr(0x40, 2, &[2, 1, 0xfd, 0xe9]);
    let as4 = attr(0xc0, 17, &[2, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
    let attrs = [ORIGIN_IGP.to_vec(), as_path, next_hop([10, 0, 0, 2]), as4].concat();
    let d = decode_update(&body(&[], &attrs, &[32, 192, 168, 10, 1]), &two_octet()).unwrap();
    assert_eq!(d.update.attributes.as_path, Some(AsPath::sequence([65001])));
    assert_eq!(d.outcome, Outcome::Accept);
}

#[test]
fn malformed_as4_path_is_discarded() {
    let as_path = attr(0x40, 2, &[2, 1, 0xfd, 0xe9]);
    let attrs = [
        ORIGIN_IGP.to_vec(),
        as_path,
        next_hop([10, 0, 0, 2]),
        attr(0xc0, 17, &[2, 1, 0]),
    ]
    .concat();
    let (outcome, problems) = with_attrs(&attrs, &two_octet());
    assert_eq!(outcome, Outcome::Accept);
    assert_eq!(problems, vec![(17, ProblemAction::AttributeDiscard)]);
}

#[test]
fn as_path_reads_like_vtysh() {
    let p = AsPath {
        segments: vec![
            AsSegment {
                kind: SegmentKind::ConfedSequence,
                asns: vec![65100],
            },
            AsSegment {
                kind: SegmentKind::Sequence,
                asns: vec![65001, 65002],
            },
            AsSegment {
                kind: SegmentKind::Set,
                asns: vec![3, 4],
            },
        ],
    };
    assert_eq!(p.to_string(), "(65100) 65001 65002 {3,4}");
    assert_eq!(p.route_len(), 3);
    assert_eq!(p.first_as(), Some(65001));
    assert_eq!(
        p.prepend(64512).to_string(),
        "64512 (65100) 65001 65002 {3,4}"
    );
    assert_eq!(
        AsPath::sequence([1, 2]).prepend(3),
        AsPath::sequence([3, 1, 2])
    );
}

#[test]
fn communities_parse_and_print_both_ways() {
    for s in ["65000:100", "no-export", "no-advertise", "blackhole", "0:0"] {
        let c: Community = s.parse().unwrap();
        assert_eq!(c.to_string(), s);
    }
    assert!("65536:1".parse::<Community>().is_err());
    let l: LargeCommunity = "4200000001:1:2".parse().unwrap();
    assert_eq!(l.to_string(), "4200000001:1:2");
    assert!("1:2".parse::<LargeCommunity>().is_err());
}

#[test]
fn framed_update_is_decoded_from_the_stream() {
    let b = metallb_update();
    let mut wire = vec![0xff; 16];
    wire.extend_from_slice(&((19 + b.len()) as u16).to_be_bytes());
    wire.push(2);
    wire.extend_from_slice(&b);
    let (m, used) = frame(&wire, MAX_MESSAGE_LEN).unwrap().unwrap();
    assert_eq!(used, wire.len());
    let Message::Update(raw) = m else {
        panic!("not an UPDATE")
    };
    assert_eq!(decode_update(&raw, &ebgp()).unwrap().update.nlri.len(), 1);
}

#[test]
fn json_names_the_outcome_and_the_problem() {
    let attrs = base_with(&attr(0xc0, 8, &[0, 1, 2]));
    let d = decode_update(&body(&[], &attrs, &[32, 192, 168, 10, 1]), &ebgp()).unwrap();
    let j = serde_json::to_value(&d).unwrap();
    assert_eq!(j["outcome"], "treat-as-withdraw");
    assert_eq!(j["problems"][0]["attribute"], "COMMUNITIES");
    assert_eq!(j["problems"][0]["action"], "treat-as-withdraw");
    assert_eq!(j["update"]["nlri"][0], "192.168.10.1/32");
    assert_eq!(j["update"]["attributes"]["as_path"][0]["asns"][0], 64512);
}

// ---------------------------------------------------------------------------
// Properties.

fn prefix4() -> impl Strategy<Value = Prefix> {
    (any::<u32>(), 0u8..=32)
        .prop_map(|(a, l)| Prefix::V4(Ipv4Addr::from(a), l).normalized().unwrap())
}

fn prefix6() -> impl Strategy<Value = Prefix> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| Prefix::V6(Ipv6Addr::from(a), l).normalized().unwrap())
}

fn as_path() -> impl Strategy<Value = AsPath> {
    let seg = (
        prop_oneof![Just(SegmentKind::Sequence), Just(SegmentKind::Set)],
        prop::collection::vec(any::<u32>(), 1..8),
    )
        .prop_map(|(kind, asns)| AsSegment { kind, asns });
    prop::collection::vec(seg, 0..4).prop_map(|segments| AsPath { segments })
}

fn attributes() -> impl Strategy<Value = PathAttributes> {
    (
        (
            prop::option::of(prop_oneof![
                Just(Origin::Igp),
                Just(Origin::Egp),
                Just(Origin::Incomplete)
            ]),
            prop::option::of(as_path()),
            prop::option::of((0x0100_0000u32..0xe000_0000).prop_map(Ipv4Addr::from)),
            prop::option::of(any::<u32>()),
            prop::option::of(any::<u32>()),
            any::<bool>(),
        ),
        (
            prop::option::of(
                (any::<u32>(), any::<u32>()).prop_map(|(asn, a)| Aggregator {
                    asn,
                    address: Ipv4Addr::from(a),
                }),
            ),
            prop::collection::vec(any::<u32>().prop_map(Community), 0..6),
            prop::collection::vec(
                (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(global, local1, local2)| {
                    LargeCommunity {
                        global,
                        local1,
                        local2,
                    }
                }),
                0..4,
            ),
            prop::collection::btree_map(
                200u8..=254,
                prop::collection::vec(any::<u8>(), 0..40),
                0..3,
            ),
        ),
    )
        .prop_map(
            |(
                (origin, as_path, next_hop, med, local_pref, atomic_aggregate),
                (aggregator, communities, large_communities, unknown),
            )| {
                PathAttributes {
                    origin,
                    as_path,
                    next_hop,
                    med,
                    local_pref,
                    atomic_aggregate,
                    aggregator,
                    communities,
                    large_communities,
                    unknown: unknown
                        .into_iter()
                        .map(|(code, value)| RawAttribute {
                            flags: 0xe0,
                            code,
                            value,
                        })
                        .collect(),
                    ..PathAttributes::default()
                }
            },
        )
}

fn update() -> impl Strategy<Value = Update> {
    (
        prop::collection::vec(prefix4(), 0..20),
        attributes(),
        prop::option::of((
            any::<u128>(),
            prop::option::of(any::<u128>()),
            prop::collection::vec(prefix6(), 0..20),
        )),
        prop::option::of(prop::collection::vec(prefix6(), 0..20)),
        prop::collection::vec(prefix4(), 0..20),
    )
        .prop_map(|(withdrawn, attributes, reach, unreach, nlri)| Update {
            withdrawn,
            attributes,
            mp_reach: reach.map(|(g, ll, nlri)| MpReach {
                family: AfiSafi::IPV6_UNICAST,
                next_hop: MpNextHop {
                    global: IpAddr::V6(Ipv6Addr::from(g)),
                    link_local: ll.map(Ipv6Addr::from),
                },
                nlri,
            }),
            mp_unreach: unreach.map(|withdrawn| MpUnreach {
                family: AfiSafi::IPV6_UNICAST,
                withdrawn,
            }),
            nlri,
        })
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(u in update(), four in any::<bool>()) {
        let ctx = UpdateContext { four_octet_as: four, ibgp: true, peer_as: None };
        let bytes = u.encode_body(&ctx).unwrap();
        let d = decode_update(&bytes, &ctx).unwrap();
        prop_assert_eq!(&d.update, &u);
        prop_assert!(d.problems.iter().all(|p| p.reason == "missing"), "{:?}", d.problems);
        // And the bytes are canonical: encoding again gives them back.
        prop_assert_eq!(d.update.encode_body(&ctx).unwrap(), bytes);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), four in any::<bool>(), ib in any::<bool>()) {
        let ctx = UpdateContext { four_octet_as: four, ibgp: ib, peer_as: Some(64512) };
        let _ = decode_update(&bytes, &ctx);
        control::bgp::wire::selfcheck::message_stream(&bytes);
    }

    #[test]
    fn mutated_updates_never_panic_and_never_announce_under_withdraw(
        u in update(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let ctx = UpdateContext { four_octet_as: true, ibgp: true, peer_as: None };
        let mut bytes = u.encode_body(&ctx).unwrap();
        for (i, b) in flips {
            if !bytes.is_empty() {
                let at = i.index(bytes.len());
                bytes[at] = b;
            }
        }
        let keep = cut.index(bytes.len() + 1);
        for b in [&bytes[..], &bytes[..keep]] {
            // The fuzz targets' invariants, round trips included (context
            // octet 2: 4-octet AS, iBGP).
            control::bgp::wire::selfcheck::update_body(&[&[2u8][..], b].concat());
            if let Ok(d) = decode_update(b, &ctx) {
                if d.outcome == Outcome::TreatAsWithdraw {
                    prop_assert_eq!(d.announced().count(), 0);
                }
            }
        }
    }
}
