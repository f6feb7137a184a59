//! Node daemons for end-to-end tests: `fulmen node run` processes on free loopback ports,
//! driven through the CLI (`fulmen --datadir DIR <command>`).
//!
//! Owns: spawning, waiting for readiness (`node.json` naming the new pid), crash (SIGKILL)
//! and restart on the same ports, and small helpers over the CLI's JSON. Must never: talk
//! to a daemon other than through the CLI.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{fulmen, fulmen_bin, wait_for_endpoint, wait_until, CliOutput, DAEMON_TIMEOUT};

/// A `fulmen node run` process; killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct NodeDaemon {
    name: String,
    datadir: PathBuf,
    chain_datadir: PathBuf,
    port: u16,
    child: Option<Child>,
    logs: usize,
    extra_args: Vec<String>,
}

impl NodeDaemon {
    /// Starts node `name` in `root/name`, following the chain daemon in `chain_datadir`.
    pub fn start(root: &Path, name: &str, chain_datadir: &Path) -> NodeDaemon {
        NodeDaemon::start_with(root, name, chain_datadir, &[])
    }

    /// Like [`NodeDaemon::start`] with extra `node run` arguments (e.g. `["--dev"]`), kept
    /// for restarts.
    pub fn start_with(
        root: &Path,
        name: &str,
        chain_datadir: &Path,
        extra_args: &[&str],
    ) -> NodeDaemon {
        let mut n = NodeDaemon {
            name: name.to_owned(),
            datadir: root.join(name),
            chain_datadir: chain_datadir.to_path_buf(),
            // The first start binds any free port; restarts reuse the one it got.
            port: 0,
            child: None,
            logs: 0,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        n.spawn();
        n
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.datadir
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("{}-{i}.log", self.name))
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "node already running");
        std::fs::create_dir_all(&self.datadir).expect("node datadir");
        let log = std::fs::File::create(self.log_path(self.logs)).expect("node log");
        self.logs += 1;
        let child = Command::new(fulmen_bin())
            .args([
                "node",
                "run",
                "--rpc-listen",
                "127.0.0.1:0",
                "--alias",
                &self.name,
            ])
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--datadir")
            .arg(&self.datadir)
            .arg("--chain")
            .arg(&self.chain_datadir)
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawning fulmen node run");
        let pid = child.id();
        self.child = Some(child);
        let logs: Vec<PathBuf> = (0..self.logs).map(|i| self.log_path(i)).collect();
        let log = move || {
            logs.iter()
                .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n--- restart ---\n")
        };
        let what = format!("node {}", self.name);
        let child = self.child.as_mut().expect("just spawned");
        wait_for_endpoint(child, pid, &self.datadir, "node.json", &what, log);
        if self.port == 0 {
            let listen = self.info()["listen"]
                .as_str()
                .expect("the node listens for peers")
                .to_owned();
            self.port = listen
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("a port in the listen address");
        }
    }

    /// True while this harness has the daemon running (not crashed or stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The data directory.
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// Every log of this node so far (all runs).
    pub fn log_text(&self) -> String {
        (0..self.logs)
            .map(|i| std::fs::read_to_string(self.log_path(i)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    /// Runs `fulmen --datadir DIR <args>`.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        let dir = self.datadir.to_str().expect("utf-8 datadir");
        let mut all = vec!["--datadir", dir];
        all.extend_from_slice(args);
        fulmen(&all)
    }

    /// Runs a command that must succeed and returns its JSON.
    pub fn ok(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        if out.code != Some(0) {
            panic!(
                "{} {:?} failed: {} {}\n--- log ---\n{}",
                self.name,
                args,
                out.stdout_raw,
                out.stderr_raw,
                self.log_text()
            );
        }
        out.stdout
    }

    /// `getinfo`.
    pub fn info(&self) -> Value {
        self.ok(&["info"])
    }

    /// Node id, hex.
    pub fn node_id(&self) -> String {
        self.info()["node_id"].as_str().expect("node_id").to_owned()
    }

    /// `node_id@127.0.0.1:port`.
    pub fn uri(&self) -> String {
        format!("{}@127.0.0.1:{}", self.node_id(), self.port)
    }

    /// Waits until the node processed block `height`.
    pub fn wait_height(&self, height: u64) {
        wait_until(
            &format!("{} to reach height {height}", self.name),
            DAEMON_TIMEOUT,
            || {
                let h = self.cli(&["info"]).stdout["block_height"].as_u64()?;
                (h >= height).then_some(())
            },
        );
    }

    /// The node's channels.
    pub fn channels(&self) -> Vec<Value> {
        self.ok(&["channels"])["channels"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until channel `id` is in `state`.
    pub fn wait_channel_state(&self, id: &str, state: &str) {
        wait_until(
            &format!("{}: channel {id} to be {state}", self.name),
            DAEMON_TIMEOUT,
            || {
                let out = self.cli(&["channels"]);
                let chans = out.stdout["channels"].as_array()?.clone();
                chans
                    .iter()
                    .any(|c| c["channel_id"] == id && c["state"] == state)
                    .then_some(())
            },
        );
    }

    /// Total on-chain balance, sat.
    pub fn onchain_sat(&self) -> u64 {
        self.ok(&["balance"])["onchain"]["total_sat"]
            .as_u64()
            .expect("onchain total")
    }

    /// Kills the process with SIGKILL (a crash) and reaps it.
    pub fn crash(&mut self) {
        let mut child = self.child.take().expect("node running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the node again on the same data directory and ports.
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// Asks the node to stop and waits for the process to exit.
    pub fn stop(&mut self) -> Option<i32> {
        let _ = self.cli(&["stop"]);
        let mut child = self.child.take().expect("node running");
        let status = wait_until("the node daemon to exit", DAEMON_TIMEOUT, || {
            child.try_wait().expect("try_wait")
        });
        status.code()
    }
}

impl Drop for NodeDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How long a payment stream may take.
pub const PAY_TIMEOUT: Duration = Duration::from_secs(60);
