//! `ecmpd`: a userspace ECMP router and data-plane emulator that measures how
//! many live connections break when the nexthops behind a service IP change.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod bench;
mod bgp;
mod cli;
mod compare;
mod config_cmd;
mod demo;
mod emulate;
mod router_cmd;
mod show;

/// ecmpd — what happens to live connections when the nexthops behind a
/// load-balanced service IP change.
///
/// Routers spread connections to a service IP over many nexthops (Kubernetes
/// nodes announcing it over BGP) by hashing packet fields. When a node leaves
/// or joins, most routers rehash and break most live connections; resilient
/// hashing breaks only those that must break. ecmpd measures this.
///
/// Logging goes to stderr and is controlled by RUST_LOG (for example
/// RUST_LOG=debug or RUST_LOG=hashing=trace).
#[derive(Parser, Debug)]
#[command(name = "ecmpd", version, about, long_about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Bench(bench::BenchArgs),
    Bgp(bgp::BgpArgs),
    Compare(cli::CompareArgs),
    Config(config_cmd::ConfigArgs),
    Emulate(emulate::EmulateArgs),
    Hash(cli::HashArgs),
    Router(router_cmd::RouterArgs),
    Show(show::ShowArgs),
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`ecmpd emulate x --json | head`), as
    // Unix tools do, instead of panicking in `println!`.
    // SAFETY: restoring a signal's default disposition at start-up, before
    // any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(args) => bench::bench(args),
        Command::Bgp(args) => bgp::bgp(args),
        Command::Compare(args) => cli::compare(args),
        Command::Config(args) => config_cmd::config(args),
        Command::Emulate(args) => emulate::emulate(args),
        Command::Hash(args) => cli::hash(args),
        Command::Router(args) => router_cmd::router(args),
        Command::Show(args) => show::show(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ecmpd: {err}");
            ExitCode::from(2)
        }
    }
}
