//! `ecmpd bench dataplane` as a user runs it: tiny settings give JSON with a
//! positive rate for both tracker settings and every packet forwarded; bad
//! input gets one clear sentence and a non-zero exit, without a panic.

use std::process::{Command, Output};

use serde_json::Value;

fn ecmpd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ecmpd"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ecmpd")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const TINY: [&str; 10] = [
    "bench",
    "dataplane",
    "--routes",
    "2000",
    "--seconds",
    "0.2",
    "--workers",
    "1",
    "--tracker",
    "both",
];

#[test]
fn tiny_bench_reports_positive_mpps_for_both_tracker_settings_with_every_packet_forwarded() {
    let mut args = TINY.to_vec();
    args.extend(["--json", "--quiet"]);
    let o = ecmpd(&args);
    assert!(o.status.success(), "ecmpd failed: {}", stderr(&o));
    assert!(stderr(&o).is_empty(), "--quiet printed: {}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(v["routes"], 2000);
    assert_eq!(v["batch"], 32);
    assert_eq!(v["frame_bytes"], 64);
    assert!(v["machine"]["nproc"].as_u64().unwrap() >= 1);
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "one run per tracker setting: {runs:?}");
    let trackers: Vec<&str> = runs
        .iter()
        .map(|r| r["tracker"].as_str().unwrap())
        .collect();
    assert_eq!(trackers, ["off", "on"]);
    for r in runs {
        assert_eq!(r["workers"], 1);
        let mpps = r["mpps_total"].as_f64().expect("mpps_total");
        assert!(mpps > 0.0, "no packets per second: {r}");
        assert_eq!(r["mpps_per_worker"].as_f64(), Some(mpps));
        let packets = r["packets"].as_u64().unwrap();
        assert!(packets > 0);
        assert_eq!(packets, r["batches"].as_u64().unwrap() * 32);
        assert_eq!(r["all_forwarded"], true, "{r}");
        assert_eq!(r["forwarded"], r["rx_packets"], "{r}");
        assert!(r["rx_packets"].as_u64().unwrap() >= packets);
        assert_eq!(r["drops"], 0);
        assert_eq!(r["control"], 0);
        let lat = &r["batch_latency_ns"];
        let p: Vec<u64> = ["p50", "p90", "p99", "p99.9", "max"]
            .iter()
            .map(|k| lat[k].as_u64().unwrap_or_else(|| panic!("no {k} in {lat}")))
            .collect();
        assert!(p[0] > 0 && p.windows(2).all(|w| w[0] <= w[1]), "{lat}");
    }
}

#[test]
fn tiny_bench_prints_a_table_and_progress_without_json() {
    let o = ecmpd(&TINY);
    assert!(o.status.success(), "ecmpd failed: {}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Mpps/worker"), "{out}");
    assert!(out.contains("p99.9 ns"), "{out}");
    let progress = stderr(&o);
    assert_eq!(
        progress.matches("Mpps (").count(),
        2,
        "a line per run: {progress}"
    );
}

#[test]
fn bad_input_fails_with_one_clear_sentence_and_no_panic() {
    for (flag, value, expect) in [
        ("--workers", "0", "workers must be between 1"),
        ("--workers", "1,x", "is not a whole number of workers"),
        ("--routes", "0", "routes must be between 1"),
        ("--batch", "0", "packets per batch must be between 1"),
        ("--flows", "0", "flows must be between 1"),
        ("--seconds", "0", "seconds per run must be above 0"),
        ("--seconds", "nan", "seconds per run must be above 0"),
        ("--tracker", "maybe", "invalid value 'maybe'"),
    ] {
        let o = ecmpd(&["bench", "dataplane", flag, value, "--quiet"]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{flag} {value} was accepted");
        assert_ne!(o.status.code(), Some(0));
        assert!(err.contains(expect), "{flag} {value}: {err}");
        assert!(!err.contains("panicked"), "{flag} {value}: {err}");
        assert!(o.stdout.is_empty(), "{flag} {value} printed results");
    }
}
