//! `ecmpd bgp decode`: BGP messages given as hex (from a capture, a log, a
//! bug report) turned into JSON, with the RFC 7606 outcome of every UPDATE
//! and the NOTIFICATION a router would send for anything it must refuse.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use control::bgp::wire::{
    self, decode_update, frame, Afi, AfiSafi, Capability, Message, Safi, UpdateContext, WireError,
    HEADER_LEN, MARKER, MAX_EXTENDED_MESSAGE_LEN,
};
use serde_json::{json, Value};

/// BGP tools.
#[derive(Args, Debug)]
pub struct BgpArgs {
    #[command(subcommand)]
    command: BgpCommand,
}

#[derive(Subcommand, Debug)]
enum BgpCommand {
    Decode(DecodeArgs),
    Refresh(RefreshArgs),
}

/// Ask a running router to send ROUTE-REFRESH to a neighbour (RFC 2918),
/// for every family the session negotiated, so the neighbour sends its
/// routes again. (Import policy changes need none: the router keeps what it
/// received and re-evaluates it.)
#[derive(Args, Debug)]
pub struct RefreshArgs {
    /// The neighbour's address.
    peer: std::net::IpAddr,
    #[command(flatten)]
    target: crate::show::ApiTarget,
}

fn refresh(args: RefreshArgs) -> anyhow::Result<()> {
    let base = crate::show::api_base(&args.target)?;
    let path = format!("/api/v1/bgp/refresh?peer={}", args.peer);
    let (raw, families): (String, Vec<String>) = crate::show::post(&base, &path)?;
    if args.target.json {
        println!("{raw}");
    } else {
        println!(
            "ROUTE-REFRESH sent to {} for {}",
            args.peer,
            families.join(", ")
        );
    }
    Ok(())
}

/// Decode BGP messages given as hex into JSON.
///
/// Each input is one or more whole messages (16-octet marker first), as hex:
/// spaces, colons, newlines inside an argument and a leading 0x are ignored,
/// so Wireshark's "Copy as Hex Stream" and tcpdump -X output (offsets
/// removed) both work. Several messages back to back (a TCP segment) are
/// decoded one after the other. Inputs come from the arguments, from --file
/// (one input per line, # comments), or from stdin when neither is given.
///
/// UPDATEs are read with RFC 7606 error handling: "outcome" is accept,
/// treat-as-withdraw or session-reset, and "problems" lists each malformed
/// attribute with the action taken. Messages a router must refuse show the
/// NOTIFICATION it would send. The exit status is 0 when every input
/// decoded (even with RFC 7606 problems), 1 when any needed a session reset
/// or was not valid hex.
///
/// Example (an IPv4 End-of-RIB):
/// ecmpd bgp decode ffffffffffffffffffffffffffffffff 0017 02 0000 0000
#[derive(Args, Debug)]
pub struct DecodeArgs {
    /// Messages as hex; all arguments together are one input, so spaces
    /// need no quoting.
    hex: Vec<String>,
    /// Read inputs from this file, one per line.
    #[arg(long, short)]
    file: Option<PathBuf>,
    /// The inputs are bare UPDATE bodies (no marker, length or type).
    #[arg(long)]
    body: bool,
    /// The session did not negotiate 4-octet AS numbers: AS_PATH and
    /// AGGREGATOR carry 2-octet ASes, and AS4_PATH is merged (RFC 6793).
    #[arg(long)]
    two_octet_as: bool,
    /// The peer is internal (iBGP): LOCAL_PREF is honoured.
    #[arg(long)]
    ibgp: bool,
    /// The external peer's AS: a path not starting with it is treated as
    /// withdrawn (enforce-first-as).
    #[arg(long, value_name = "ASN")]
    peer_as: Option<u32>,
    /// One JSON object per line instead of indented output.
    #[arg(long)]
    compact: bool,
}

/// Run a `bgp` subcommand.
pub fn bgp(args: BgpArgs) -> anyhow::Result<()> {
    match args.command {
        BgpCommand::Decode(a) => decode(a),
        BgpCommand::Refresh(a) => refresh(a),
    }
}

fn decode(args: DecodeArgs) -> anyhow::Result<()> {
    let inputs = read_inputs(&args)?;
    if inputs.is_empty() {
        bail!("no input: give hex messages as arguments, --file FILE, or on stdin");
    }
    let ctx = UpdateContext {
        four_octet_as: !args.two_octet_as,
        ibgp: args.ibgp,
        peer_as: args.peer_as,
    };
    let mut all_ok = true;
    let mut out = std::io::stdout().lock();
    for (source, text) in inputs {
        let results = match parse_hex(&text) {
            Ok(bytes) if args.body => vec![describe_update_body(&bytes, &ctx)],
            Ok(bytes) => describe_stream(&bytes, &ctx),
            Err(e) => vec![json!({ "error": e, "outcome": "invalid-input" })],
        };
        for mut r in results {
            if r.get("outcome")
                .and_then(Value::as_str)
                .is_some_and(|o| o == "session-reset" || o == "invalid-input")
            {
                all_ok = false;
            }
            if let Some(obj) = r.as_object_mut() {
                obj.insert("input".into(), json!(source));
            }
            let text = if args.compact {
                serde_json::to_string(&r)?
            } else {
                serde_json::to_string_pretty(&r)?
            };
            writeln!(out, "{text}")?;
        }
    }
    if all_ok {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

/// (where it came from, the hex) for every input.
fn read_inputs(args: &DecodeArgs) -> anyhow::Result<Vec<(String, String)>> {
    let lines = |text: &str, name: &str| -> Vec<(String, String)> {
        text.lines()
            .enumerate()
            .map(|(i, l)| {
                (
                    format!("{name}:{}", i + 1),
                    l.split('#').next().unwrap_or("").trim().to_string(),
                )
            })
            .filter(|(_, l)| !l.is_empty())
            .collect()
    };
    let mut inputs = Vec::new();
    if !args.hex.is_empty() {
        inputs.push(("args".to_string(), args.hex.join(" ")));
    }
    if let Some(path) = &args.file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        inputs.extend(lines(&text, &path.display().to_string()));
    }
    if args.hex.is_empty() && args.file.is_none() {
        let mut text = String::new();
        std::io::stdin()
            .lock()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        inputs.extend(lines(&text, "stdin"));
    }
    Ok(inputs)
}

/// Hex to bytes, ignoring spaces, colons, dashes and a leading `0x`.
fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let digits: Vec<u8> = t.bytes().filter(|b| !b" \t\r\n:-".contains(b)).collect();
    if let Some(bad) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
        return Err(format!("'{}' is not a hex digit", char::from(*bad)));
    }
    if digits.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    Ok(digits
        .chunks_exact(2)
        .map(|p| {
            let hi = (p[0] as char).to_digit(16).unwrap_or(0);
            let lo = (p[1] as char).to_digit(16).unwrap_or(0);
            (hi * 16 + lo) as u8
        })
        .collect())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn family(f: AfiSafi) -> String {
    match (f.afi, f.safi) {
        (Afi::IPV4, Safi::UNICAST) => "ipv4-unicast".into(),
        (Afi::IPV6, Safi::UNICAST) => "ipv6-unicast".into(),
        (Afi::IPV4, Safi::MULTICAST) => "ipv4-multicast".into(),
        (Afi::IPV6, Safi::MULTICAST) => "ipv6-multicast".into(),
        (afi, safi) => format!("afi-{}-safi-{}", afi.0, safi.0),
    }
}

fn notification_json(n: &wire::Notification) -> Value {
    let mut v = json!({
        "code": n.code,
        "subcode": n.subcode,
        "error": n.code_name(),
        "data": hex(&n.data),
    });
    if let Some(name) = n.subcode_name() {
        v["suberror"] = json!(name);
    }
    if let Some(Ok(msg)) = n.shutdown_message() {
        v["shutdown_message"] = json!(msg);
    }
    v
}

fn refusal(e: &WireError) -> Value {
    json!({
        "outcome": "session-reset",
        "error": e.to_string(),
        "notification_to_send": notification_json(&e.notification()),
    })
}

/// Every message in `bytes`, in order; a refusal ends the stream, as it
/// would end the session.
fn describe_stream(bytes: &[u8], ctx: &UpdateContext) -> Vec<Value> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = bytes.get(at..).unwrap_or_default();
        match frame(rest, MAX_EXTENDED_MESSAGE_LEN) {
            Ok(Some((msg, used))) => {
                let mut v = describe_message(&msg, ctx);
                v["offset"] = json!(at);
                v["length"] = json!(used);
                out.push(v);
                at += used;
            }
            Ok(None) => {
                let mut v = json!({
                    "outcome": "invalid-input",
                    "offset": at,
                    "error": if rest.len() < HEADER_LEN {
                        format!("{} octets left, fewer than a 19-octet header", rest.len())
                    } else {
                        format!("the header says {} octets, {} given", u16::from_be_bytes([rest[16], rest[17]]), rest.len())
                    },
                });
                if !rest.starts_with(&MARKER[..rest.len().min(16)]) {
                    v["hint"] = json!(
                        "a message starts with 16 ff octets; for a bare UPDATE body use --body"
                    );
                }
                out.push(v);
                break;
            }
            Err(e) => {
                let mut v = refusal(&e);
                v["offset"] = json!(at);
                if e == WireError::ConnectionNotSynchronized {
                    v["hint"] = json!(
                        "a message starts with 16 ff octets; for a bare UPDATE body use --body"
                    );
                }
                out.push(v);
                break;
            }
        }
    }
    out
}

fn describe_update_body(body: &[u8], ctx: &UpdateContext) -> Value {
    match decode_update(body, ctx) {
        Ok(d) => {
            let mut v = json!({
                "type": "UPDATE",
                "outcome": d.outcome,
                "update": d.update,
            });
            if !d.problems.is_empty() {
                v["problems"] = json!(d.problems);
            }
            if let Some(f) = d.update.end_of_rib_family() {
                v["end_of_rib"] = json!(family(f));
            }
            v
        }
        Err(e) => {
            let mut v = refusal(&e);
            v["type"] = json!("UPDATE");
            v
        }
    }
}

fn describe_message(msg: &Message, ctx: &UpdateContext) -> Value {
    match msg {
        Message::Update(body) => describe_update_body(body, ctx),
        Message::Open(open) => {
            let params: Vec<Value> = open
                .optional_parameters
                .iter()
                .map(|caps| Value::Array(caps.iter().map(capability_json).collect()))
                .collect();
            json!({
                "type": "OPEN",
                "outcome": "accept",
                "version": wire::BGP_VERSION,
                "my_as": open.my_as,
                "asn": open.peer_as(),
                "hold_time": open.hold_time,
                "bgp_id": std::net::Ipv4Addr::from(open.bgp_id).to_string(),
                "extended_parameters": open.extended_parameters,
                "optional_parameters": params,
            })
        }
        Message::Notification(n) => {
            let mut v = notification_json(n);
            v["type"] = json!("NOTIFICATION");
            v["outcome"] = json!("accept");
            v
        }
        Message::Keepalive => json!({ "type": "KEEPALIVE", "outcome": "accept" }),
        Message::RouteRefresh(rr) => json!({
            "type": "ROUTE-REFRESH",
            "outcome": "accept",
            "family": family(rr.family),
            "subtype": format!("{:?}", rr.subtype),
        }),
    }
}

fn capability_json(c: &Capability) -> Value {
    match c {
        Capability::Multiprotocol(f) => {
            json!({ "capability": "multiprotocol", "family": family(*f) })
        }
        Capability::RouteRefresh => json!({ "capability": "route-refresh" }),
        Capability::ExtendedMessage => json!({ "capability": "extended-message" }),
        Capability::EnhancedRouteRefresh => json!({ "capability": "enhanced-route-refresh" }),
        Capability::FourOctetAs(asn) => json!({ "capability": "four-octet-as", "asn": asn }),
        Capability::GracefulRestart(gr) => json!({
            "capability": "graceful-restart",
            "restart_state": gr.restart_state,
            "notification": gr.notification,
            "restart_time": gr.restart_time,
            "families": gr.families.iter().map(|f| json!({
                "family": family(f.family),
                "forwarding_preserved": f.forwarding_preserved,
            })).collect::<Vec<_>>(),
        }),
        Capability::Unknown { code, value } => json!({
            "capability": "unknown",
            "code": code,
            "value": hex(value),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_hex;

    #[test]
    fn hex_forms_an_engineer_pastes() {
        assert_eq!(parse_hex("0x00ff").unwrap(), vec![0, 255]);
        assert_eq!(
            parse_hex("00:ff 10-20\n").unwrap(),
            vec![0, 255, 0x10, 0x20]
        );
        assert!(parse_hex("0g").unwrap_err().contains("'g'"));
        assert!(parse_hex("abc").unwrap_err().contains("odd"));
    }
}
