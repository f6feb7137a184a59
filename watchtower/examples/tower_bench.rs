//! Watchtower numbers for BENCHMARKS.md:
//! `cargo run --release -p fulmen-watchtower --example tower_bench`
//!
//! Prints the bytes stored per backup for a typical justice transaction (to_local + 2 HTLC
//! inputs), how many backups per second one client builds and seals, and the tower's CPU time
//! per block of 2,000 transactions with 100,000 stored hints (none or one matching).

use std::time::Instant;

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};
use fulmen_watchtower::client::backup;
use fulmen_watchtower::{Tower, TowerConfig, TowerRecord};

const CLIENTS: u32 = 10;
const PER_CLIENT: u32 = 10_000;
const BLOCK_TXS: u64 = 2_000;

/// The crate's fixtures: commitment and justice transactions of realistic sizes.
#[allow(dead_code)]
#[path = "../src/testutil.rs"]
mod testutil;
use testutil::{commitment_tx, justice_tx};

fn p2wpkh(b: u8) -> ScriptBuf {
    ScriptBuf::from_bytes([&[0x00, 0x14][..], &[b; 20][..]].concat())
}

/// An ordinary 1-in-2-out P2WPKH payment (the filler of a block).
fn payment_tx(seed: u64) -> Transaction {
    let mut prev = [0xaau8; 32];
    prev[..8].copy_from_slice(&seed.to_le_bytes());
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array(prev), 1),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::from_slice(&[vec![0x30; 72], vec![0x02; 33]]),
        }],
        output: vec![
            TxOut {
                value: Amount::from_sat(10_000),
                script_pubkey: p2wpkh(5),
            },
            TxOut {
                value: Amount::from_sat(90_000),
                script_pubkey: p2wpkh(6),
            },
        ],
    }
}

fn node_id(n: u32) -> PublicKey {
    let mut key = [1u8; 32];
    key[28..].copy_from_slice(&(n + 1).to_be_bytes());
    let sk = SecretKey::from_slice(&key).expect("valid key");
    PublicKey::from_secret_key(&Secp256k1::signing_only(), &sk)
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// 10 clients × 10,000 backups (to_local + 2 HTLCs each); returns the tower, one revoked
/// commitment among them, and (if `keep_records`) the records to persist.
fn fill(keep_records: bool) -> (Tower, Transaction, Vec<TowerRecord>) {
    let mut tower = Tower::new(TowerConfig {
        max_quota: PER_CLIENT,
        ..TowerConfig::default()
    });
    let mut records = Vec::new();
    let mut revoked = None;
    for client in 0..CLIENTS {
        let id = node_id(client);
        let rec = tower.create_session(id, PER_CLIENT).record;
        if keep_records {
            records.extend(rec);
        }
        for k in 0..PER_CLIENT {
            let seed = 1_000_000 + u64::from(client * PER_CLIENT + k);
            let c = commitment_tx(seed);
            let b = backup(&c.compute_txid(), &justice_tx(&c, 2)).expect("backup");
            let ack = tower.store(&id, b.hint, &b.blob).expect("store");
            if keep_records {
                records.extend(ack.record);
            }
            if client == 3 && k == 4_242 {
                revoked = Some(c);
            }
        }
    }
    (tower, revoked.expect("revoked commitment chosen"), records)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // 1. Bytes per backup.
    let c = commitment_tx(0);
    let j = justice_tx(&c, 2);
    let b = backup(&c.compute_txid(), &j).expect("backup");
    let record = TowerRecord::Stored {
        client: node_id(0),
        hint: b.hint,
        blob: b.blob.clone(),
    };
    println!(
        "justice tx (to_local + 2 HTLC): {} bytes, {} vbytes",
        bitcoin::consensus::encode::serialize(&j).len(),
        j.vsize()
    );
    println!(
        "blob {} B + hint 16 B; Stored record {} B; StoreBlob message {} B; queued Backup {} B",
        b.blob.len(),
        record.encode().len(),
        b.to_message().encode().len(),
        b.encode().len()
    );
    for htlcs in [0, 5, 10, 20, 40] {
        let jj = justice_tx(&c, htlcs);
        let bb = backup(&c.compute_txid(), &jj).expect("backup");
        println!(
            "  to_local + {htlcs:2} HTLCs: tx {:5} B -> blob {:5} B",
            bitcoin::consensus::encode::serialize(&jj).len(),
            bb.blob.len()
        );
    }

    // 2. Backups per second, one client (check + seal), 20,000 distinct commitments.
    let n = 20_000u64;
    let pairs: Vec<(Txid, Transaction)> = (0..n)
        .map(|i| {
            let c = commitment_tx(i);
            (c.compute_txid(), justice_tx(&c, 2))
        })
        .collect();
    let mut rates = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut bytes = 0usize;
        for (txid, j) in &pairs {
            bytes += backup(txid, j).expect("backup").blob.len();
        }
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(bytes);
        rates.push(n as f64 / secs);
    }
    println!(
        "client: {:.0} backups/s (median of 5 runs of {n}; {:.1} µs per backup)",
        median(rates.clone()),
        1e6 / median(rates)
    );

    // 3. Tower with 100,000 stored hints (RSS measured without the records; they are
    // rebuilt afterwards for the restore figure).
    let rss_before = rss_kib();
    let start = Instant::now();
    let (mut tower, revoked, _) = fill(false);
    let built = start.elapsed();
    let info = tower.info();
    let rss_after = rss_kib();
    println!(
        "tower: {} clients, {} blobs, {:.1} MiB of blob; built (seal + store) in {:.2} s",
        info.clients,
        info.stored_blobs,
        info.stored_bytes as f64 / (1024.0 * 1024.0),
        built.as_secs_f64()
    );
    if let (Some(a), Some(b)) = (rss_before, rss_after) {
        let grew = b.saturating_sub(a) as f64 * 1024.0;
        println!(
            "  RSS grew by {:.1} MiB: {:.0} B per stored backup in memory",
            grew / (1024.0 * 1024.0),
            grew / info.stored_blobs as f64
        );
    }

    let quiet: Vec<Transaction> = (0..BLOCK_TXS).map(payment_tx).collect();
    let mut breach = quiet.clone();
    breach[1_000] = revoked;
    let mut broadcast_records = Vec::new();
    for (name, block) in [("no match", &quiet), ("one match", &breach)] {
        let mut times = Vec::new();
        let mut found = 0;
        for h in 0..21 {
            let start = Instant::now();
            let out = tower.block_connected(h, block);
            broadcast_records.extend(out.iter().filter_map(|b| b.record.clone()));
            times.push(start.elapsed().as_secs_f64() * 1e3);
            found = out.len();
        }
        println!(
            "block_connected, {BLOCK_TXS} txs, {name}: median {:.3} ms (min {:.3}, max {:.3}) over 21 runs; {found} justice tx",
            median(times.clone()),
            times.iter().cloned().fold(f64::MAX, f64::min),
            times.iter().cloned().fold(0.0, f64::max)
        );
    }
    // The floor: computing the txids alone.
    let mut times = Vec::new();
    for _ in 0..21 {
        let start = Instant::now();
        for tx in &quiet {
            std::hint::black_box(tx.compute_txid());
        }
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "  (txid computation alone for the block: median {:.3} ms)",
        median(times)
    );

    // 4. Restart: decode and replay every record.
    drop(tower);
    let (tower, _, mut records) = fill(true);
    records.extend(broadcast_records);
    let mut tower = tower;
    tower.block_connected(0, &breach);
    let encoded: Vec<Vec<u8>> = records.iter().map(TowerRecord::encode).collect();
    drop(records);
    let start = Instant::now();
    let decoded = encoded
        .iter()
        .map(|r| TowerRecord::decode(r).expect("record"));
    let restored = Tower::restore(TowerConfig::default(), decoded).expect("restore");
    println!(
        "restore from {} records ({:.1} MiB): {:.0} ms; same info: {}",
        encoded.len(),
        encoded.iter().map(Vec::len).sum::<usize>() as f64 / (1024.0 * 1024.0),
        start.elapsed().as_secs_f64() * 1e3,
        restored.info() == tower.info()
    );
}
