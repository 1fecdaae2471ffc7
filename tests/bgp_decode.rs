//! `ecmpd bgp decode`: hex from arguments, stdin and files becomes JSON with
//! the RFC 7606 outcome; refusals name the NOTIFICATION and exit 1.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn ecmpd(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecmpd"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ecmpd runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// JSON objects printed one per line (`--compact`).
fn objects(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

const MARKER: &str = "ffffffffffffffffffffffffffffffff";

/// MetalLB's announcement of 192.168.10.1/32 from AS 64512 via 10.0.0.2,
/// community 65000:100, as a whole message (header included).
fn metallb_update_hex(origin: &str, communities: &str) -> String {
    let attrs = format!("400101{origin}40020602010000fc004003040a000002{communities}");
    let body = format!("0000{:04x}{attrs}20c0a80a01", attrs.len() / 2);
    format!("{MARKER}{:04x}02{body}", 19 + body.len() / 2)
}

#[test]
fn an_update_from_an_argument_decodes_with_its_attributes() {
    let hex = metallb_update_hex("00", "c00804fde80064");
    let out = ecmpd(&["bgp", "decode", "--compact", &hex], None);
    assert!(out.status.success(), "{out:?}");
    let v = &objects(&out)[0];
    assert_eq!(v["type"], "UPDATE");
    assert_eq!(v["outcome"], "accept");
    assert_eq!(v["update"]["nlri"][0], "192.168.10.1/32");
    assert_eq!(v["update"]["attributes"]["next_hop"], "10.0.0.2");
    assert_eq!(v["update"]["attributes"]["communities"][0], "65000:100");
    assert_eq!(v["update"]["attributes"]["as_path"][0]["asns"][0], 64512);
}

#[test]
fn a_malformed_attribute_shows_the_rfc_7606_outcome() {
    // ORIGIN 3 is undefined: treat-as-withdraw; the session stays.
    let hex = metallb_update_hex("03", "c00804fde80064");
    let out = ecmpd(&["bgp", "decode", "--compact", &hex], None);
    assert!(out.status.success(), "treat-as-withdraw is not a refusal");
    let v = &objects(&out)[0];
    assert_eq!(v["outcome"], "treat-as-withdraw");
    assert_eq!(v["problems"][0]["attribute"], "ORIGIN");
    assert_eq!(v["problems"][0]["action"], "treat-as-withdraw");
}

#[test]
fn a_session_reset_names_the_notification_and_exits_1() {
    // A /33 in the NLRI field cannot be located: Invalid Network Field.
    let body = "0000000021c0a80a0101";
    let hex = format!("{MARKER}{:04x}02{body}", 19 + body.len() / 2);
    let out = ecmpd(&["bgp", "decode", "--compact", &hex], None);
    assert_eq!(out.status.code(), Some(1));
    let v = &objects(&out)[0];
    assert_eq!(v["outcome"], "session-reset");
    assert_eq!(v["notification_to_send"]["code"], 3);
    assert_eq!(v["notification_to_send"]["subcode"], 10);
    assert_eq!(
        v["notification_to_send"]["suberror"],
        "Invalid Network Field"
    );
}

#[test]
fn stdin_and_files_give_one_result_per_line_and_several_messages_per_input() {
    let keepalive = format!("{MARKER}001304");
    let eor = format!("{MARKER}00170200000000");
    let text = format!(
        "# a capture\n{keepalive}{eor}\n\n{}\n",
        metallb_update_hex("00", "")
    );
    let out = ecmpd(&["bgp", "decode", "--compact"], Some(&text));
    assert!(out.status.success(), "{out:?}");
    let v = objects(&out);
    assert_eq!(v.len(), 3);
    assert_eq!(v[0]["type"], "KEEPALIVE");
    assert_eq!(v[0]["input"], "stdin:2");
    assert_eq!(v[1]["end_of_rib"], "ipv4-unicast");
    assert_eq!(v[1]["offset"], 19);
    assert_eq!(v[2]["input"], "stdin:4");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msgs.txt");
    std::fs::write(&path, &text).unwrap();
    let out = ecmpd(
        &[
            "bgp",
            "decode",
            "--compact",
            "--file",
            path.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(objects(&out).len(), 3);
}

#[test]
fn open_messages_list_their_capabilities() {
    // AS 64512, hold 90, id 10.0.0.2; MP IPv4, MP IPv6, 4-octet AS in one
    // parameter, as MetalLB's native speaker sends it.
    let params = "0212010400010001010400020001410400 00fc00".replace(' ', "");
    let body = format!("04fc00005a0a000002{:02x}{params}", params.len() / 2);
    let hex = format!("{MARKER}{:04x}01{body}", 19 + body.len() / 2);
    let out = ecmpd(&["bgp", "decode", "--compact", &hex], None);
    assert!(out.status.success(), "{out:?}");
    let v = &objects(&out)[0];
    assert_eq!(v["type"], "OPEN");
    assert_eq!(v["asn"], 64512);
    assert_eq!(v["hold_time"], 90);
    assert_eq!(v["bgp_id"], "10.0.0.2");
    let caps = v["optional_parameters"][0].as_array().unwrap();
    assert_eq!(caps.len(), 3);
    assert_eq!(caps[1]["family"], "ipv6-unicast");
    assert_eq!(caps[2]["capability"], "four-octet-as");
}

#[test]
fn bad_hex_and_bare_bodies_get_a_clear_word() {
    let out = ecmpd(&["bgp", "decode", "--compact", "zz"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(objects(&out)[0]["error"]
        .as_str()
        .unwrap()
        .contains("not a hex digit"));

    // A body without header: refused, with the hint to use --body ...
    let out = ecmpd(&["bgp", "decode", "--compact", "0000000000"], None);
    assert!(objects(&out)[0]["hint"]
        .as_str()
        .unwrap()
        .contains("--body"));
    // ... which decodes it.
    let out = ecmpd(&["bgp", "decode", "--compact", "--body", "00000000"], None);
    assert_eq!(objects(&out)[0]["end_of_rib"], "ipv4-unicast");
}
