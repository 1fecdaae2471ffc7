//! `ecmpd router`: run the control plane (BGP sessions, BFD, the RIB, the
//! FIB writer and the management API) from one configuration file until
//! SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;
use control::config::Config;
use control::router::{Router, RouterOptions};

/// Run the router: BGP sessions, BFD, the RIB and the FIB, with the
/// management API that `ecmpd show` reads. Stops on SIGINT or SIGTERM.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  ecmpd router --config testbed/router/router.toml
  ecmpd router --config bench.toml --listen 127.0.0.1:1179 --api 127.0.0.1:2180")]
pub struct RouterArgs {
    /// The TOML configuration (see testbed/router/README.md); without it,
    /// the built-in loopback configuration.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// BGP listen address instead of the configuration's (repeatable).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// Management API address instead of the configuration's.
    #[arg(long, value_name = "ADDR")]
    api: Option<SocketAddr>,
}

/// Run until a stop signal.
pub fn router(args: RouterArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| anyhow!("{e}"))?,
        None => Config::embedded_default(),
    };
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let options = RouterOptions {
            bgp_listen: (!args.listen.is_empty()).then_some(args.listen),
            api_listen: args.api,
            ..RouterOptions::default()
        };
        let router = Router::start(config, options)
            .await
            .map_err(|e| anyhow!("cannot start the router: {e}"))?;
        let bgp: Vec<String> = router.bgp_addrs().iter().map(|a| a.to_string()).collect();
        tracing::info!(
            "router up: BGP on {}, API on {}",
            bgp.join(", "),
            router
                .api_addr()
                .map_or_else(|| "-".to_string(), |a| a.to_string())
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch SIGTERM")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        router.shutdown().await;
        Ok(())
    })
}

/// Many BGP sessions need many descriptors: raise the soft limit to the
/// hard one.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
