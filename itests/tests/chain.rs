//! End-to-end tests of the chain daemon (`fulmen chain run`) driven through the CLI and raw
//! HTTP: the issue's "done when" flow, refusals that name input and rule while the daemon
//! keeps running, restart and crash persistence, cookie auth, and the waitforblock long poll.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bitcoin::consensus::encode;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    absolute::LockTime, transaction::Version, Address, Amount, CompressedPublicKey, Network,
    OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};
use fulmen_itests::{fulmen, fulmen_bin, ChainDaemon};
use serde_json::Value;

/// A deterministic P2WPKH key owned by the test.
struct Key {
    sk: SecretKey,
    pk: CompressedPublicKey,
}

impl Key {
    fn new(seed: u8) -> Key {
        let sk = SecretKey::from_slice(&[seed; 32]).unwrap();
        let pk = CompressedPublicKey(sk.public_key(&Secp256k1::new()));
        Key { sk, pk }
    }

    fn address(&self) -> Address {
        Address::p2wpkh(&self.pk, Network::Regtest)
    }

    fn script(&self) -> ScriptBuf {
        self.address().script_pubkey()
    }

    /// A signed one-input transaction spending `prev` (worth `value` sats, paying this key).
    fn spend(&self, prev: OutPoint, value: u64, outputs: &[(ScriptBuf, u64)]) -> Transaction {
        let mut tx = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: prev,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            }],
            output: outputs
                .iter()
                .map(|(script, sats)| TxOut {
                    value: Amount::from_sat(*sats),
                    script_pubkey: script.clone(),
                })
                .collect(),
        };
        let sighash = SighashCache::new(&tx)
            .p2wpkh_signature_hash(
                0,
                &self.script(),
                Amount::from_sat(value),
                EcdsaSighashType::All,
            )
            .unwrap();
        let sig = Secp256k1::new().sign_ecdsa(&Message::from(sighash), &self.sk);
        let sig = bitcoin::ecdsa::Signature {
            signature: sig,
            sighash_type: EcdsaSighashType::All,
        };
        tx.input[0].witness = Witness::p2wpkh(&sig, &self.pk.0);
        tx
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Mines 101 blocks and funds `key` with `sats`, confirmed once; returns the outpoint.
fn funded_outpoint(chain: &ChainDaemon, key: &Key, sats: u64) -> OutPoint {
    chain.cli(&["mine", "101"]).ok();
    let address = key.address().to_string();
    let fund = chain.cli(&["fund", &address, &sats.to_string()]).ok();
    let txid = s(&fund["txid"]).to_owned();
    chain.cli(&["mine", "1"]).ok();
    let tx = chain.cli(&["tx", &txid]).ok();
    let tx: Transaction = encode::deserialize_hex(s(&tx["hex"])).unwrap();
    let vout = tx
        .output
        .iter()
        .position(|o| o.script_pubkey == key.script())
        .expect("fund pays the key");
    OutPoint::new(tx.compute_txid(), vout as u32)
}

#[test]
fn done_when_mine_fund_mine_utxo_confirmed_once() {
    let chain = ChainDaemon::start();
    let mined = chain.cli(&["mine", "101"]).ok();
    assert_eq!(mined["height"], 101);
    assert_eq!(mined["blocks"].as_array().unwrap().len(), 101);

    let address = Key::new(7).address().to_string();
    assert!(address.starts_with("bcrt1"));
    let fund = chain.cli(&["fund", &address, "100000"]).ok();
    let txid = s(&fund["txid"]).to_owned();
    let mempool = chain.cli(&["mempool"]).ok();
    assert_eq!(mempool["size"], 1);
    assert_eq!(mempool["txs"][0]["txid"], txid.as_str());

    chain.cli(&["mine", "1"]).ok();
    let tx = chain.cli(&["tx", &txid]).ok();
    assert_eq!(tx["confirmations"], 1);
    assert_eq!(tx["block_height"], 102);

    let ours = (0..2)
        .map(|vout| chain.cli(&["utxo", &format!("{txid}:{vout}")]).ok())
        .find(|u| u["address"] == address.as_str())
        .expect("an output pays the address");
    assert_eq!(ours["value"], 100000);
    assert_eq!(ours["confirmations"], 1);
    assert_eq!(ours["height"], 102);
    assert_eq!(ours["coinbase"], false);

    let info = chain.cli(&["info"]).ok();
    assert_eq!(info["height"], 102);
    assert_eq!(info["mempool_size"], 0);
}

#[test]
fn refusals_name_input_and_rule_and_daemon_keeps_running() {
    let mut chain = ChainDaemon::start();
    let key = Key::new(9);
    let prev = funded_outpoint(&chain, &key, 100_000);
    let other = Key::new(10).script();

    // Garbage hex.
    let e = chain.cli(&["send", "zz-not-hex"]).err();
    assert_eq!(e["code"], -22);
    assert!(s(&e["message"]).contains("hex"), "{e}");
    // Valid hex, not a transaction.
    let e = chain.cli(&["send", "0100"]).err();
    assert_eq!(e["code"], -22);
    assert!(s(&e["message"]).contains("does not decode"), "{e}");

    // A bad witness signature: flip a byte inside the DER signature of a valid spend.
    let good = key.spend(prev, 100_000, &[(other.clone(), 90_000)]);
    let mut bad = good.clone();
    let mut items: Vec<Vec<u8>> = bad.input[0].witness.to_vec();
    let at = items[0].len() - 3;
    items[0][at] ^= 0x01;
    bad.input[0].witness = Witness::from_slice(&items);
    let e = chain.cli(&["send", &encode::serialize_hex(&bad)]).err();
    assert_eq!(e["code"], -26, "{e}");
    assert_eq!(e["data"]["rule"], "script", "{e}");
    assert_eq!(e["data"]["input"], 0, "{e}");
    let msg = s(&e["message"]);
    assert!(msg.contains("input 0") && msg.contains("script"), "{msg}");

    // The good one is accepted.
    let sent = chain.cli(&["send", &encode::serialize_hex(&good)]).ok();
    assert_eq!(sent["txid"], good.compute_txid().to_string());

    // A double spend of the same outpoint while the first is in the mempool.
    let conflict = key.spend(prev, 100_000, &[(other.clone(), 80_000)]);
    let e = chain
        .cli(&["send", &encode::serialize_hex(&conflict)])
        .err();
    assert_eq!(e["code"], -26);
    assert_eq!(e["data"]["rule"], "mempool_conflict", "{e}");
    assert!(s(&e["message"]).contains("input 0"), "{e}");

    // ... and after the first is confirmed.
    chain.cli(&["mine", "1"]).ok();
    let e = chain
        .cli(&["send", &encode::serialize_hex(&conflict)])
        .err();
    assert_eq!(e["code"], -26);
    let rule = s(&e["data"]["rule"]);
    assert!(rule == "already_spent" || rule == "missing_or_spent", "{e}");
    assert!(s(&e["message"]).contains("input 0"), "{e}");

    // Who spent it.
    let spender = chain.cli(&["spender", &prev.to_string()]).ok();
    assert_eq!(spender["txid"], good.compute_txid().to_string());
    assert_eq!(spender["input_index"], 0);
    assert_eq!(spender["height"], 103);

    // A bad outpoint and an unknown transaction are clear errors too.
    let e = chain.cli(&["utxo", "nonsense"]).err();
    assert_eq!(e["code"], -8);
    assert!(s(&e["message"]).contains("outpoint"), "{e}");
    let e = chain.cli(&["tx", &"00".repeat(32)]).err();
    assert_eq!(e["code"], -5);

    assert!(chain.is_running(), "daemon died: {}", chain.log_text());
    assert_eq!(chain.cli(&["info"]).ok()["height"], 103);
}

#[test]
fn stop_and_restart_keep_height_utxos_and_mempool() {
    let mut chain = ChainDaemon::start();
    let key = Key::new(11);
    let prev = funded_outpoint(&chain, &key, 50_000);
    // One transaction left in the mempool, spending a mempool parent (a chain of two).
    let parent = chain
        .cli(&["fund", &Key::new(12).address().to_string(), "40000"])
        .ok();
    let child = key.spend(prev, 50_000, &[(Key::new(13).script(), 45_000)]);
    chain.cli(&["send", &encode::serialize_hex(&child)]).ok();
    let before = chain.cli(&["info"]).ok();
    assert_eq!(before["mempool_size"], 2);
    let old_cookie = chain.cookie();

    // Clean stop through the CLI: exit 0, cookie and chain.json removed.
    let stopped = chain.cli(&["stop"]).ok();
    assert!(s(&stopped).contains("stopping"));
    assert_eq!(chain.wait_exit(), Some(0), "{}", chain.log_text());
    assert!(!chain.datadir().join(".cookie").exists());
    assert!(!chain.datadir().join("chain.json").exists());
    let e = chain.cli(&["info"]).err();
    assert!(s(&e["message"]).contains("chain.json"), "{e}");

    chain.restart();
    assert_ne!(chain.cookie(), old_cookie, "a restart makes a new cookie");
    let after = chain.cli(&["info"]).ok();
    assert_eq!(after["height"], before["height"]);
    assert_eq!(after["tip"], before["tip"]);
    assert_eq!(after["faucet_address"], before["faucet_address"]);
    assert_eq!(after["mempool_size"], 2);
    let utxo = chain.cli(&["utxo", &prev.to_string()]).ok();
    assert_eq!(utxo["value"], 50_000);
    assert_eq!(utxo["confirmations"], 1);
    let parent_tx = chain.cli(&["tx", s(&parent["txid"])]).ok();
    assert_eq!(parent_tx["confirmations"], 0);

    // SIGTERM is a clean stop too; then a crash (SIGKILL) after mining loses nothing either.
    assert_eq!(chain.terminate(), Some(0), "{}", chain.log_text());
    assert!(!chain.datadir().join(".cookie").exists());
    chain.restart();
    let mined = chain.cli(&["mine", "1"]).ok();
    assert_eq!(mined["height"], 103);
    chain.crash();
    chain.restart();
    let info = chain.cli(&["info"]).ok();
    assert_eq!(info["height"], 103);
    assert_eq!(info["tip"], mined["blocks"][0]);
    assert_eq!(info["mempool_size"], 0);
    let child_tx = chain.cli(&["tx", &child.compute_txid().to_string()]).ok();
    assert_eq!(child_tx["confirmations"], 1);
    assert_eq!(
        chain.cli(&["utxo", &prev.to_string()]).ok(),
        Value::Null,
        "spent outputs stay spent"
    );
}

#[test]
fn reorg_returns_transactions_to_the_mempool_and_persists() {
    let mut chain = ChainDaemon::start();
    chain.cli(&["mine", "101"]).ok();
    let fund = chain
        .cli(&["fund", &Key::new(14).address().to_string(), "30000"])
        .ok();
    let txid = s(&fund["txid"]).to_owned();
    chain.cli(&["mine", "2"]).ok();
    assert_eq!(chain.cli(&["tx", &txid]).ok()["confirmations"], 2);
    let r = chain.cli(&["reorg", "2"]).ok();
    assert_eq!(r["height"], 101);
    assert_eq!(r["disconnected"].as_array().unwrap().len(), 2);
    assert_eq!(r["mempool_size"], 1);
    assert_eq!(chain.cli(&["tx", &txid]).ok()["confirmations"], 0);
    let e = chain.cli(&["reorg", "500"]).err();
    assert_eq!(e["data"]["rule"], "reorg_too_deep", "{e}");

    chain.crash();
    chain.restart();
    let info = chain.cli(&["info"]).ok();
    assert_eq!(info["height"], 101);
    assert_eq!(info["tip"], r["tip"]);
    assert_eq!(info["mempool_size"], 1);
}

/// Sends one HTTP POST with an optional Authorization header; returns (status, body).
fn http_post(addr: &str, auth: Option<&str>, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(a) = auth {
        request.push_str(&format!("Authorization: {a}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

#[test]
fn rpc_without_or_with_wrong_cookie_gets_401() {
    let chain = ChainDaemon::start();
    let addr = chain.rpc_address();
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"getinfo"}"#;

    let (status, body) = http_post(&addr, None, call);
    assert_eq!(status, 401);
    assert!(!body.contains("height"));
    let (status, _) = http_post(&addr, Some(&basic("__cookie__:wrong")), call);
    assert_eq!(status, 401);
    let (status, _) = http_post(
        &addr,
        Some(&basic(&format!("user:{}", chain.cookie()))),
        call,
    );
    assert_eq!(status, 401, "the user name must be __cookie__");
    let (status, body) = http_post(
        &addr,
        Some(&basic(&format!("__cookie__:{}", chain.cookie()))),
        call,
    );
    assert_eq!(status, 200);
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["result"]["height"], 0);

    // Cookie file permissions are 0600.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(chain.datadir().join(".cookie"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The CLI with --rpc and a wrong cookie file reports 401 as a JSON error.
    let wrong = chain.datadir().join("wrong-cookie");
    std::fs::write(&wrong, "nope").unwrap();
    let out = fulmen(&[
        "chain",
        "--rpc",
        &format!("http://{addr}"),
        "--cookie-file",
        wrong.to_str().unwrap(),
        "info",
    ]);
    let e = out.err();
    assert_eq!(e["code"], -401, "{e}");
    // ... and with the right one it works.
    let cookie_file = chain.datadir().join(".cookie");
    let out = fulmen(&[
        "chain",
        "--rpc",
        &addr,
        "--cookie-file",
        cookie_file.to_str().unwrap(),
        "info",
    ]);
    assert_eq!(out.ok()["height"], 0);
}

#[test]
fn waitforblock_returns_when_a_block_is_mined_or_on_timeout() {
    let chain = ChainDaemon::start();
    let timed_out = chain
        .cli(&["waitforblock", "0", "--timeout-ms", "200"])
        .ok();
    assert_eq!(timed_out["timed_out"], true);
    assert_eq!(timed_out["height"], 0);

    // Already above: returns at once.
    chain.cli(&["mine", "2"]).ok();
    let now = chain.cli(&["waitforblock", "1"]).ok();
    assert_eq!(now["timed_out"], false);
    assert_eq!(now["height"], 2);

    // A waiter in another process returns when a block is mined.
    let datadir = chain.datadir().to_str().unwrap().to_owned();
    let waiter = Command::new(fulmen_bin())
        .args([
            "chain",
            "--datadir",
            &datadir,
            "waitforblock",
            "2",
            "--timeout-ms",
            "30000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mined = chain.cli(&["mine", "1"]).ok();
    let out = waiter.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["timed_out"], false);
    assert_eq!(got["height"], 3);
    assert_eq!(got["hash"], mined["blocks"][0]);
}

#[test]
fn block_interval_mines_on_a_timer() {
    let chain = ChainDaemon::start_with(&["--block-interval", "1"]);
    let got = chain
        .cli(&["waitforblock", "1", "--timeout-ms", "10000"])
        .ok();
    assert_eq!(got["timed_out"], false, "{}", chain.log_text());
    assert!(got["height"].as_u64().unwrap() >= 2);
}

#[test]
fn rpc_client_follows_the_daemon_across_restarts() {
    let mut chain = ChainDaemon::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = fulmen_node::chain::api::ChainClient::from_datadir(chain.datadir());
    let info = rt.block_on(client.get_info()).unwrap();
    assert_eq!(info.height, 0);
    let old_address = chain.rpc_address();

    // Restart: a new port (port 0) and a new cookie; the same client object keeps working.
    chain.cli(&["stop"]).ok();
    chain.wait_exit();
    let down = rt.block_on(client.get_info()).unwrap_err();
    assert!(down.is_transport(), "{down}");
    chain.restart();
    assert_ne!(chain.rpc_address(), old_address);
    chain.cli(&["mine", "1"]).ok();
    let r = rt.block_on(client.wait_for_block(0, None, 5_000)).unwrap();
    assert_eq!(r.height, 1);
    assert!(!r.timed_out);
    let block = rt.block_on(client.get_block_at(1)).unwrap();
    assert_eq!(block.hash, r.hash);

    // A follower that knew a block which a reorg removed learns it at once.
    let mined = rt.block_on(client.mine(1, None)).unwrap();
    rt.block_on(client.reorg(1)).unwrap();
    let r = rt
        .block_on(client.wait_for_block(2, Some(&mined.blocks[0]), 5_000))
        .unwrap();
    assert!(!r.timed_out);
    assert_eq!(r.height, 1);

    // A pending long poll does not hold up a clean stop: the daemon wakes it and exits.
    let waiting = rt.spawn({
        let client = fulmen_node::chain::api::ChainClient::from_datadir(chain.datadir());
        async move {
            let started = Instant::now();
            let r = client.wait_for_block(50, None, 60_000).await;
            (r, started.elapsed())
        }
    });
    let started = Instant::now();
    chain.cli(&["stop"]).ok();
    assert_eq!(chain.wait_exit(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        started.elapsed()
    );
    let (r, elapsed) = rt.block_on(waiting).unwrap();
    assert!(
        elapsed < Duration::from_secs(10),
        "long poll took {elapsed:?}"
    );
    // Either the poll was in flight and returned with the tip at stop, or it reached a
    // daemon already gone and failed as a transport error.
    match r {
        Ok(r) => assert!(r.timed_out && r.height == 1, "{r:?}"),
        Err(e) => assert!(e.is_transport(), "{e}"),
    }
}

#[test]
fn a_second_daemon_on_the_same_datadir_is_refused() {
    let mut chain = ChainDaemon::start();
    let cookie = chain.cookie();
    let out = fulmen(&[
        "chain",
        "run",
        "--rpc-listen",
        "127.0.0.1:0",
        "--datadir",
        chain.datadir().to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr_raw.contains("another chain daemon"),
        "{}",
        out.stderr_raw
    );
    // The first daemon is untouched: same cookie, still answering.
    assert_eq!(chain.cookie(), cookie);
    assert!(chain.is_running());
    assert_eq!(chain.cli(&["info"]).ok()["height"], 0);
}
