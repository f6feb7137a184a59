//! `fulmen net web`: a live page of a test network, served on 127.0.0.1 — the chain, every
//! node and channel with balances and states, payments lighting up hop by hop, per-node
//! detail, and buttons for the common actions (pay an invoice, keysend, open, close, force
//! close, mine, breach on `--dev` nodes).
//!
//! Owns: the `net web` command (foreground server) and `net up --web` (the same server
//! started in the background, found again through `DIR/web.json` and stopped by `net
//! down`). `collect` polls the daemons server side and publishes snapshots; `server` holds
//! the HTTP routes; `assets/` the page (HTML, JS, CSS — no library, nothing fetched at run
//! time); `API.md` the contract between them. Must never: listen beyond loopback, or drive
//! a daemon except through the RPC the CLI uses.

pub mod collect;
pub mod server;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::net::network::Network;
use crate::net::{process, DirArg};

/// The file `net web` writes in the network directory so `net up --web`, `net down` and
/// tests find it.
pub const WEB_FILE: &str = "web.json";
/// The log of a background `net web` (started by `net up --web`).
pub const WEB_LOG: &str = "web.log";

/// `fulmen net web` options.
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Where the network lives.
    #[command(flatten)]
    pub dir: DirArg,
    /// Port on 127.0.0.1 (0: any free port; the URL is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// `DIR/web.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebInfo {
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
    /// The server's process id.
    pub pid: u32,
}

impl WebInfo {
    /// Reads `dir/web.json`.
    pub fn read(dir: &Path) -> anyhow::Result<WebInfo> {
        let path = dir.join(WEB_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is malformed", path.display()))
    }
}

/// The marker [`process::is_alive`] looks for in the command line of the web server of
/// `dir` (distinct from the daemons', whose data directories are inside `dir`).
pub fn marker(dir: &Path) -> String {
    format!("web --dir {}", dir.display())
}

/// `fulmen net web`: serves the page until SIGTERM or ctrl-c. Prints `{"url": …}` once
/// listening.
pub async fn run(args: WebArgs, net_opt: Option<&Path>) -> anyhow::Result<Value> {
    let dir = args.dir.resolve(net_opt)?;
    Network::read(&dir)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let info = WebInfo {
        url: format!("http://{addr}/"),
        pid: std::process::id(),
    };
    crate::rpc_auth::write_private_file(&dir.join(WEB_FILE), &serde_json::to_vec_pretty(&info)?)?;
    crate::cli::print_json(&json!({ "url": info.url, "dir": dir }));

    let term = crate::signals::sigterm();
    let (tx, rx) = watch::channel(Arc::new(String::new()));
    let poller = tokio::spawn(collect::run(dir.clone(), tx));
    let app = server::router(server::WebState {
        dir: dir.clone(),
        snapshot: rx,
    });
    let served = axum::serve(listener, app).with_graceful_shutdown(async move {
        let why = crate::signals::wait_for_signal(term).await;
        tracing::info!("net web stopping on {why}");
    });
    let result = served.await.context("serving the page");
    poller.abort();
    if WebInfo::read(&dir).is_ok_and(|i| i.pid == std::process::id()) {
        let _ = std::fs::remove_file(dir.join(WEB_FILE));
    }
    result?;
    Ok(Value::Null)
}

/// `net up --web`: starts `fulmen net web --dir DIR --port PORT` in the background (log in
/// `DIR/web.log`) and waits until it wrote `web.json`. Returns its URL.
pub async fn start_background(dir: &Path, port: u16) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("finding the fulmen binary")?;
    let args = vec![
        "net".to_string(),
        "web".to_string(),
        "--dir".to_string(),
        dir.display().to_string(),
        "--port".to_string(),
        port.to_string(),
    ];
    let log = dir.join(WEB_LOG);
    let pid = process::spawn_daemon(&exe, &args, &log)?;
    let deadline = Instant::now() + crate::net::READY_TIMEOUT;
    loop {
        if let Ok(info) = WebInfo::read(dir) {
            if info.pid == pid {
                return Ok(info.url);
            }
        }
        if !process::exists(pid) {
            anyhow::bail!(
                "`fulmen net web` exited; end of {}:\n{}",
                log.display(),
                process::log_tail(&log, 20)
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "`fulmen net web` did not start within {}s",
            crate::net::READY_TIMEOUT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops the web server of `dir` if one runs (for `net down`). Returns its pid and how it
/// ended.
pub async fn stop(dir: &Path) -> Option<(u32, process::Ended)> {
    let info = WebInfo::read(dir).ok()?;
    let ended = process::terminate(info.pid, &marker(dir), false, Duration::from_secs(5)).await;
    let _ = std::fs::remove_file(dir.join(WEB_FILE));
    Some((info.pid, ended))
}
