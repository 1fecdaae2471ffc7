//! Invariants of the codec, checked on arbitrary input: the code the fuzz
//! targets (`fuzz/`) and the corpus test (`control/tests/fuzz_corpus.rs`)
//! both run, so a crash a fuzzer finds is replayed by `cargo test`.
//!
//! Each function panics only when an invariant breaks: decoding panicked
//! (it must never), or a decoded message does not survive encoding and
//! decoding again unchanged.

use super::update::{decode_update, Outcome, UpdateContext};
use super::{frame, Message, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN};
use crate::bgp::wire::EncodeError;

/// The decoding context picked by the first input octet, so the fuzzer
/// explores 2- and 4-octet AS sessions, iBGP and eBGP, with and without the
/// first-AS check.
pub fn context_from(octet: u8) -> UpdateContext {
    UpdateContext {
        four_octet_as: octet & 1 == 0,
        ibgp: octet & 2 != 0,
        peer_as: (octet & 4 != 0).then_some(64512),
    }
}

/// Frame `data` as a TCP byte stream (first octet: context and message size
/// limit), decoding every message, and UPDATE bodies with RFC 7606 handling.
pub fn message_stream(data: &[u8]) {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let ctx = context_from(first);
    let max = if first & 8 != 0 {
        MAX_EXTENDED_MESSAGE_LEN
    } else {
        MAX_MESSAGE_LEN
    };
    while let Ok(Some((msg, used))) = frame(rest, max) {
        assert!(
            used > 0 && used <= rest.len(),
            "frame consumed {used} of {}",
            rest.len()
        );
        match &msg {
            Message::Update(body) => update_round_trip(body, &ctx),
            other => {
                let bytes = other.encode().expect("a decoded message encodes");
                let (again, n) = frame(&bytes, max)
                    .expect("re-encoded message decodes")
                    .expect("re-encoded message is whole");
                assert_eq!(n, bytes.len());
                assert_eq!(&again, other, "message changed by a round trip");
            }
        }
        rest = rest.get(used..).unwrap_or_default();
    }
}

/// Decode `data` (after the first octet, which picks the context) as an
/// UPDATE body.
pub fn update_body(data: &[u8]) {
    if let Some((&first, body)) = data.split_first() {
        update_round_trip(body, &context_from(first));
    }
}

/// Decode an UPDATE body; if it decodes, its meaning must survive encoding
/// and decoding again, and nothing may be announced under treat-as-withdraw.
fn update_round_trip(body: &[u8], ctx: &UpdateContext) {
    let Ok(decoded) = decode_update(body, ctx) else {
        return;
    };
    if decoded.outcome == Outcome::TreatAsWithdraw {
        assert_eq!(decoded.announced().count(), 0);
    }
    match decoded.update.encode_body(ctx) {
        Ok(bytes) => {
            let again = decode_update(&bytes, ctx).expect("re-encoded UPDATE decodes");
            assert_eq!(
                again.update, decoded.update,
                "UPDATE changed by a round trip"
            );
        }
        // Re-encoding a 2-octet session's path may add AS4_PATH octets.
        Err(EncodeError::MessageTooLong(_)) => {}
        Err(e) => panic!("a decoded UPDATE does not encode: {e}"),
    }
}
