//! `ecmpd demo`, the README's main command: the real router on loopback with
//! emulated MetalLB speakers, live traffic through one data plane per
//! algorithm, a node drained and returning, a node dying silently. The
//! figures it reports must be what the algorithms do: resilient hashing
//! breaks only the leaving node's connections, modulo breaks most.

use std::process::Command;

use serde_json::Value;

#[test]
fn the_demo_runs_the_whole_loop_and_reports_breakage_per_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ecmpd"))
        .args(["demo", "--seconds", "20", "--json", "--out"])
        .arg(dir.path())
        .output()
        .expect("ecmpd demo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");

    // The live timeline came from BGP: a clean close, a return, and the
    // hold timer finding the silent node.
    let timeline: Vec<&str> = v["scenario"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t[1].as_str().unwrap())
        .collect();
    assert_eq!(timeline.len(), 3, "{timeline:?}\n{stderr}");
    assert!(timeline[0].starts_with("node-b down") && timeline[0].contains("connection closed"));
    assert!(timeline[1].starts_with("node-b up"));
    assert!(timeline[2].starts_with("node-d down") && timeline[2].contains("hold timer expired"));

    let run = |alg: &str| {
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["algorithm"] == alg)
            .unwrap_or_else(|| panic!("no {alg} run"))
            .clone()
    };
    let exact =
        |r: &Value, step: usize, what: &str| r["steps"][step]["exact"][what].as_u64().unwrap();

    // Resilient: only the leaving node's connections, none on the return.
    let res = run("resilient");
    assert_eq!(exact(&res, 0, "collateral"), 0);
    assert!(exact(&res, 0, "unavoidable") > 0);
    assert_eq!(
        exact(&res, 1, "unavoidable") + exact(&res, 1, "collateral"),
        0
    );
    assert_eq!(exact(&res, 2, "collateral"), 0);
    // Modulo: most live connections break when one node of four leaves.
    let modulo = run("modulo");
    let broken = exact(&modulo, 0, "unavoidable") + exact(&modulo, 0, "collateral");
    let live = exact(&modulo, 0, "live");
    assert!(broken * 2 > live, "modulo broke {broken} of {live}");
    // Every algorithm sent packets to node-d while the hold timer ran.
    for r in v["runs"].as_array().unwrap() {
        assert!(
            r["totals"]["blackholed"].as_u64().unwrap() > 0,
            "{}",
            r["algorithm"]
        );
        assert_eq!(r["totals"]["dropped"], 0);
    }
    // And the report is on disk.
    for f in ["index.html", "report.md", "results.json", "results.csv"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    assert!(stderr.contains("Report:"), "{stderr}");
}
