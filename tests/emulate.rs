//! `ecmpd emulate` as a user runs it: every shipped scenario is valid and
//! loads by name or path, a run writes its four files with figures that
//! agree with theory, and a bad scenario gets its line and field.

use std::path::{Path, PathBuf};
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

fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testbed/scenarios");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_shipped_scenario_checks_by_path_and_by_name() {
    let files = scenarios();
    assert_eq!(files.len(), 5, "{files:?}");
    for f in &files {
        let o = ecmpd(&["emulate", "--check", f.to_str().unwrap()]);
        assert!(o.status.success(), "{}: {}", f.display(), stderr(&o));
        let name = f.file_stem().unwrap().to_str().unwrap();
        let by_name = ecmpd(&["emulate", "--check", name]);
        assert!(by_name.status.success(), "{name}: {}", stderr(&by_name));
        // The embedded copy is the file.
        assert_eq!(
            o.stdout, by_name.stdout,
            "{name}: the built-in differs from the file"
        );
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.starts_with(&format!("{name}: ")), "{text}");
    }
}

/// A scenario small enough for a debug build.
const SMALL: &str = r#"
name = "small"
description = "Three nodes, one fails."
duration = "8s"
seed = 5

[[node]]
name = "a"
address = "192.0.2.1"

[[node]]
name = "b"
address = "192.0.2.2"

[[node]]
name = "c"
address = "192.0.2.3"

[[service]]
address = "203.0.113.10"

[hashing]
algorithms = ["modulo", "resilient"]
fields = ["l4", "l3-proto"]

[traffic]
arrivals = 0
open_at_start = 3000
duration = "60s"
packet_interval = "250ms"

[tracker]
idle_timeout = "5s"

[[event]]
at = "4s"
kind = "down"
node = "b"
"#;

#[test]
fn emulate_writes_four_files_whose_figures_agree_with_theory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("small.toml");
    std::fs::write(&file, SMALL).unwrap();
    let out = dir.path().join("out");
    let o = ecmpd(&[
        "emulate",
        file.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--json",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["index.html", "report.md", "results.json", "results.csv"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let v: Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(v["runs"], on_disk["runs"]);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4, "2 algorithms x 2 field selections");
    for run in runs {
        let step = &run["steps"][0];
        let live = step["exact"]["live"].as_f64().unwrap();
        let unavoidable = step["exact"]["unavoidable"].as_f64().unwrap();
        let collateral = step["exact"]["collateral"].as_f64().unwrap();
        assert!(live > 2500.0);
        assert!((unavoidable / live - 1.0 / 3.0).abs() < 0.04, "{run}");
        match run["algorithm"].as_str().unwrap() {
            "modulo" => assert!((collateral / live - 1.0 / 3.0).abs() < 0.04, "{run}"),
            "resilient" => assert_eq!(collateral, 0.0),
            other => panic!("unexpected {other}"),
        }
        assert_eq!(step["tracker"]["unavoidable"], step["exact"]["unavoidable"]);
        assert_eq!(step["tracker"]["collateral"], step["exact"]["collateral"]);
    }
    let summary = stderr(&o);
    assert!(summary.contains("Report: "), "{summary}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + 4,
        "a header and a row per run and step:\n{csv}"
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("<svg"), "no chart");
    assert!(html.contains("resilient / l4"));
}

#[test]
fn a_bad_scenario_names_its_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    for (from, to, needle) in [
        (
            "node = \"b\"",
            "node = \"z\"",
            "bad.toml:38: event[0].node: no node named `z`",
        ),
        (
            "open_at_start = 3000",
            "open_at_start = -3",
            "bad.toml:28: traffic.open_at_start",
        ),
        (
            "kind = \"down\"",
            "kind = \"sideways\"",
            "bad.toml:37: event[0].kind: unknown variant `sideways`",
        ),
        (
            "duration = \"8s\"",
            "duration = \"8 days\"",
            "bad.toml:4: duration: unknown unit",
        ),
    ] {
        std::fs::write(&file, SMALL.replace(from, to)).unwrap();
        let o = ecmpd(&["emulate", "--check", file.to_str().unwrap()]);
        let err = stderr(&o);
        assert!(!o.status.success());
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains(needle), "expected `{needle}` in: {err}");
    }
    let o = ecmpd(&["emulate", "no-such-scenario"]);
    assert!(
        stderr(&o).contains("built in: node-failure-5tuple"),
        "{}",
        stderr(&o)
    );
}
