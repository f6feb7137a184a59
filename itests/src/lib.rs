//! `fulmen-itests`: end-to-end tests that drive real `fulmen` processes through the CLI.
//!
//! Owns: the harness the tests in `itests/tests/` use — finding the `fulmen` binary,
//! spawning daemons in temporary directories on free loopback ports, waiting for them to be
//! ready (polling with a deadline, never sleeping for luck), running CLI commands and parsing
//! their JSON, and killing daemons on drop. Must never: reach into a daemon's internals; it
//! only sees what a user sees (processes, files in the data directory, CLI output).
//!
//! The binary is `<target>/debug/fulmen`, found from the test executable's path
//! (`<target>/debug/deps/<test>`), or the path in the `FULMEN_BIN` environment variable.
//! `cargo test --workspace` builds it (fulmen-node has integration tests, so cargo builds
//! its binary); with `cargo test -p fulmen-itests` alone, run `cargo build -p fulmen-node`
//! first.
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod browser;
pub mod net;
pub mod node;

/// How long a daemon may take to become ready or to exit.
pub const DAEMON_TIMEOUT: Duration = Duration::from_secs(30);

/// Path of the `fulmen` binary under test.
pub fn fulmen_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("FULMEN_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe
        .parent()
        .expect("test binary has a parent dir")
        .to_path_buf();
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    let bin = dir.join("fulmen");
    assert!(
        bin.exists(),
        "{} does not exist: run `cargo build -p fulmen-node` (or `cargo test --workspace`), \
         or set FULMEN_BIN",
        bin.display()
    );
    bin
}

/// Polls `f` every 10 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The result of one CLI invocation.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Stdout parsed as JSON (`Value::Null` if empty or not JSON).
    pub stdout: Value,
    /// Stderr parsed as JSON (`Value::Null` if empty or not JSON).
    pub stderr: Value,
    /// Raw stdout.
    pub stdout_raw: String,
    /// Raw stderr.
    pub stderr_raw: String,
}

impl CliOutput {
    fn from_output(out: Output) -> CliOutput {
        let stdout_raw = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr_raw = String::from_utf8_lossy(&out.stderr).into_owned();
        CliOutput {
            code: out.status.code(),
            stdout: serde_json::from_str(&stdout_raw).unwrap_or(Value::Null),
            stderr: serde_json::from_str(&stderr_raw).unwrap_or(Value::Null),
            stdout_raw,
            stderr_raw,
        }
    }

    /// The JSON result, panicking (with the error output) if the command failed.
    pub fn ok(self) -> Value {
        assert_eq!(
            self.code,
            Some(0),
            "command failed: stdout={} stderr={}",
            self.stdout_raw,
            self.stderr_raw
        );
        self.stdout
    }

    /// The JSON error object `{"code", "message", ...}`, panicking if the command succeeded
    /// or did not print a JSON error.
    pub fn err(self) -> Value {
        assert_eq!(
            self.code,
            Some(1),
            "command should fail with exit code 1: stdout={} stderr={}",
            self.stdout_raw,
            self.stderr_raw
        );
        let error = self.stderr.get("error").cloned();
        error.unwrap_or_else(|| panic!("stderr is not a JSON error: {}", self.stderr_raw))
    }
}

/// Runs `fulmen <args>` to completion.
pub fn fulmen(args: &[&str]) -> CliOutput {
    let out = Command::new(fulmen_bin())
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("running fulmen");
    CliOutput::from_output(out)
}

/// Waits until the daemon `child` (process `pid`) wrote `datadir/<info_file>` naming its
/// pid, and its cookie; panics with the daemon's log (from `log`) if it exits first.
pub fn wait_for_endpoint(
    child: &mut Child,
    pid: u32,
    datadir: &Path,
    info_file: &str,
    what: &str,
    log: impl Fn() -> String,
) {
    let info = datadir.join(info_file);
    let cookie = datadir.join(".cookie");
    wait_until(
        &format!("the {what} to write {info_file}"),
        DAEMON_TIMEOUT,
        || {
            if let Some(status) = child.try_wait().ok().flatten() {
                panic!("{what} exited early ({status}): {}", log());
            }
            let text = std::fs::read_to_string(&info).ok()?;
            let json: Value = serde_json::from_str(&text).ok()?;
            // A stale file from a killed daemon names another pid.
            (json["pid"].as_u64() == Some(u64::from(pid)) && cookie.exists()).then_some(())
        },
    );
}

/// A `fulmen chain run` process in its own data directory; killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct ChainDaemon {
    datadir: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    extra_args: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl ChainDaemon {
    /// Starts a chain daemon in a fresh temporary directory on a free port, and waits until
    /// it is ready.
    pub fn start() -> ChainDaemon {
        ChainDaemon::start_with(&[])
    }

    /// Like [`ChainDaemon::start`] with extra `chain run` arguments
    /// (e.g. `["--block-interval", "1"]`).
    pub fn start_with(extra_args: &[&str]) -> ChainDaemon {
        let tmp = tempfile::tempdir().expect("tempdir");
        let datadir = tmp.path().join("chain");
        let mut d = ChainDaemon {
            log: tmp.path().join("chain-0.log"),
            datadir,
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            _tmp: Some(tmp),
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "daemon already running");
        let log = std::fs::File::create(&self.log).expect("daemon log file");
        let child = Command::new(fulmen_bin())
            .args(["chain", "run", "--rpc-listen", "127.0.0.1:0", "--datadir"])
            .arg(&self.datadir)
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawning fulmen chain run");
        let pid = child.id();
        self.child = Some(child);
        let log = self.log_text_fn();
        let child = self.child.as_mut().expect("just spawned");
        wait_for_endpoint(child, pid, &self.datadir, "chain.json", "chain daemon", log);
    }

    /// The data directory.
    pub fn datadir(&self) -> &Path {
        &self.datadir
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_text_fn(&self) -> impl Fn() -> String {
        let log = self.log.clone();
        move || std::fs::read_to_string(&log).unwrap_or_default()
    }

    /// The daemon's RPC address from `chain.json`.
    pub fn rpc_address(&self) -> String {
        let text = std::fs::read_to_string(self.datadir.join("chain.json")).expect("chain.json");
        let json: Value = serde_json::from_str(&text).expect("chain.json is JSON");
        json["rpc_address"]
            .as_str()
            .expect("rpc_address")
            .to_owned()
    }

    /// The cookie from `DIR/.cookie`.
    pub fn cookie(&self) -> String {
        std::fs::read_to_string(self.datadir.join(".cookie"))
            .expect(".cookie")
            .trim()
            .to_owned()
    }

    /// Process id of the running daemon.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    /// Runs `fulmen chain --datadir DIR <args>`.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        let datadir = self.datadir.to_str().expect("utf-8 datadir");
        let mut all = vec!["chain", "--datadir", datadir];
        all.extend_from_slice(args);
        fulmen(&all)
    }

    /// True while the daemon process is running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().map(|s| s.is_none()).unwrap_or(false),
            None => false,
        }
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut child = self.child.take().expect("daemon running");
        let status = wait_until("the chain daemon to exit", DAEMON_TIMEOUT, || {
            child.try_wait().expect("try_wait")
        });
        status.code()
    }

    /// Sends SIGTERM and waits for exit; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM failed");
        self.wait_exit()
    }

    /// Kills the process with SIGKILL (a crash) and reaps it.
    pub fn crash(&mut self) {
        let mut child = self.child.take().expect("daemon running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the daemon again on the same data directory (after a stop or crash).
    pub fn restart(&mut self) {
        let n = std::fs::read_dir(self.log.parent().expect("log dir"))
            .map(|d| d.count())
            .unwrap_or(0);
        self.log = self.log.with_file_name(format!("chain-{n}.log"));
        self.spawn();
    }
}

impl Drop for ChainDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A JSON string field of a CLI answer (panics with the value otherwise: tests only).
pub fn json_str(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

/// A JSON integer field of a CLI answer (panics with the value otherwise: tests only).
pub fn json_u64(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// Bytes of a hex string the daemons printed (panics on bad hex: tests only).
pub fn hex_decode(h: &str) -> Vec<u8> {
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
        .collect()
}
