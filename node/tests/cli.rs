//! Tests of the `fulmen` binary's command-line contract that need no running daemon:
//! help, and errors printed as JSON on stderr with exit code 1.
//! (Having integration tests here also makes `cargo test --workspace` build the binary that
//! the end-to-end tests in `itests/` run.)

use std::process::Command;

use serde_json::Value;

fn fulmen(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fulmen"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_error(stderr: &str) -> Value {
    let v: Value = serde_json::from_str(stderr).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    v["error"].clone()
}

#[test]
fn help_lists_the_chain_commands() {
    let (code, stdout, _) = fulmen(&["chain", "--help"]);
    assert_eq!(code, Some(0));
    for cmd in [
        "run", "info", "mine", "fund", "send", "tx", "utxo", "mempool", "reorg", "stop",
    ] {
        assert!(stdout.contains(cmd), "{cmd} missing from help: {stdout}");
    }
}

#[test]
fn client_without_a_daemon_prints_a_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        fulmen(&["chain", "--datadir", dir.path().to_str().unwrap(), "info"]);
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty());
    let e = json_error(&stderr);
    assert_eq!(e["code"], -1002);
    assert!(e["message"].as_str().unwrap().contains("chain.json"), "{e}");
}

#[test]
fn rpc_flag_needs_a_cookie_file() {
    let (code, _, stderr) = fulmen(&["chain", "--rpc", "127.0.0.1:1", "info"]);
    assert_eq!(code, Some(1));
    let e = json_error(&stderr);
    assert!(
        e["message"].as_str().unwrap().contains("--cookie-file"),
        "{e}"
    );
}

#[test]
fn unreachable_daemon_is_a_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let cookie = dir.path().join("cookie");
    std::fs::write(&cookie, "00").unwrap();
    // Port 1 on loopback: nothing listens there.
    let (code, _, stderr) = fulmen(&[
        "chain",
        "--rpc",
        "http://127.0.0.1:1",
        "--cookie-file",
        cookie.to_str().unwrap(),
        "info",
    ]);
    assert_eq!(code, Some(1));
    let e = json_error(&stderr);
    assert_eq!(e["code"], -1000, "{e}");
}

#[test]
fn daemon_refuses_an_unusable_datadir() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let (code, _, stderr) = fulmen(&[
        "chain",
        "run",
        "--rpc-listen",
        "127.0.0.1:0",
        "--datadir",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    // Logs come first on stderr; the JSON error is the last thing printed.
    let start = stderr.rfind("\n{").map_or(0, |i| i + 1);
    let e = json_error(&stderr[start..]);
    assert!(
        e["message"].as_str().unwrap().contains("data directory"),
        "{e}"
    );
}
