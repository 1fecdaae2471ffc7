//! BGP wire codec: hand-written byte vectors from the RFC layouts, every
//! error's NOTIFICATION, and property tests.

use control::bgp::wire::{
    decode, frame, open::AS_TRANS, Afi, AfiSafi, Capability, GracefulRestart,
    GracefulRestartFamily, Message, Notification, Open, RouteRefresh, RouteRefreshSubtype, Safi,
    WireError, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN,
};
use proptest::prelude::*;

/// Header with the all-ones marker, `len` and `kind`.
fn header(len: u16, kind: u8) -> Vec<u8> {
    let mut v = vec![0xff; 16];
    v.extend_from_slice(&len.to_be_bytes());
    v.push(kind);
    v
}

/// A whole message: header and body, length filled in.
fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = header((19 + body.len()) as u16, kind);
    v.extend_from_slice(body);
    v
}

/// OPEN body: version 4, AS, hold time, identifier, then optional parameters.
fn open_body(my_as: u16, hold: u16, id: [u8; 4], params: &[u8]) -> Vec<u8> {
    let mut v = vec![4];
    v.extend_from_slice(&my_as.to_be_bytes());
    v.extend_from_slice(&hold.to_be_bytes());
    v.extend_from_slice(&id);
    v.push(params.len() as u8);
    v.extend_from_slice(params);
    v
}

/// The (code, subcode, data) the error says to send.
fn notif(e: WireError) -> (u8, u8, Vec<u8>) {
    let n = e.notification();
    (n.code, n.subcode, n.data)
}

/// Decode must fail; returns the NOTIFICATION triple.
fn decode_err(bytes: &[u8], max: usize) -> (u8, u8, Vec<u8>) {
    notif(decode(bytes, max).expect_err("must be refused"))
}

fn round_trips(bytes: &[u8]) -> Message {
    let m = decode(bytes, MAX_MESSAGE_LEN).expect("decodes");
    assert_eq!(m.encode().expect("encodes"), bytes, "re-encoding differs");
    m
}

// ---------------------------------------------------------------------------
// Known vectors.

/// FRR: AS 4200000001 (My AS = AS_TRANS), hold 180, one capability per
/// optional parameter.
fn frr_open() -> Vec<u8> {
    #[rustfmt::skip]
    let params = [
        2, 6, 1, 4, 0, 1, 0, 1,             // MP IPv4 unicast
        2, 6, 1, 4, 0, 2, 0, 1,             // MP IPv6 unicast
        2, 2, 2, 0,                         // route refresh
        2, 2, 70, 0,                        // enhanced route refresh
        2, 6, 65, 4, 0xfa, 0x56, 0xea, 0x01, // 4-octet AS 4200000001
        2, 12, 64, 10, 0x40, 120,           // graceful restart, N bit, 120 s
            0, 1, 1, 0x00,                  //   IPv4 unicast
            0, 2, 1, 0x80,                  //   IPv6 unicast, F bit
        2, 2, 6, 0,                         // extended message
    ];
    msg(1, &open_body(23456, 180, [10, 0, 0, 1], &params))
}

#[test]
fn frr_open_decodes_and_round_trips() {
    let bytes = frr_open();
    assert_eq!(bytes.len(), 79);
    let Message::Open(open) = round_trips(&bytes) else {
        panic!("not an OPEN")
    };
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.peer_as(), 4_200_000_001);
    assert_eq!(open.hold_time, 180);
    assert_eq!(open.bgp_id, 0x0a00_0001);
    assert!(!open.extended_parameters);
    assert_eq!(open.optional_parameters.len(), 7);
    assert!(open.optional_parameters.iter().all(|p| p.len() == 1));
    let caps: Vec<_> = open.capabilities().cloned().collect();
    assert_eq!(
        caps,
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::FourOctetAs(4_200_000_001),
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: true,
                restart_time: 120,
                families: vec![
                    GracefulRestartFamily {
                        family: AfiSafi::IPV4_UNICAST,
                        forwarding_preserved: false
                    },
                    GracefulRestartFamily {
                        family: AfiSafi::IPV6_UNICAST,
                        forwarding_preserved: true
                    },
                ],
            }),
            Capability::ExtendedMessage,
        ]
    );
    assert_eq!(
        open.multiprotocol_families().collect::<Vec<_>>(),
        vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
    );
    assert!(open.has_capability(6));
    assert_eq!(open.graceful_restart().map(|g| g.restart_time), Some(120));
}

/// MetalLB native (Go): AS 64512, hold 90, all capabilities in one parameter.
fn metallb_open() -> Vec<u8> {
    #[rustfmt::skip]
    let params = [
        2, 18,
            1, 4, 0, 1, 0, 1,               // MP IPv4 unicast
            1, 4, 0, 2, 0, 1,               // MP IPv6 unicast
            65, 4, 0, 0, 0xfc, 0x00,        // 4-octet AS 64512
    ];
    msg(1, &open_body(64512, 90, [192, 168, 1, 10], &params))
}

#[test]
fn metallb_open_decodes_and_round_trips() {
    let bytes = metallb_open();
    assert_eq!(bytes.len(), 49);
    let Message::Open(open) = round_trips(&bytes) else {
        panic!("not an OPEN")
    };
    assert_eq!(open.optional_parameters.len(), 1);
    assert_eq!(open.optional_parameters[0].len(), 3);
    assert_eq!(open.peer_as(), 64512);
    assert_eq!(open.hold_time, 90);
    assert!(!open.has_capability(2));
    assert_eq!(open.graceful_restart(), None);
}

#[test]
fn open_without_capabilities_uses_my_as() {
    let bytes = msg(1, &open_body(65001, 0, [1, 2, 3, 4], &[]));
    let Message::Open(open) = round_trips(&bytes) else {
        panic!("not an OPEN")
    };
    assert_eq!(open.peer_as(), 65001);
    assert_eq!(open.hold_time, 0);
    assert!(open.optional_parameters.is_empty());
}

#[test]
fn unknown_capabilities_are_kept() {
    // ADD-PATH (69), FQDN (73), LLGR (71), old Cisco route refresh (128).
    #[rustfmt::skip]
    let params = [
        2, 6, 69, 4, 0, 1, 1, 1,
        2, 7, 73, 5, 3, b'n', b'o', b'd', 0,
        2, 2, 71, 0,
        2, 2, 128, 0,
    ];
    let bytes = msg(1, &open_body(65001, 3, [1, 1, 1, 1], &params));
    let Message::Open(open) = round_trips(&bytes) else {
        panic!("not an OPEN")
    };
    let caps: Vec<_> = open.capabilities().cloned().collect();
    assert_eq!(
        caps[0],
        Capability::Unknown {
            code: 69,
            value: vec![0, 1, 1, 1]
        }
    );
    assert_eq!(caps[1].code(), 73);
    assert_eq!(
        caps[3],
        Capability::Unknown {
            code: 128,
            value: vec![]
        }
    );
}

#[test]
fn extended_optional_parameters_rfc9072() {
    // Non-Ext OP Len 255, Non-Ext OP Type 255, Ext. Opt. Parm. Length 2
    // octets; each parameter: type, 2-octet length, value.
    #[rustfmt::skip]
    let rest = [
        255, 255, 0, 16,
        2, 0, 4, 2, 0, 70, 0,               // route refresh, enhanced RR
        2, 0, 6, 65, 4, 0, 0, 0xfd, 0xe8,   // 4-octet AS 65000
    ];
    let mut body = vec![4, 0xfd, 0xe8, 0, 90, 10, 0, 0, 2];
    body.extend_from_slice(&rest);
    let bytes = msg(1, &body);
    let Message::Open(open) = round_trips(&bytes) else {
        panic!("not an OPEN")
    };
    assert!(open.extended_parameters);
    assert_eq!(open.optional_parameters.len(), 2);
    assert_eq!(open.peer_as(), 65000);
}

#[test]
fn long_parameters_switch_to_extended_format() {
    let caps: Vec<_> = (0..20)
        .map(|i| Capability::Unknown {
            code: 200 + i,
            value: vec![i; 20],
        })
        .collect();
    let open = Open {
        my_as: 65000,
        hold_time: 90,
        bgp_id: 1,
        optional_parameters: vec![caps],
        extended_parameters: false,
    };
    let bytes = Message::Open(open.clone()).encode().unwrap();
    assert_eq!(bytes[28..30], [255, 255]);
    let Message::Open(back) = decode(&bytes, MAX_MESSAGE_LEN).unwrap() else {
        panic!("not an OPEN")
    };
    assert!(back.extended_parameters);
    assert_eq!(back.optional_parameters, open.optional_parameters);
}

#[test]
fn open_new_uses_as_trans_for_large_as() {
    let open = Open::new(4_200_000_001, 90, 7, vec![Capability::RouteRefresh]);
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.peer_as(), 4_200_000_001);
    let small = Open::new(
        64512,
        90,
        7,
        vec![Capability::Multiprotocol(AfiSafi::IPV4_UNICAST)],
    );
    assert_eq!(small.my_as, 64512);
    assert!(!small.has_capability(65));
}

#[test]
fn keepalive_vector() {
    let bytes = header(19, 4);
    assert_eq!(round_trips(&bytes), Message::Keepalive);
    assert_eq!(Message::Keepalive.encode().unwrap(), bytes);
}

#[test]
fn notification_vectors() {
    // Hold Timer Expired, no data.
    let bytes = msg(3, &[4, 0]);
    let Message::Notification(n) = round_trips(&bytes) else {
        panic!("not a NOTIFICATION")
    };
    assert_eq!(n.code_name(), "Hold Timer Expired");
    // Cease / Administrative Shutdown, "bye" (RFC 8203).
    let bytes = msg(3, &[6, 2, 3, b'b', b'y', b'e']);
    let Message::Notification(n) = round_trips(&bytes) else {
        panic!("not a NOTIFICATION")
    };
    assert_eq!(n.subcode_name(), Some("Administrative Shutdown"));
    assert_eq!(n.shutdown_message(), Some(Ok("bye")));
    assert_eq!(
        Message::Notification(Notification::administrative_shutdown("bye"))
            .encode()
            .unwrap(),
        bytes
    );
}

#[test]
fn route_refresh_vectors() {
    let bytes = msg(5, &[0, 1, 0, 1]);
    assert_eq!(
        round_trips(&bytes),
        Message::RouteRefresh(RouteRefresh::request(AfiSafi::IPV4_UNICAST))
    );
    // RFC 7313 BoRR and EoRR for IPv6 unicast, and an unknown subtype.
    for (sub, want) in [
        (1, RouteRefreshSubtype::Begin),
        (2, RouteRefreshSubtype::End),
        (9, RouteRefreshSubtype::Other(9)),
    ] {
        let bytes = msg(5, &[0, 2, sub, 1]);
        let Message::RouteRefresh(rr) = round_trips(&bytes) else {
            panic!("not a ROUTE-REFRESH")
        };
        assert_eq!(rr.subtype, want);
        assert_eq!(rr.family, AfiSafi::new(Afi(2), Safi(1)));
    }
}

#[test]
fn update_is_carried_raw() {
    let body = [0, 0, 0, 4, 0x40, 1, 1, 0];
    let bytes = msg(2, &body);
    assert_eq!(round_trips(&bytes), Message::Update(body.to_vec()));
}

// ---------------------------------------------------------------------------
// Framing.

#[test]
fn framer_waits_for_whole_message_and_reports_consumed() {
    let mut stream = frr_open();
    stream.extend_from_slice(&header(19, 4));
    let first_len = frr_open().len();
    for cut in 0..first_len {
        assert_eq!(
            frame(&stream[..cut], MAX_MESSAGE_LEN),
            Ok(None),
            "cut {cut}"
        );
    }
    let (m, used) = frame(&stream, MAX_MESSAGE_LEN).unwrap().unwrap();
    assert!(matches!(m, Message::Open(_)));
    assert_eq!(used, first_len);
    let (m, used) = frame(&stream[used..], MAX_MESSAGE_LEN).unwrap().unwrap();
    assert_eq!((m, used), (Message::Keepalive, 19));
}

#[test]
fn bad_marker_is_refused_early() {
    assert_eq!(
        frame(&[0xff, 0xff, 0x00], MAX_MESSAGE_LEN),
        Err(WireError::ConnectionNotSynchronized)
    );
    let mut bytes = header(19, 4);
    bytes[15] = 0xfe;
    assert_eq!(decode_err(&bytes, MAX_MESSAGE_LEN), (1, 1, vec![]));
}

#[test]
fn header_length_errors() {
    assert_eq!(
        decode_err(&header(18, 4), MAX_MESSAGE_LEN),
        (1, 2, vec![0, 18])
    );
    assert_eq!(
        decode_err(&header(0, 4), MAX_MESSAGE_LEN),
        (1, 2, vec![0, 0])
    );
    // 4097 octets: too long without Extended Message, fine for an UPDATE with.
    let big = msg(2, &vec![0; 4097 - 19]);
    assert_eq!(decode_err(&big, MAX_MESSAGE_LEN), (1, 2, vec![0x10, 0x01]));
    assert!(matches!(
        decode(&big, MAX_EXTENDED_MESSAGE_LEN),
        Ok(Message::Update(_))
    ));
    // The error comes from the header alone, before the body arrives.
    assert_eq!(
        frame(&big[..19], MAX_MESSAGE_LEN),
        Err(WireError::BadMessageLength(4097))
    );
    // OPEN and KEEPALIVE stay within 4096 even with Extended Message.
    assert_eq!(
        notif(frame(&header(4097, 1), MAX_EXTENDED_MESSAGE_LEN).unwrap_err()),
        (1, 2, vec![0x10, 0x01])
    );
}

#[test]
fn per_type_length_errors() {
    for (len, kind) in [(28, 1), (22, 2), (20, 3), (20, 4), (22, 5), (24, 5)] {
        let bytes = msg(kind, &vec![0; len - 19]);
        assert_eq!(
            decode_err(&bytes, MAX_MESSAGE_LEN),
            (1, 2, (len as u16).to_be_bytes().to_vec()),
            "type {kind} length {len}"
        );
    }
}

#[test]
fn bad_message_type() {
    for kind in [0, 6, 255] {
        assert_eq!(
            decode_err(&header(19, kind), MAX_MESSAGE_LEN),
            (1, 3, vec![kind])
        );
    }
}

#[test]
fn open_errors() {
    let ok = |my_as, hold, id: [u8; 4], params: &[u8]| msg(1, &open_body(my_as, hold, id, params));
    // Version 3: data is the largest version we support, 2 octets.
    let mut v3 = ok(65001, 90, [1, 1, 1, 1], &[]);
    v3[19] = 3;
    assert_eq!(decode_err(&v3, MAX_MESSAGE_LEN), (2, 1, vec![0, 4]));
    // Hold time 1 and 2 refused, 0 and 3 accepted.
    for hold in [1, 2] {
        assert_eq!(
            decode_err(&ok(65001, hold, [1, 1, 1, 1], &[]), MAX_MESSAGE_LEN),
            (2, 6, vec![])
        );
    }
    for hold in [0, 3, 65535] {
        assert!(decode(&ok(65001, hold, [1, 1, 1, 1], &[]), MAX_MESSAGE_LEN).is_ok());
    }
    // BGP identifier 0.
    assert_eq!(
        decode_err(&ok(65001, 90, [0, 0, 0, 0], &[]), MAX_MESSAGE_LEN),
        (2, 3, vec![])
    );
    // AS 0, in My AS or in the 4-octet AS capability (RFC 7607).
    assert_eq!(
        decode_err(&ok(0, 90, [1, 1, 1, 1], &[]), MAX_MESSAGE_LEN),
        (2, 2, vec![])
    );
    assert_eq!(
        decode_err(
            &ok(23456, 90, [1, 1, 1, 1], &[2, 6, 65, 4, 0, 0, 0, 0]),
            MAX_MESSAGE_LEN
        ),
        (2, 2, vec![])
    );
    // Optional parameter type 1 (authentication, deprecated).
    assert_eq!(
        decode_err(&ok(65001, 90, [1, 1, 1, 1], &[1, 1, 0]), MAX_MESSAGE_LEN),
        (2, 4, vec![])
    );
}

#[test]
fn malformed_open_is_unspecific() {
    let cases: &[&[u8]] = &[
        &[2, 5, 1, 3, 0, 1, 0],          // MP capability of 3 octets
        &[2, 4, 2, 2, 0, 0],             // route refresh with a value
        &[2, 5, 65, 3, 0, 0, 1],         // 4-octet AS of 3 octets
        &[2, 5, 64, 3, 0, 120, 0],       // graceful restart of 3 octets
        &[2, 7, 64, 5, 0, 120, 0, 1, 1], // graceful restart family cut short
        &[2, 4, 1, 4, 0, 1],             // capability value past its parameter
        &[2, 1, 1],                      // capability header cut short
        &[2, 9, 2, 0],                   // parameter past the parameters
        &[2],                            // parameter header cut short
    ];
    for params in cases {
        let bytes = msg(1, &open_body(65001, 90, [1, 1, 1, 1], params));
        assert_eq!(
            decode_err(&bytes, MAX_MESSAGE_LEN),
            (2, 0, vec![]),
            "{params:?}"
        );
    }
    // Optional parameters length larger or smaller than what follows.
    let mut long = open_body(65001, 90, [1, 1, 1, 1], &[2, 2, 2, 0]);
    long[9] = 5;
    assert_eq!(decode_err(&msg(1, &long), MAX_MESSAGE_LEN), (2, 0, vec![]));
    long[9] = 3;
    assert_eq!(decode_err(&msg(1, &long), MAX_MESSAGE_LEN), (2, 0, vec![]));
    // RFC 9072 extended length cut short.
    let ext = [4, 0xfd, 0xe8, 0, 90, 10, 0, 0, 2, 255, 255, 0];
    assert_eq!(decode_err(&msg(1, &ext), MAX_MESSAGE_LEN), (2, 0, vec![]));
}

#[test]
fn encode_refuses_what_does_not_fit() {
    let gr = Capability::GracefulRestart(GracefulRestart {
        restart_time: 4096,
        ..Default::default()
    });
    assert!(Message::Open(Open::new(1, 90, 1, vec![gr]))
        .encode()
        .is_err());
    let big = Capability::Unknown {
        code: 200,
        value: vec![0; 256],
    };
    assert!(Message::Open(Open::new(1, 90, 1, vec![big]))
        .encode()
        .is_err());
    assert!(Message::Update(vec![0; 65535 - 18]).encode().is_err());
    assert!(Message::Update(vec![0; 65535 - 19]).encode().is_ok());
}

// ---------------------------------------------------------------------------
// Property tests.

fn family() -> impl Strategy<Value = AfiSafi> {
    (any::<u16>(), any::<u8>()).prop_map(|(a, s)| AfiSafi::new(Afi(a), Safi(s)))
}

fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::ExtendedMessage),
        Just(Capability::EnhancedRouteRefresh),
        (1u32..).prop_map(Capability::FourOctetAs),
        (
            any::<bool>(),
            any::<bool>(),
            0u16..4096,
            prop::collection::vec((family(), any::<bool>()), 0..4)
        )
            .prop_map(|(r, n, t, fams)| {
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: r,
                    notification: n,
                    restart_time: t,
                    families: fams
                        .into_iter()
                        .map(|(family, f)| GracefulRestartFamily {
                            family,
                            forwarding_preserved: f,
                        })
                        .collect(),
                })
            }),
        (
            any::<u8>().prop_filter("known code", |c| ![1, 2, 6, 64, 65, 70].contains(c)),
            prop::collection::vec(any::<u8>(), 0..16)
        )
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        1u16..,
        prop_oneof![Just(0u16), 3u16..],
        1u32..,
        prop::collection::vec(prop::collection::vec(capability(), 0..3), 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(my_as, hold_time, bgp_id, optional_parameters, ext)| Open {
                my_as,
                hold_time,
                bgp_id,
                optional_parameters,
                extended_parameters: ext,
            },
        )
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        prop::collection::vec(any::<u8>(), 4..64).prop_map(Message::Update),
        (
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(c, s, d)| Message::Notification(Notification::new(c, s, d))),
        Just(Message::Keepalive),
        (family(), any::<u8>()).prop_map(|(family, s)| Message::RouteRefresh(RouteRefresh {
            family,
            subtype: s.into()
        })),
    ]
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(m in message()) {
        let bytes = m.encode().unwrap();
        prop_assert_eq!(decode(&bytes, MAX_MESSAGE_LEN).unwrap(), m.clone());
        let (again, used) = frame(&bytes, MAX_MESSAGE_LEN).unwrap().unwrap();
        prop_assert_eq!(again, m);
        prop_assert_eq!(used, bytes.len());
    }

    #[test]
    fn decode_then_encode_is_identity(m in message()) {
        let bytes = m.encode().unwrap();
        let back = decode(&bytes, MAX_MESSAGE_LEN).unwrap();
        prop_assert_eq!(back.encode().unwrap(), bytes);
    }

    #[test]
    fn stream_of_messages_frames_back(ms in prop::collection::vec(message(), 0..6), split in any::<prop::sample::Index>()) {
        let stream: Vec<u8> = ms.iter().flat_map(|m| m.encode().unwrap()).collect();
        // Any prefix frames without error.
        let cut = split.index(stream.len() + 1);
        let mut got = Vec::new();
        let mut at = 0;
        while let Some((m, used)) = frame(&stream[at..cut], MAX_MESSAGE_LEN).unwrap() {
            got.push(m);
            at += used;
        }
        while let Some((m, used)) = frame(&stream[at..], MAX_MESSAGE_LEN).unwrap() {
            got.push(m);
            at += used;
        }
        prop_assert_eq!(at, stream.len());
        prop_assert_eq!(got, ms);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..128), max in prop_oneof![Just(MAX_MESSAGE_LEN), Just(MAX_EXTENDED_MESSAGE_LEN)]) {
        let _ = frame(&bytes, max);
        let _ = decode(&bytes, max);
    }

    #[test]
    fn random_bodies_behind_valid_headers_never_panic(kind in 0u8..8, body in prop::collection::vec(any::<u8>(), 0..96)) {
        let bytes = msg(kind, &body);
        if let Ok(Some((_, used))) = frame(&bytes, MAX_MESSAGE_LEN) {
            prop_assert_eq!(used, bytes.len());
        }
        let _ = Open::decode(&body);
        let _ = Notification::decode(&body).map(|n| n.to_string());
        let _ = RouteRefresh::decode(&body);
    }

    #[test]
    fn random_open_parameters_never_panic(params in prop::collection::vec(any::<u8>(), 0..96), ext in any::<bool>()) {
        let mut body = vec![4, 0xfd, 0xe8, 0, 90, 1, 2, 3, 4];
        if ext {
            body.extend_from_slice(&[255, 255]);
            body.extend_from_slice(&(params.len() as u16).to_be_bytes());
        } else {
            body.push(params.len() as u8);
        }
        body.extend_from_slice(&params);
        if let Ok(Message::Open(open)) = decode(&msg(1, &body), MAX_MESSAGE_LEN) {
            let _ = open.peer_as();
        }
    }
}
