//! The `ecmpd` command line as a user runs it: `compare` writes its report,
//! its figures agree with theory and repeat for a seed, bad input gets one
//! clear sentence and a non-zero exit; `hash` reproduces published vectors.

use std::path::Path;
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

/// A small but real matrix, quick in a debug build.
fn small_compare(out: &Path, extra: &[&str]) -> Output {
    let out = out.to_str().unwrap();
    let mut args = vec![
        "compare",
        "-a",
        "modulo,hash-threshold,resilient,jump",
        "-n",
        "4,8",
        "-t",
        "uniform",
        "-f",
        "l4",
        "--flows",
        "40000",
        "--out",
        out,
        "--json",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    ecmpd(&args)
}

fn records(o: &Output) -> Vec<Value> {
    assert!(o.status.success(), "ecmpd failed: {}", stderr(o));
    let v: Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    v["records"].as_array().expect("records").clone()
}

fn find<'a>(records: &'a [Value], algorithm: &str, members: u64, change: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["algorithm"] == algorithm && r["members"] == members && r["change"] == change)
        .unwrap_or_else(|| panic!("no record for {algorithm} {members} {change}"))
}

#[test]
fn compare_writes_the_four_report_files_with_one_record_per_cell() {
    let dir = tempfile::tempdir().unwrap();
    let out = small_compare(dir.path(), &[]);
    let recs = records(&out);
    // 4 algorithms x 2 sizes x 4 changes, less jump's weight change (no weights).
    assert_eq!(recs.len(), 4 * 2 * 4 - 2);
    for field in [
        "algorithm",
        "fields",
        "members",
        "change",
        "traffic",
        "remapped",
        "unavoidable",
        "collateral",
        "balance_max_over_mean",
        "balance_cv",
        "lookup_ns",
    ] {
        assert!(
            recs.iter().all(|r| !r[field].is_null()),
            "field {field} missing"
        );
    }
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(html.contains("Which algorithm to pick"));
    assert!(
        html.matches("<svg").count() >= 5,
        "expected the charts inline"
    );
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("| resilient |") || md.contains("| **resilient** |"));
    let csv = std::fs::read_to_string(dir.path().join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), recs.len() + 1);
    assert!(csv.starts_with("algorithm,fields,hash,members,change,traffic,remapped"));
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).unwrap()).unwrap();
    assert_eq!(json["records"].as_array().unwrap().len(), recs.len());
    // The summary names the report's location.
    assert!(stderr(&out).contains("index.html"));
}

#[test]
fn compare_figures_agree_with_theory() {
    let dir = tempfile::tempdir().unwrap();
    let recs = records(&small_compare(dir.path(), &[]));
    let f = |r: &Value, k: &str| r[k].as_f64().unwrap();
    let modulo = find(&recs, "modulo", 8, "remove");
    assert!((f(modulo, "remapped") - 7.0 / 8.0).abs() < 0.01, "{modulo}");
    let resilient = find(&recs, "resilient", 8, "remove");
    assert_eq!(f(resilient, "collateral"), 0.0, "{resilient}");
    assert!(
        (f(resilient, "remapped") - 1.0 / 8.0).abs() < 0.01,
        "{resilient}"
    );
    let jump = find(&recs, "jump", 8, "add");
    assert!((f(jump, "remapped") - 1.0 / 9.0).abs() < 0.01, "{jump}");
    for r in &recs {
        let sum = f(r, "unavoidable") + f(r, "collateral");
        assert!((f(r, "remapped") - sum).abs() < 1e-9, "{r}");
    }
}

#[test]
fn compare_repeats_its_figures_for_a_seed_and_changes_them_for_another() {
    let strip = |mut recs: Vec<Value>| {
        for r in &mut recs {
            let o = r.as_object_mut().unwrap();
            o.remove("lookup_ns");
            o.remove("build_us");
        }
        recs
    };
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let first = strip(records(&small_compare(a.path(), &["--seed", "42"])));
    let again = strip(records(&small_compare(b.path(), &["--seed", "42"])));
    let other = strip(records(&small_compare(c.path(), &["--seed", "43"])));
    assert_eq!(first, again);
    assert_ne!(first, other);
}

fn assert_clear_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
}

#[test]
fn bad_input_gets_one_clear_sentence_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    assert_clear_error(
        &ecmpd(&["compare", "-a", "bogus", "--out", out]),
        "unknown algorithm 'bogus'",
    );
    assert_clear_error(
        &ecmpd(&["compare", "-n", "4,0", "--out", out]),
        "member count 0 is out of range",
    );
    assert_clear_error(
        &ecmpd(&["compare", "-c", "explode", "--out", out]),
        "unknown change 'explode'",
    );
    assert_clear_error(
        &ecmpd(&["compare", "-f", "src-ip+nonsense", "--out", out]),
        "unknown hash fields",
    );
    assert_clear_error(
        &ecmpd(&["compare", "--hash", "md5", "--out", out]),
        "unknown hash function 'md5'",
    );
    assert_clear_error(
        &ecmpd(&["compare", "--flows", "3", "--out", out]),
        "too few",
    );
    let missing = dir.path().join("missing.pcap");
    assert_clear_error(
        &ecmpd(&["compare", "--pcap", missing.to_str().unwrap(), "--out", out]),
        "missing.pcap",
    );
    let garbage = dir.path().join("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture at all, just text").unwrap();
    assert_clear_error(
        &ecmpd(&["compare", "--pcap", garbage.to_str().unwrap(), "--out", out]),
        "garbage.pcap",
    );
    // A folder below a regular file cannot be created, even by root.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let below = file.join("report");
    assert_clear_error(
        &ecmpd(&["compare", "--out", below.to_str().unwrap()]),
        "cannot write the report",
    );
}

/// An Ethernet + IPv4 + TCP frame.
fn tcp_frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    let mut ip = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    f
}

#[test]
fn compare_uses_the_flows_of_a_capture() {
    use pcap_file::pcap::{PcapPacket, PcapWriter};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clients.pcap");
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    for i in 0..3000u32 {
        let frame = tcp_frame(
            (0x0a00_0000 + i).to_be_bytes(),
            40000 + (i % 20000) as u16,
            [203, 0, 113, 10],
            443,
        );
        // Two packets per flow: they must aggregate into one flow.
        for t in 0..2 {
            let ts = std::time::Duration::from_millis(u64::from(i) * 2 + t);
            w.write_packet(&PcapPacket::new(ts, frame.len() as u32, &frame))
                .unwrap();
        }
    }
    drop(w);
    let out = ecmpd(&[
        "compare",
        "-a",
        "resilient",
        "-n",
        "4",
        "-c",
        "remove",
        "-t",
        "uniform",
        "--pcap",
        path.to_str().unwrap(),
        "--flows",
        "5000",
        "--out",
        dir.path().join("r").to_str().unwrap(),
        "--json",
        "--quiet",
    ]);
    let recs = records(&out);
    let pcap: Vec<&Value> = recs
        .iter()
        .filter(|r| r["traffic"].as_str().unwrap().starts_with("pcap"))
        .collect();
    assert_eq!(pcap.len(), 2, "one record per field selection: {recs:?}");
    assert!(pcap.iter().all(|r| r["flows"] == 3000));
}

#[test]
fn hash_reproduces_the_microsoft_rss_vector() {
    let out = ecmpd(&[
        "hash",
        "--src",
        "66.9.149.187",
        "--sport",
        "2794",
        "--dst",
        "161.142.100.80",
        "--dport",
        "1766",
        "--fields",
        "src-ip+dst-ip+src-port+dst-port",
        "--function",
        "toeplitz",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["hash"], "0x51ccc178");
    let out = ecmpd(&["hash", "--src", "10.0.0.1", "--dst", "::1"]);
    assert_clear_error(&out, "both be IPv4 or both IPv6");
}
