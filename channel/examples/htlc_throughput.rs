//! Throughput of the sans-IO state machine: HTLC add→fulfill round trips per second between
//! two in-memory channels (no I/O; records "persisted" into memory), with 1 and with 100
//! HTLCs in flight per commitment round.
//!
//! Run: `cargo run --release -p fulmen-channel --example htlc_throughput [rounds]`.
//! Must never: do I/O beyond printing the result.

use std::time::Instant;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, Txid};
use fulmen_channel::machine::{
    Channel, ChannelConfig, Entropy, Event, FeeEstimator, Record, SeedKeySource,
};
use fulmen_htlc::{PaymentHash, PaymentPreimage};
use fulmen_wire::msgs::{Message, OnionPacket, ONION_PACKET_LEN};

struct Counter(u64);
impl Entropy for Counter {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1);
            *b = (self.0 >> 33) as u8;
        }
    }
}
struct Fee;
impl FeeEstimator for Fee {
    fn feerate_per_kw(&self) -> u32 {
        253
    }
}

struct Node {
    ch: Channel,
    log: Vec<Record>,
    received: Vec<(u64, PaymentHash)>,
    fulfilled: u64,
    funding: Option<(ScriptBuf, Amount)>,
}

impl Node {
    fn out(&mut self) -> Vec<Message> {
        while let Some(b) = self.ch.poll_persist() {
            self.log.extend(b.records);
            self.ch.persisted(b.id).expect("ack");
        }
        while let Some(e) = self.ch.poll_event() {
            match e {
                Event::HtlcReceived { id, htlc, .. } => self.received.push((id, htlc.payment_hash)),
                Event::HtlcFulfilled { .. } => self.fulfilled += 1,
                Event::FundingGenerationReady {
                    script_pubkey,
                    value,
                } => self.funding = Some((script_pubkey, value)),
                _ => {}
            }
        }
        std::iter::from_fn(|| self.ch.poll_message()).collect()
    }
}

fn exchange(a: &mut Node, b: &mut Node) {
    loop {
        let mut busy = false;
        for m in a.out() {
            b.ch.handle_message(&m).expect("valid");
            busy = true;
        }
        for m in b.out() {
            a.ch.handle_message(&m).expect("valid");
            busy = true;
        }
        for n in [&mut *a, &mut *b] {
            if n.ch.can_send_commitment() {
                n.ch.send_commitment().expect("commit");
                busy = true;
            }
        }
        if !busy {
            return;
        }
    }
}

fn open() -> (Node, Node) {
    let mut e = Counter(42);
    let cfg = ChannelConfig::default();
    let (ka, kb) = (SeedKeySource::new([1; 32]), SeedKeySource::new([2; 32]));
    let ch = Channel::new_outbound(&ka, &mut e, &Fee, cfg.clone(), [6; 32], 16_000_000, 0, 1)
        .expect("open");
    let mut a = Node {
        ch,
        log: vec![],
        received: vec![],
        fulfilled: 0,
        funding: None,
    };
    let Some(Message::OpenChannel(o)) = a.out().pop() else {
        panic!("open_channel")
    };
    let ch = Channel::new_inbound(&kb, &mut e, &Fee, cfg, [6; 32], &o, 1).expect("accept");
    let mut b = Node {
        ch,
        log: vec![],
        received: vec![],
        fulfilled: 0,
        funding: None,
    };
    exchange(&mut a, &mut b);
    // A stand-in funding transaction (no chain here): output 0 pays the 2-of-2.
    let (script_pubkey, value) = a.funding.take().expect("funding request");
    let funding = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: Txid::from_byte_array([7; 32]),
                vout: 0,
            },
            ..TxIn::default()
        }],
        output: vec![TxOut {
            value,
            script_pubkey,
        }],
    };
    a.ch.handle_funding_tx(OutPoint {
        txid: funding.compute_txid(),
        vout: 0,
    })
    .expect("funding");
    exchange(&mut a, &mut b);
    for n in [&mut a, &mut b] {
        n.ch.handle_funding_confirmed(2, 1, &funding).expect("conf");
        n.ch.handle_block(10).expect("block");
    }
    exchange(&mut a, &mut b);
    (a, b)
}

/// `rounds` cycles of: add `in_flight` HTLCs, commit, fulfill them all, commit.
fn measure(in_flight: u64, rounds: u64) -> f64 {
    let (mut a, mut b) = open();
    let onion = OnionPacket(Box::new([0u8; ONION_PACKET_LEN]));
    let start = Instant::now();
    let mut n = 0u64;
    for _ in 0..rounds {
        let mut pres = std::collections::HashMap::new();
        for _ in 0..in_flight {
            n += 1;
            let mut pre = PaymentPreimage([0u8; 32]);
            pre.0[..8].copy_from_slice(&n.to_be_bytes());
            let h = pre.payment_hash();
            pres.insert(h, pre);
            a.ch.add_htlc(10_000, h, 100, onion.clone()).expect("add");
        }
        exchange(&mut a, &mut b);
        for (id, h) in std::mem::take(&mut b.received) {
            b.ch.fulfill_htlc(id, pres[&h]).expect("fulfill");
        }
        exchange(&mut a, &mut b);
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(a.fulfilled, in_flight * rounds, "every HTLC fulfilled");
    (in_flight * rounds) as f64 / secs
}

fn main() {
    let rounds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let one = measure(1, rounds * 10);
    println!(
        "1 HTLC in flight:    {one:>10.0} add->fulfill round trips/s ({} HTLCs)",
        rounds * 10
    );
    let hundred = measure(100, rounds / 10 + 1);
    println!(
        "100 HTLCs in flight: {hundred:>10.0} add->fulfill round trips/s ({} HTLCs)",
        100 * (rounds / 10 + 1)
    );
}
