//! Two parties, in memory, open a channel and pay each other in both directions with the
//! sans-IO state machine (`fulmen_channel::machine`), then print the final balances.
//!
//! Run: `cargo run -p fulmen-channel --example two_party`. Owns nothing but this demo; must
//! never do network or disk I/O (records are "persisted" into a Vec). The pair here is
//! inline on purpose, for a newcomer to read; the tests use the shared deterministic harness
//! in `fulmen-tests` (`tests/src/pair.rs`: seeded scheduler, crashes, invariant checks).

use bitcoin::hashes::Hash;
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, Txid};
use fulmen_channel::machine::{
    BroadcastKind, Channel, ChannelConfig, Entropy, Event, FeeEstimator, Record, SeedKeySource,
};
use fulmen_htlc::PaymentPreimage;
use fulmen_wire::msgs::{Message, OnionPacket, ONION_PACKET_LEN};

/// A deterministic demo entropy source (xorshift); a real node passes a CSPRNG.
struct DemoEntropy(u64);
impl Entropy for DemoEntropy {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

struct FixedFee;
impl FeeEstimator for FixedFee {
    fn feerate_per_kw(&self) -> u32 {
        1000
    }
}

struct Node {
    name: &'static str,
    ch: Channel,
    log: Vec<Record>,
    events: Vec<Event>,
}

impl Node {
    /// Persist-before-send: write each batch, acknowledge it, only then take messages.
    fn outgoing(&mut self) -> Vec<Message> {
        while let Some(batch) = self.ch.poll_persist() {
            self.log.extend(batch.records);
            self.ch.persisted(batch.id).expect("batch handed out");
        }
        while let Some(e) = self.ch.poll_event() {
            self.events.push(e);
        }
        std::iter::from_fn(|| self.ch.poll_message()).collect()
    }
}

fn exchange(a: &mut Node, b: &mut Node) {
    loop {
        let mut busy = false;
        for m in a.outgoing() {
            b.ch.handle_message(&m).expect("valid message");
            busy = true;
        }
        for m in b.outgoing() {
            a.ch.handle_message(&m).expect("valid message");
            busy = true;
        }
        for n in [&mut *a, &mut *b] {
            if n.ch.can_send_commitment() {
                n.ch.send_commitment().expect("commitment");
                busy = true;
            }
        }
        if !busy {
            return;
        }
    }
}

fn pay(payer: &mut Node, payee: &mut Node, amounts: &[u64], nonce: &mut u8) {
    let mut preimages = Vec::new();
    for &amt in amounts {
        *nonce += 1;
        let preimage = PaymentPreimage([*nonce; 32]);
        let hash = preimage.payment_hash();
        let onion = OnionPacket(Box::new([0u8; ONION_PACKET_LEN]));
        payer.ch.add_htlc(amt, hash, 800, onion).expect("add");
        preimages.push((hash, preimage));
    }
    exchange(payer, payee);
    for e in std::mem::take(&mut payee.events) {
        if let Event::HtlcReceived { id, htlc, .. } = e {
            let (_, pre) = preimages
                .iter()
                .find(|(h, _)| *h == htlc.payment_hash)
                .expect("known hash");
            payee.ch.fulfill_htlc(id, *pre).expect("fulfill");
        }
    }
    exchange(payer, payee);
    let done = payer
        .events
        .drain(..)
        .filter(|e| matches!(e, Event::HtlcFulfilled { .. }))
        .count();
    println!(
        "{} paid {} {} HTLC(s) totalling {} msat in one commitment round; {} fulfilled",
        payer.name,
        payee.name,
        amounts.len(),
        amounts.iter().sum::<u64>(),
        done
    );
}

fn show(n: &Node) {
    let (us, them) = n.ch.balances_msat().expect("open");
    println!(
        "  {}: local {us} msat, remote {them} msat ({} records persisted)",
        n.name,
        n.log.len()
    );
}

fn main() {
    let chain = [0x06u8; 32];
    let mut ent = DemoEntropy(0x9e37_79b9_7f4a_7c15);
    let (ka, kb) = (SeedKeySource::new([1; 32]), SeedKeySource::new([2; 32]));
    let cfg = ChannelConfig::default();
    let ch_a = Channel::new_outbound(
        &ka,
        &mut ent,
        &FixedFee,
        cfg.clone(),
        chain,
        1_000_000,
        0,
        100,
    )
    .expect("open");
    let mut alice = Node {
        name: "alice",
        ch: ch_a,
        log: vec![],
        events: vec![],
    };
    let Some(Message::OpenChannel(open)) = alice.outgoing().pop() else {
        panic!("expected open_channel")
    };
    println!(
        "alice -> bob: open_channel for {} sat",
        open.funding_satoshis
    );
    let ch_b = Channel::new_inbound(&kb, &mut ent, &FixedFee, cfg.clone(), chain, &open, 100)
        .expect("bob accepts");
    let mut bob = Node {
        name: "bob",
        ch: ch_b,
        log: vec![],
        events: vec![],
    };
    exchange(&mut alice, &mut bob);
    let Some(Event::FundingGenerationReady {
        script_pubkey,
        value,
    }) = alice.events.pop()
    else {
        panic!("expected funding request")
    };
    println!("alice: fund {value} to {script_pubkey}");
    // A stand-in funding transaction spending a made-up coin (this demo has no chain;
    // fulmen-chain provides one). Only its output matters to the channels.
    let funding = funding_tx(script_pubkey, value);
    let outpoint = OutPoint {
        txid: funding.compute_txid(),
        vout: 0,
    };
    alice.ch.handle_funding_tx(outpoint).expect("funding");
    exchange(&mut alice, &mut bob);
    println!("funding_created / funding_signed exchanged; funding confirms at height 101");
    for n in [&mut alice, &mut bob] {
        // Second transaction of block 101: both check the output, derive 101x1x0.
        n.ch.handle_funding_confirmed(101, 1, &funding)
            .expect("confirm");
        n.ch.handle_block(103).expect("block");
    }
    exchange(&mut alice, &mut bob);
    assert!(alice.events.contains(&Event::ChannelReady));
    let scid = alice.ch.short_channel_id().expect("confirmed");
    assert_eq!(bob.ch.short_channel_id(), Some(scid));
    println!(
        "channel_ready both ways; channel id {}, short channel id {scid}",
        hex(&alice.ch.channel_id())
    );
    show(&alice);
    show(&bob);

    let mut nonce = 0u8;
    pay(
        &mut alice,
        &mut bob,
        &[10_000_000, 2_500_000, 1_234_567],
        &mut nonce,
    );
    pay(&mut bob, &mut alice, &[3_000_000, 500], &mut nonce);
    pay(&mut alice, &mut bob, &[42_000], &mut nonce);

    println!("final balances:");
    show(&alice);
    show(&bob);
    let (a_us, a_them) = alice.ch.balances_msat().expect("open");
    assert_eq!(a_us + a_them, 1_000_000_000, "conserved to the msat");
    let rebuilt = Channel::restore(&ka, cfg, &alice.log).expect("replay");
    assert_eq!(rebuilt.state(), alice.ch.state());
    println!(
        "alice rebuilt from her {} records: identical state",
        alice.log.len()
    );

    // Cooperative close: alice sends shutdown, bob answers, alice (the funder) proposes a
    // fee with a range, bob agrees, both broadcast the same closing transaction.
    alice.ch.shutdown(demo_script(0xa1)).expect("shutdown");
    exchange(&mut alice, &mut bob);
    assert!(bob.events.contains(&Event::ShutdownReceived));
    bob.ch.shutdown(demo_script(0xb2)).expect("shutdown");
    exchange(&mut alice, &mut bob);
    let close_a = alice.ch.poll_broadcast().expect("alice closing tx");
    let close_b = bob.ch.poll_broadcast().expect("bob closing tx");
    assert_eq!(close_a.kind, BroadcastKind::Closing);
    assert_eq!(close_a, close_b);
    let reason = alice.ch.close_reason().expect("closed");
    println!("alice: channel closed ({reason})");
    let close_a = close_a.tx;
    let paid: u64 = close_a.output.iter().map(|o| o.value.to_sat()).sum();
    println!(
        "closed cooperatively: closing tx {} pays {} sat, fee {} sat",
        close_a.compute_txid(),
        paid,
        1_000_000 - paid
    );
    for o in &close_a.output {
        let who = if o.script_pubkey == demo_script(0xa1) {
            "alice"
        } else {
            "bob"
        };
        println!("  {who}: {} sat on chain", o.value.to_sat());
    }
}

/// A transaction whose output 0 pays `value` to `script_pubkey`, spending a made-up coin.
fn funding_tx(script_pubkey: ScriptBuf, value: Amount) -> Transaction {
    Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: Txid::from_byte_array([0xf0; 32]),
                vout: 0,
            },
            ..TxIn::default()
        }],
        output: vec![TxOut {
            value,
            script_pubkey,
        }],
    }
}

fn demo_script(tag: u8) -> bitcoin::ScriptBuf {
    bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([tag; 20]))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
