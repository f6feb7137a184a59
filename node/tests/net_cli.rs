//! Tests of the `fulmen` command line and of `fulmen net`: clap parsing (top-level client
//! options do not clash with `fulmen chain`'s), the `network.json` round trip, port picking,
//! process cleanup, node addressing, and one end-to-end run of a real two-node network
//! (`net up`, client commands by node name, kill + `net restart`, `net down`,
//! `net restart all`, `net down --purge`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use fulmen_node::cli::{Cli, Command as Top};
use fulmen_node::net::network::{
    ChainEntry, ChannelEntry, Network, NodeEntry, ProcessInfo, Topology, NETWORK_VERSION,
};
use fulmen_node::net::process::{self, Ended};
use fulmen_node::net::{up, NetCommand};
use fulmen_node::node::client::{ClientCommand, DevCommand, OnOff, TargetArgs};
use fulmen_node::rpc_client::Endpoint;
use serde_json::Value;

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("fulmen").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?} should parse: {e}"))
}

fn parse_err(args: &[&str]) -> clap::Error {
    Cli::try_parse_from(std::iter::once("fulmen").chain(args.iter().copied()))
        .err()
        .unwrap_or_else(|| panic!("{args:?} should not parse"))
}

#[test]
fn cli_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[test]
fn client_commands_are_top_level_with_target_options() {
    let cli = parse(&[
        "--net",
        "/n",
        "--node",
        "alice",
        "invoice",
        "5000",
        "--description",
        "coffee",
        "--expiry",
        "60",
    ]);
    assert_eq!(cli.target.node.as_deref(), Some("alice"));
    assert_eq!(cli.target.net.as_deref(), Some(Path::new("/n")));
    match cli.command {
        Top::Client(ClientCommand::Invoice {
            msat,
            description,
            expiry,
        }) => {
            assert_eq!(msat, 5000);
            assert_eq!(description, "coffee");
            assert_eq!(expiry, Some(60));
        }
        other => panic!("unexpected {other:?}"),
    }
    let cli = parse(&["open", "bob", "100000", "--push-msat", "7"]);
    assert!(matches!(
        cli.command,
        Top::Client(ClientCommand::Open {
            sats: 100000,
            push_msat: 7,
            ..
        })
    ));
    let cli = parse(&["--datadir", "/d", "pay", "lnbcrt1x", "--timeout", "5"]);
    assert_eq!(cli.target.datadir.as_deref(), Some(Path::new("/d")));
    assert!(matches!(
        cli.command,
        Top::Client(ClientCommand::Pay {
            timeout: Some(5),
            ..
        })
    ));
    for cmd in [
        "info",
        "newaddress",
        "balance",
        "peers",
        "channels",
        "payments",
        "invoices",
        "stop",
    ] {
        assert!(matches!(parse(&[cmd]).command, Top::Client(_)), "{cmd}");
    }
    parse(&["connect", "02ab@127.0.0.1:9735"]);
    parse(&["disconnect", "02ab"]);
    parse(&["close", "00"]);
    assert!(matches!(
        parse(&["close", "00", "--force"]).command,
        Top::Client(ClientCommand::Close { force: true, .. })
    ));
    assert!(matches!(
        parse(&["balance", "--detail"]).command,
        Top::Client(ClientCommand::Balance { detail: true })
    ));
    assert!(matches!(
        parse(&["balance"]).command,
        Top::Client(ClientCommand::Balance { detail: false })
    ));
    assert!(matches!(
        parse(&["dev", "broadcast-revoked", "00", "--commitment", "3"]).command,
        Top::Client(ClientCommand::Dev(DevCommand::BroadcastRevoked {
            commitment: Some(3),
            ..
        }))
    ));
    assert!(matches!(
        parse(&["dev", "hold-htlcs", "off"]).command,
        Top::Client(ClientCommand::Dev(DevCommand::HoldHtlcs {
            state: OnOff::Off
        }))
    ));
    parse_err(&["dev", "hold-htlcs", "maybe"]);
}

#[test]
fn multihop_commands_parse() {
    match parse(&[
        "pay",
        "lnbcrt1x",
        "--max-fee-msat",
        "5000",
        "--timeout",
        "7",
    ])
    .command
    {
        Top::Client(ClientCommand::Pay {
            invoice,
            timeout,
            max_fee_msat,
        }) => {
            assert_eq!(invoice, "lnbcrt1x");
            assert_eq!(timeout, Some(7));
            assert_eq!(max_fee_msat, Some(5000));
        }
        other => panic!("unexpected {other:?}"),
    }
    match parse(&[
        "--node",
        "alice",
        "keysend",
        "erin",
        "30000",
        "--timeout",
        "5",
    ])
    .command
    {
        Top::Client(ClientCommand::Keysend {
            node_id,
            msat,
            max_fee_msat,
            timeout,
        }) => {
            assert_eq!(node_id, "erin");
            assert_eq!(msat, 30_000);
            assert_eq!(max_fee_msat, None);
            assert_eq!(timeout, Some(5));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        parse(&["keysend", "02ab", "1", "--max-fee-msat", "9"]).command,
        Top::Client(ClientCommand::Keysend {
            max_fee_msat: Some(9),
            ..
        })
    ));
    match parse(&[
        "setfees",
        "00ff",
        "--base-msat",
        "2000",
        "--ppm",
        "500",
        "--cltv-delta",
        "80",
    ])
    .command
    {
        Top::Client(ClientCommand::Setfees {
            channel_id,
            base_msat,
            ppm,
            cltv_delta,
        }) => {
            assert_eq!(channel_id, "00ff");
            assert_eq!((base_msat, ppm, cltv_delta), (2000, 500, Some(80)));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        parse(&["setfees", "00", "--base-msat", "0", "--ppm", "1"]).command,
        Top::Client(ClientCommand::Setfees {
            cltv_delta: None,
            ..
        })
    ));
    // Both fee parts are required.
    parse_err(&["setfees", "00", "--ppm", "1"]);
    parse_err(&["setfees", "00", "--base-msat", "1"]);
    assert!(matches!(
        parse(&["route", "bob", "20000000"]).command,
        Top::Client(ClientCommand::Route {
            msat: 20_000_000,
            ..
        })
    ));
    parse_err(&["route", "bob"]);
    assert!(matches!(
        parse(&["graph"]).command,
        Top::Client(ClientCommand::Graph { json: false })
    ));
    assert!(matches!(
        parse(&["graph", "--json"]).command,
        Top::Client(ClientCommand::Graph { json: true })
    ));
    assert!(matches!(
        parse(&["forwards"]).command,
        Top::Client(ClientCommand::Forwards)
    ));
}

#[test]
fn target_options_conflict_sensibly() {
    parse_err(&["--node", "a", "--datadir", "/d", "info"]);
    parse_err(&["--rpc", "127.0.0.1:1", "info"]);
    parse_err(&["--cookie-file", "/c", "info"]);
    parse_err(&[
        "--datadir",
        "/d",
        "--rpc",
        "x",
        "--cookie-file",
        "/c",
        "info",
    ]);
    let cli = parse(&["--rpc", "127.0.0.1:1", "--cookie-file", "/c", "info"]);
    assert!(cli.target.addresses_a_node());
}

#[test]
fn chain_options_do_not_leak_into_the_node_target() {
    // `fulmen chain` has global --datadir/--rpc/--cookie-file; clap propagates global values
    // upwards, so the top-level target options must have their own ids.
    let cli = parse(&["chain", "--datadir", "/c", "info"]);
    assert!(!cli.target.addresses_a_node());
    assert!(matches!(cli.command, Top::Chain(_)));
    let cli = parse(&[
        "chain",
        "--rpc",
        "127.0.0.1:1",
        "--cookie-file",
        "/c",
        "mine",
        "1",
    ]);
    assert!(!cli.target.addresses_a_node());
    let cli = parse(&[
        "chain",
        "run",
        "--datadir",
        "/c",
        "--rpc-listen",
        "127.0.0.1:0",
    ]);
    assert!(!cli.target.addresses_a_node());
}

#[test]
fn node_run_still_parses() {
    let cli = parse(&[
        "node",
        "run",
        "--datadir",
        "/n/alice",
        "--chain",
        "/n/chain",
        "--listen",
        "127.0.0.1:1",
        "--rpc-listen",
        "127.0.0.1:2",
        "--alias",
        "alice",
        "--dev",
    ]);
    assert!(matches!(cli.command, Top::Node(_)));
    assert!(!cli.target.addresses_a_node());
}

#[test]
fn net_and_bench_commands_parse() {
    let cli = parse(&[
        "net",
        "up",
        "--dir",
        "/n",
        "--nodes",
        "4",
        "--topology",
        "star",
        "--channel-sats",
        "200000",
        "--push-percent",
        "10",
        "--db-sync",
        "normal",
    ]);
    let Top::Net(net) = cli.command else {
        panic!("not net")
    };
    let NetCommand::Up(a) = net.command else {
        panic!("not up")
    };
    assert_eq!(a.nodes, 4);
    assert_eq!(a.topology, Topology::Star);
    assert_eq!(a.channel_sats, 200_000);
    assert_eq!(a.push_percent, 10);
    assert_eq!(a.db_sync, fulmen_node::node::store::DbSync::Normal);
    assert_eq!(a.dir.dir.as_deref(), Some(Path::new("/n")));
    parse_err(&["net", "up", "--push-percent", "101"]);
    parse_err(&["net", "up", "--topology", "mesh"]);
    let cli = parse(&["net", "up", "--topology", "random", "--seed", "7"]);
    let Top::Net(net) = cli.command else {
        panic!("not net")
    };
    let NetCommand::Up(a) = net.command else {
        panic!("not up")
    };
    assert_eq!(a.topology, Topology::Random);
    assert_eq!(a.seed, Some(7));
    parse(&["net", "status"]);
    parse(&["net", "down", "--purge", "--dir", "/n"]);
    parse(&["net", "restart", "bob", "--dir", "/n"]);
    parse(&["net", "mine", "6"]);
    parse(&["net", "demo", "--payments", "10", "--json"]);
    parse(&["bench", "pay", "--payments", "10", "--concurrency", "4"]);
    parse(&[
        "bench",
        "pay",
        "--hops",
        "3",
        "--channel-sats",
        "5000000",
        "--amount-msat",
        "2000000",
    ]);
    // `--net` (or FULMEN_NET) also names the directory of `net` commands.
    let cli = parse(&["--net", "/n", "net", "status"]);
    assert_eq!(cli.target.net.as_deref(), Some(Path::new("/n")));
}

#[test]
fn push_is_a_percentage_of_capacity_in_msat() {
    let opts = up::UpOptions {
        dir: PathBuf::from("/n"),
        nodes: 2,
        topology: Topology::Line,
        channel_sats: 1_000_000,
        push_percent: 50,
        db_sync: fulmen_node::node::store::DbSync::Full,
        seed: None,
        tower: false,
    };
    assert_eq!(opts.push_msat(), 500_000_000);
}

fn sample_network(dir: &Path) -> Network {
    let process = |name: &str, pid: u32| ProcessInfo {
        datadir: dir.join(name),
        rpc: "127.0.0.1:1".into(),
        pid,
        log: dir.join(name).join("x.log"),
        args: vec!["node".into(), "run".into()],
    };
    Network {
        version: NETWORK_VERSION,
        dir: dir.to_path_buf(),
        topology: Topology::Ring,
        seed: None,
        chain: ChainEntry {
            process: process("chain", u32::MAX - 1),
        },
        nodes: vec![NodeEntry {
            name: "alice".into(),
            node_id: "02".repeat(33),
            listen: "127.0.0.1:2".into(),
            funded_sat: 5,
            process: process("alice", u32::MAX - 2),
        }],
        channels: vec![ChannelEntry {
            from: "alice".into(),
            to: "bob".into(),
            channel_id: "00".repeat(32),
            capacity_sat: 1,
            push_msat: 2,
            funding_txid: "11".repeat(32),
        }],
        ready: true,
    }
}

#[test]
fn network_json_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let net = sample_network(tmp.path());
    net.write().unwrap();
    let back = Network::read(tmp.path()).unwrap();
    assert_eq!(back, net);
    let raw: Value =
        serde_json::from_str(&std::fs::read_to_string(Network::path(tmp.path())).unwrap()).unwrap();
    // Flattened process fields, as documented.
    assert_eq!(raw["nodes"][0]["name"], "alice");
    assert!(raw["nodes"][0]["pid"].is_u64());
    assert!(raw["nodes"][0]["datadir"].is_string());
    assert_eq!(raw["topology"], "ring");
    assert_eq!(
        net.node("alice").unwrap().uri(),
        format!("{}@127.0.0.1:2", "02".repeat(33))
    );

    let mut future = raw.clone();
    future["version"] = Value::from(99);
    std::fs::write(Network::path(tmp.path()), future.to_string()).unwrap();
    let err = Network::read(tmp.path()).unwrap_err();
    assert!(format!("{err:#}").contains("version 99"));
}

#[test]
fn net_up_refuses_a_used_directory() {
    let tmp = tempfile::tempdir().unwrap();
    // A stopped network (pids that are not our daemons).
    sample_network(tmp.path()).write().unwrap();
    let err = up::check_dir_free(tmp.path()).unwrap_err();
    assert!(format!("{err:#}").contains("--purge"), "{err:#}");
    // Some other non-empty directory.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("x"), "x").unwrap();
    assert!(up::check_dir_free(other.path()).is_err());
    // Empty and missing directories are fine.
    let empty = tempfile::tempdir().unwrap();
    up::check_dir_free(empty.path()).unwrap();
    up::check_dir_free(&empty.path().join("new")).unwrap();
}

#[test]
fn node_name_resolves_through_network_json_or_convention() {
    let tmp = tempfile::tempdir().unwrap();
    let target = TargetArgs {
        net: Some(tmp.path().to_path_buf()),
        node: Some("alice".into()),
        ..TargetArgs::default()
    };
    // No network.json: DIR/NAME by convention.
    let (endpoint, net) = target.resolve().unwrap();
    assert!(net.is_none());
    assert!(matches!(endpoint, Endpoint::Datadir { dir, .. } if dir == tmp.path().join("alice")));
    // With network.json: the recorded datadir; unknown names are an error.
    let mut net = sample_network(tmp.path());
    net.nodes[0].process.datadir = PathBuf::from("/elsewhere/alice");
    net.write().unwrap();
    let (endpoint, net) = target.resolve().unwrap();
    assert!(net.is_some());
    assert!(
        matches!(endpoint, Endpoint::Datadir { dir, .. } if dir == Path::new("/elsewhere/alice"))
    );
    let unknown = TargetArgs {
        node: Some("zed".into()),
        ..target.clone()
    };
    assert!(unknown.resolve().is_err());
    // --rpc without a scheme gets http://.
    let rpc = TargetArgs {
        rpc: Some("127.0.0.1:5".into()),
        cookie_file: Some("/c".into()),
        ..TargetArgs::default()
    };
    let (endpoint, _) = rpc.resolve().unwrap();
    assert!(matches!(endpoint, Endpoint::Url { url, .. } if url == "http://127.0.0.1:5"));
}

/// Kills a test child on drop (if a test fails half-way).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        process::signal(self.0, "", libc::SIGKILL);
    }
}

#[tokio::test]
async fn terminate_escalates_from_sigterm_to_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("p.log");
    // A polite process: exits on SIGTERM.
    let args = vec![
        "-c".into(),
        "while :; do sleep 0.05; done # polite-marker".into(),
    ];
    let pid = process::spawn_daemon(Path::new("/bin/sh"), &args, &log).unwrap();
    let _guard = KillOnDrop(pid);
    assert!(process::is_alive(pid, "polite-marker"));
    // Until execve has set up its arguments, a newborn child's command line is empty.
    let cmdline = PathBuf::from(format!("/proc/{pid}/cmdline"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read(&cmdline).is_ok_and(|c| c.is_empty()) {
        assert!(std::time::Instant::now() < deadline, "no command line");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        !process::is_alive(pid, "some-other-daemon"),
        "a pid whose command line lacks the marker is not ours"
    );
    let ended = process::terminate(pid, "polite-marker", false, Duration::from_secs(5)).await;
    assert_eq!(ended, Ended::Terminated);
    assert!(!process::is_alive(pid, "polite-marker"));

    // A stubborn one: ignores SIGTERM (once its trap is set), so it is killed.
    let ready = tmp.path().join("trap-set");
    let script = format!(
        "trap '' TERM; touch '{}'; while :; do sleep 0.05; done # stubborn-marker",
        ready.display()
    );
    let args = vec!["-c".into(), script];
    let pid = process::spawn_daemon(Path::new("/bin/sh"), &args, &log).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the script never set its trap"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _guard2 = KillOnDrop(pid);
    assert!(process::is_alive(pid, "stubborn-marker"));
    let ended = process::terminate(pid, "stubborn-marker", false, Duration::from_millis(300)).await;
    assert_eq!(ended, Ended::Killed);
    assert!(!process::is_alive(pid, "stubborn-marker"));
    assert_eq!(
        process::terminate(pid, "stubborn-marker", false, Duration::from_millis(10)).await,
        Ended::NotRunning
    );
}

// ---- end to end, with the real binary ----

fn fulmen(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fulmen"))
        .args(args)
        .env_remove("FULMEN_NET")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

fn ok(args: &[&str]) -> Value {
    let (code, json, stderr) = fulmen(args);
    assert_eq!(code, 0, "fulmen {args:?} failed: {stderr}");
    json
}

/// Runs `net down --purge` on drop, so a failing test leaves no daemons behind.
struct NetGuard(PathBuf);

impl Drop for NetGuard {
    fn drop(&mut self) {
        if Network::path(&self.0).exists() {
            let dir = self.0.display().to_string();
            let _ = fulmen(&["net", "down", "--dir", &dir, "--purge"]);
        }
    }
}

#[test]
fn a_real_two_node_network_up_pay_restart_down() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let d = dir.display().to_string();
    let _guard = NetGuard(dir.clone());

    let up = ok(&[
        "net",
        "up",
        "--dir",
        &d,
        "--nodes",
        "2",
        "--channel-sats",
        "200000",
    ]);
    assert_eq!(up["nodes"].as_array().unwrap().len(), 2);
    assert_eq!(up["channels"].as_array().unwrap().len(), 1);
    let net = Network::read(&dir).unwrap();
    assert!(net.ready);
    assert_eq!(net.channels[0].push_msat, 100_000_000);

    // A second `net up` on the running network is refused.
    let (code, _, stderr) = fulmen(&["net", "up", "--dir", &d, "--nodes", "2"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("net down"), "{stderr}");

    // Client commands by node name.
    let info = ok(&["--net", &d, "--node", "alice", "info"]);
    assert_eq!(info["num_active_channels"], 1);
    let inv = ok(&["--net", &d, "--node", "bob", "invoice", "5000"]);
    let bolt11 = inv["bolt11"].as_str().unwrap().to_owned();
    let paid = ok(&["--net", &d, "--node", "alice", "pay", &bolt11]);
    assert_eq!(paid["status"], "succeeded");
    // Paying it again is an error (JSON on stderr, exit 1).
    let (code, _, stderr) = fulmen(&["--net", &d, "--node", "alice", "pay", &bolt11]);
    assert_eq!(code, 1);
    let err: Value = serde_json::from_str(&stderr).unwrap();
    assert!(err["error"]["message"].is_string());

    // Kill bob hard, restart him with the same arguments and ports.
    let bob = net.node("bob").unwrap().clone();
    process::signal(
        bob.process.pid,
        &bob.process.datadir.display().to_string(),
        libc::SIGKILL,
    );
    let status = ok(&["net", "status", "--dir", &d]);
    let nodes = status["nodes"].as_array().unwrap();
    let alice_status = nodes.iter().find(|n| n["name"] == "alice").unwrap();
    assert_eq!(alice_status["alive"], true);
    assert_eq!(
        alice_status["info"]["node_id"],
        net.nodes[0].node_id.as_str()
    );
    assert_eq!(alice_status["channels"], 1);
    let bob_status = nodes.iter().find(|n| n["name"] == "bob").unwrap();
    // The kill may not have been reaped by the status process yet; either way it is down
    // or going down: the restart below must wait for that.
    let _ = bob_status["alive"].as_bool();
    let restarted = {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (code, json, stderr) = fulmen(&["net", "restart", "bob", "--dir", &d]);
            if code == 0 {
                break json;
            }
            assert!(
                stderr.contains("is running") && std::time::Instant::now() < deadline,
                "restart failed: {stderr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(restarted["info"]["listen"], bob.listen.as_str());
    assert_eq!(restarted["rpc"], bob.process.rpc.as_str());
    let mined = ok(&["net", "mine", "2", "--dir", &d]);
    assert_eq!(mined["mined"], 2);
    let info = ok(&["--net", &d, "--node", "bob", "info"]);
    assert_eq!(info["block_height"], mined["height"]);

    // Down without purge, then everything back up with `restart all`: channels resume.
    let down = ok(&["net", "down", "--dir", &d]);
    assert_eq!(down["purged"], false);
    assert!(dir.join("network.json").exists());
    let again = ok(&["net", "restart", "all", "--dir", &d]);
    assert_eq!(again["started"].as_array().unwrap().len(), 3);
    // The channel is usable once the peers have reconnected and reestablished it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while ok(&["--net", &d, "--node", "alice", "info"])["num_active_channels"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "channel not active again"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let inv = ok(&["--net", &d, "--node", "bob", "invoice", "7000"]);
    let bolt11 = inv["bolt11"].as_str().unwrap().to_owned();
    let paid = ok(&[
        "--net",
        &d,
        "--node",
        "alice",
        "pay",
        &bolt11,
        "--timeout",
        "30",
    ]);
    assert_eq!(paid["status"], "succeeded");

    // Down with purge: every daemon stopped, the directory gone.
    let down = ok(&["net", "down", "--dir", &d, "--purge"]);
    assert_eq!(down["purged"], true);
    for s in down["stopped"].as_array().unwrap() {
        assert_ne!(s["result"], "still_running", "{s}");
    }
    assert!(!dir.exists());
}
