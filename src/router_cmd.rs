//! `ecmpd router`: run the router from a configuration file (or the
//! built-in loopback one) until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use control::config::Config;
use control::router::{Router, RouterOptions};

/// Run the router: BGP sessions (passive listening with dynamic neighbours,
/// configured peers), BFD, the RIB with multipath and import policy, the
/// FIB with the configured hashing per prefix range, and the management API
/// that `ecmpd show` reads. Runs until interrupted (Ctrl-C or SIGTERM).
///
/// Without --config the built-in configuration is used: BGP on
/// 127.0.0.1:1179 accepting any speaker from 127.0.0.0/8, the API on
/// 127.0.0.1:2179; no root needed. Check a file first with
/// `ecmpd config check FILE`. Logging is at info level unless RUST_LOG says
/// otherwise.
#[derive(Args, Debug)]
pub struct RouterArgs {
    /// The configuration file (testbed/router/README.md documents every
    /// field).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Listen for BGP here instead of the file's [router] listen addresses
    /// (repeatable).
    #[arg(long, visible_alias = "listen", value_name = "ADDR")]
    bgp_listen: Vec<SocketAddr>,
    /// Serve the management API here instead of the file's [api] listen.
    #[arg(long, value_name = "ADDR")]
    api: Option<SocketAddr>,
}

/// Run `ecmpd router`.
pub fn router(args: RouterArgs) -> Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => Config::embedded_default(),
    };
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let options = RouterOptions {
            bgp_listen: (!args.bgp_listen.is_empty()).then_some(args.bgp_listen),
            api_listen: args.api,
            ..RouterOptions::default()
        };
        let router = Router::start(config, options).await?;
        let bgp: Vec<String> = router.bgp_addrs().iter().map(|a| a.to_string()).collect();
        eprintln!(
            "ecmpd router: BGP on {}, management API on {}",
            bgp.join(", "),
            router
                .api_addr()
                .map_or_else(|| "(off)".to_string(), |a| format!("http://{a}"))
        );
        wait_for_signal().await;
        eprintln!("ecmpd router: stopping");
        router.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
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
