//! Background daemon processes of a test network: starting them detached with their output
//! in a log file, telling whether a recorded pid is still the daemon we started, signalling
//! and waiting for them to exit.
//!
//! Owns: every `fork`/`kill`/`waitpid` of `fulmen net`. Must never: signal a pid without
//! first checking (on Linux, through `/proc/PID/cmdline`) that it is still our daemon — a
//! recorded pid may have been reused by an unrelated process.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Starts `program args…` in the background: its own process group (a ctrl-c in the
/// terminal does not reach it), stdin from /dev/null, stdout and stderr appended to `log`.
/// The child is not waited for here; [`is_alive`] reaps it once it exits. Returns its pid.
pub fn spawn_daemon(program: &Path, args: &[String], log: &Path) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt as _;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening log file {}", log.display()))?;
    let err = file
        .try_clone()
        .with_context(|| format!("opening log file {}", log.display()))?;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {} {}", program.display(), args.join(" ")))?;
    // Dropping a `Child` neither kills nor waits; `is_alive` reaps it later.
    Ok(child.id())
}

fn pid_t(pid: u32) -> Option<libc::pid_t> {
    libc::pid_t::try_from(pid).ok().filter(|p| *p > 0)
}

/// Reaps `pid` if it is an exited child of this process (no-op otherwise).
fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG on a positive pid only reads/writes `status`.
    unsafe {
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
}

/// True if process `pid` exists and is not a zombie (reaping it first if it is an exited
/// child of this process). Says nothing about which program it runs: see [`is_alive`].
pub fn exists(pid: u32) -> bool {
    let Some(p) = pid_t(pid) else { return false };
    reap(p);
    // SAFETY: signal 0 performs only the existence and permission checks.
    let exists = unsafe { libc::kill(p, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) {
        // `pid (comm) S …`: the state follows the last ')'.
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z' | 'X'))
        }
        Err(_) => true,
    }
}

/// True if process `pid` [`exists`] and (where `/proc` shows it) its command line contains
/// `marker` (e.g. the daemon's data directory), so a reused pid is not taken for our
/// daemon. Use it to decide whether to signal a recorded pid, not to watch a process exit:
/// the command line of an exiting process can read short or empty.
pub fn is_alive(pid: u32, marker: &str) -> bool {
    if !exists(pid) {
        return false;
    }
    let cmdline = Path::new("/proc").join(pid.to_string()).join("cmdline");
    match std::fs::read(cmdline) {
        Ok(cmdline) if !cmdline.is_empty() => {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains(marker)
        }
        // Empty or unreadable: not Linux, or a process inside execve (being born) or
        // tearing down its memory (dying). kill(0) said it exists, and it is not a reused
        // pid running another program, so it counts.
        _ => true,
    }
}

/// Sends `signal` to `pid` if it is still our daemon (see [`is_alive`]).
pub fn signal(pid: u32, marker: &str, signal: libc::c_int) -> bool {
    let Some(p) = pid_t(pid) else { return false };
    if !is_alive(pid, marker) {
        return false;
    }
    // SAFETY: plain kill(2) on a positive pid checked above.
    unsafe { libc::kill(p, signal) == 0 }
}

/// Polls until `pid` is gone or `timeout` passes; true if it is gone. Call it only for a
/// pid that [`is_alive`] confirmed as our daemon (it no longer checks the command line,
/// which an exiting process can no longer show).
pub async fn wait_exit(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !exists(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How a process ended under [`terminate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// It was not running.
    NotRunning,
    /// It exited after the polite request (RPC `stop`).
    Stopped,
    /// It exited after SIGTERM.
    Terminated,
    /// It had to be killed (SIGKILL).
    Killed,
    /// It survived even SIGKILL within the timeout.
    StillRunning,
}

fn send(pid: u32, signal: libc::c_int) {
    if let Some(p) = pid_t(pid) {
        // SAFETY: plain kill(2) on a positive pid.
        unsafe {
            libc::kill(p, signal);
        }
    }
}

/// Stops `pid`. With `asked` the caller has confirmed (with [`is_alive`]) that it is our
/// daemon and asked it to stop (e.g. the `stop` RPC): wait `grace` for it to exit. Then, or
/// without `asked` if [`is_alive`] confirms it, send SIGTERM and wait `grace` again, then
/// SIGKILL.
pub async fn terminate(pid: u32, marker: &str, asked: bool, grace: Duration) -> Ended {
    if asked {
        if wait_exit(pid, grace).await {
            return Ended::Stopped;
        }
    } else if !is_alive(pid, marker) {
        return Ended::NotRunning;
    }
    send(pid, libc::SIGTERM);
    if wait_exit(pid, grace).await {
        return Ended::Terminated;
    }
    send(pid, libc::SIGKILL);
    if wait_exit(pid, Duration::from_secs(5)).await {
        return Ended::Killed;
    }
    Ended::StillRunning
}

/// The last `lines` lines of a log file (for error messages), or a note that it is
/// unreadable.
pub fn log_tail(log: &Path, lines: usize) -> String {
    match std::fs::read(log) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all.get(start..).unwrap_or(&[]).join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", log.display()),
    }
}
