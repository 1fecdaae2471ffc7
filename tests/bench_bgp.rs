//! `ecmpd bench bgp` as a user runs it, on a small table: a separate
//! `ecmpd router` process is fed over loopback and every prefix of both
//! loads reaches its FIB; the JSON has the documented shape. Speed is never
//! asserted. Bad input gets one clear sentence and a non-zero exit.

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

#[test]
fn small_table_and_twenty_sessions_reach_the_fib_of_a_separate_router_process() {
    let o = ecmpd(&[
        "bench",
        "bgp",
        "--prefixes",
        "5000",
        "--sessions",
        "20",
        "--runs",
        "1",
        "--timeout",
        "120",
        "--json",
        "--quiet",
    ]);
    assert!(o.status.success(), "ecmpd failed: {}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["benchmark"], "bgp");
    assert_eq!(v["target"], "ecmpd router");
    assert!(v["machine"]["nproc"].as_u64().unwrap() >= 1);
    let loads = v["loads"].as_array().expect("loads");
    let names: Vec<&str> = loads.iter().map(|l| l["load"].as_str().unwrap()).collect();
    assert_eq!(names, ["full-table", "many-sessions"]);
    for (load, (sessions, prefixes)) in loads.iter().zip([(1, 5000), (20, 200)]) {
        assert_eq!(load["sessions"], sessions, "{load}");
        assert_eq!(load["prefixes"], prefixes, "{load}");
        assert_eq!(load["headline"], "fib");
        assert!(load["updates"].as_u64().unwrap() >= 1);
        assert_eq!(load["all_arrived"], true, "{load}");
        let runs = load["runs"].as_array().expect("runs");
        assert_eq!(runs.len(), 1);
        let run = &runs[0];
        assert_eq!(run["all_arrived"], true);
        // Every prefix is in the router's FIB and RIB.
        assert_eq!(run["final_counts"]["fib"], prefixes, "{run}");
        assert_eq!(run["final_counts"]["rib"], prefixes, "{run}");
        for key in [
            "since_first_byte_s",
            "since_established_s",
            "session_setup_s",
            "send_s",
            "updates_per_s",
            "prefixes_per_s",
        ] {
            assert!(run[key].as_f64().unwrap() >= 0.0, "{key} in {run}");
        }
        assert!(run["done_s"]["fib"].as_f64().is_some());
        // The router's own peak RSS, from /proc, not ours.
        assert!(run["peak_rss_mib"]["ecmpd"].as_f64().unwrap() > 0.0);
        assert!(run["cpu_s"]["ecmpd"].as_f64().is_some());
        let median = &load["median"];
        assert!(median["since_established_s"].as_f64().is_some());
        assert!(median["peak_rss_total_mib"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn a_target_without_a_way_to_poll_it_is_refused_in_one_sentence() {
    let o = ecmpd(&["bench", "bgp", "--target", "127.0.0.1:9", "--runs", "1"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("--wait-api") && e.contains("--wait-cmd"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
}

#[test]
fn zero_prefixes_is_refused() {
    let o = ecmpd(&["bench", "bgp", "--prefixes", "0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("prefixes"), "{}", stderr(&o));
}
