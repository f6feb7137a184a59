//! How long one durable turn's write takes: `NodeStore::write` of a batch shaped like a
//! payment turn's (three channel records of 600 bytes, one monitor record, one payment
//! upsert), one after the other, and a one-row read, with `synchronous=FULL` and then
//! `NORMAL`, in a fresh database under DIR (default: the system's temporary directory — pass
//! a directory on the disk the daemons use).
//!
//! `cargo run --release -p fulmen-node --example store_write [N] [DIR]` prints the mean, p50
//! and p99 per write and the p50 of the read. A payment makes five such writes one after the
//! other (BENCHMARKS.md, "What bounds a payment").

use std::time::Instant;

use fulmen_node::node::store::{DbSync, NodeStore, WriteBatch};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(2000), |a| a.parse())?;
    let base = args.next().map_or_else(std::env::temp_dir, Into::into);
    for sync in [DbSync::Full, DbSync::Normal] {
        let dir = tempfile::tempdir_in(&base)?;
        let store = NodeStore::open(dir.path(), sync).await?;
        store
            .write(&WriteBatch {
                new_channels: vec![(1, "02aa".into())],
                ..Default::default()
            })
            .await?;
        let mut took = Vec::with_capacity(n);
        for i in 0..n {
            let batch = WriteBatch {
                records: (0..3)
                    .map(|r| (1, vec![(i + r) as u8; 600], false))
                    .collect(),
                monitor_records: vec![(1, vec![i as u8; 300], false)],
                payments: vec![(format!("{i:064x}"), format!("{{\"n\":{i}}}"), i % 2 == 0)],
                ..Default::default()
            };
            let t = Instant::now();
            store.write(&batch).await?;
            took.push(t.elapsed().as_secs_f64() * 1e3);
        }
        // A trivial read: what one round trip to sqlx's worker thread costs by itself.
        let mut reads = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            store.meta("opened").await?;
            reads.push(t.elapsed().as_secs_f64() * 1e3);
        }
        reads.sort_by(f64::total_cmp);
        println!(
            "{sync:?}: one-row read (a round trip to sqlx's thread): p50 {:.3} ms",
            reads[n / 2]
        );
        store.close().await;
        let mean = took.iter().sum::<f64>() / n as f64;
        took.sort_by(f64::total_cmp);
        let at = |q: f64| took[((n as f64 * q) as usize).min(n - 1)];
        println!(
            "{sync:?}: {n} writes in {}: mean {mean:.3} ms, p50 {:.3} ms, p99 {:.3} ms",
            base.display(),
            at(0.5),
            at(0.99)
        );
    }
    Ok(())
}
