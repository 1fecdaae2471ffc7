//! `ecmpd config check`: validate a router configuration without starting
//! anything, listing every fault with its line and field.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use control::config::{Config, ConfigErrors, ConfigWarning};
use serde_json::json;

/// Router configuration tools.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    Check(CheckArgs),
}

/// Check a router configuration file (ecmpd router --config FILE) without
/// starting the router: every fault is listed with its line and field, and
/// warnings for settings that are accepted but likely not what was meant.
/// Without FILE, the built-in loopback configuration is checked and shown.
/// Exit status 1 when the file has faults.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The TOML file (see testbed/router/README.md for every field).
    file: Option<PathBuf>,
    /// Print the verdict, a summary, faults and warnings as JSON.
    #[arg(long)]
    json: bool,
}

/// Run a `config` subcommand.
pub fn config(args: ConfigArgs) -> anyhow::Result<()> {
    match args.command {
        ConfigCommand::Check(a) => check(a),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let name = args.file.as_ref().map_or_else(
        || "built-in configuration".to_string(),
        |p| p.display().to_string(),
    );
    let result = match &args.file {
        Some(path) => Config::load(path),
        None => Ok(Config::embedded_default()),
    };
    match result {
        Ok(cfg) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&summary_json(&name, &cfg))?
                );
            } else {
                print_summary(&name, &cfg);
            }
            Ok(())
        }
        Err(errors) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&errors_json(&name, &errors))?
                );
            } else {
                eprintln!("{name}: {} fault(s):", errors.iter().count());
                for e in errors.iter() {
                    eprintln!("  {e}");
                }
            }
            std::process::exit(1)
        }
    }
}

fn warning_json(w: &ConfigWarning) -> serde_json::Value {
    json!({ "line": w.line, "field": w.field, "message": w.message })
}

fn summary_json(name: &str, cfg: &Config) -> serde_json::Value {
    json!({
        "file": name,
        "valid": true,
        "router": { "id": cfg.router.id.to_string(), "asn": cfg.router.asn,
                    "listen": cfg.router.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>() },
        "api": cfg.api.listen.to_string(),
        "peers": cfg.peers.iter().map(|p| p.address.to_string()).collect::<Vec<_>>(),
        "listen_ranges": cfg.listen_ranges.iter().map(|r| r.prefix.to_string()).collect::<Vec<_>>(),
        "bfd_profiles": cfg.bfd_profiles.keys().collect::<Vec<_>>(),
        "policies": cfg.policies.keys().collect::<Vec<_>>(),
        "maximum_paths": cfg.multipath.maximum_paths,
        "forwarding_rules": cfg.forwarding.rules.len(),
        "warnings": cfg.warnings.iter().map(warning_json).collect::<Vec<_>>(),
    })
}

fn errors_json(name: &str, errors: &ConfigErrors) -> serde_json::Value {
    json!({
        "file": name,
        "valid": false,
        "errors": errors.iter().map(|e| json!({
            "line": e.line, "field": e.field, "message": e.message, "text": e.to_string(),
        })).collect::<Vec<_>>(),
    })
}

fn print_summary(name: &str, cfg: &Config) {
    println!("{name}: valid");
    println!(
        "  router {} AS {}, BGP on {}",
        cfg.router.id,
        cfg.router.asn,
        cfg.router
            .listen
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  management API on {}", cfg.api.listen);
    println!(
        "  {} peer(s), {} listen range(s) ({}), {} BFD profile(s), {} import polic(y/ies)",
        cfg.peers.len(),
        cfg.listen_ranges.len(),
        cfg.listen_ranges
            .iter()
            .map(|r| r.prefix.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        cfg.bfd_profiles.len(),
        cfg.policies.len()
    );
    println!(
        "  multipath up to {} paths; {} forwarding rule(s)",
        cfg.multipath.maximum_paths,
        cfg.forwarding.rules.len()
    );
    for w in &cfg.warnings {
        println!("  warning: {w}");
    }
}
