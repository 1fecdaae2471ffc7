//! Replays the fuzz seeds and every saved fuzz regression through the same
//! checks the cargo-fuzz targets run (`control::bgp::wire::selfcheck`), so
//! `cargo test` catches what a fuzzer once found. Add a crash input to
//! `fuzz/regressions/<target>/` when fixing it.

use std::path::PathBuf;

use control::bgp::wire::selfcheck;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            let bytes = std::fs::read(e.path()).expect("readable fuzz input");
            out.push((e.path(), bytes));
        }
    }
    out.sort();
    out
}

#[test]
fn message_stream_seeds_and_regressions_hold_the_invariants() {
    let all = inputs("bgp_message");
    assert!(all.len() >= 3, "fuzz/seeds/bgp_message is missing: {all:?}");
    for (path, bytes) in all {
        eprintln!("{}", path.display());
        selfcheck::message_stream(&bytes);
    }
}

#[test]
fn update_seeds_and_regressions_hold_the_invariants() {
    let all = inputs("bgp_update");
    assert!(all.len() >= 4, "fuzz/seeds/bgp_update is missing: {all:?}");
    for (path, bytes) in all {
        eprintln!("{}", path.display());
        selfcheck::update_body(&bytes);
    }
}

#[test]
fn seeds_decode_to_what_they_were_made_from() {
    // The seeds are real messages, not noise: the MetalLB one announces its
    // /32, the FRR one a /64 over IPv6.
    use control::bgp::wire::{decode_update, selfcheck::context_from};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/bgp_update");
    let metallb = std::fs::read(root.join("metallb")).unwrap();
    let d = decode_update(&metallb[1..], &context_from(metallb[0])).unwrap();
    assert_eq!(
        d.announced().map(|p| p.to_string()).collect::<Vec<_>>(),
        ["192.168.10.1/32"]
    );
    let frr = std::fs::read(root.join("frr_ipv6")).unwrap();
    let d = decode_update(&frr[1..], &context_from(frr[0])).unwrap();
    assert_eq!(
        d.announced().map(|p| p.to_string()).collect::<Vec<_>>(),
        ["2001:db8:10::/64"]
    );
}
