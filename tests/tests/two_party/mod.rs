//! The two-party harness shared by the channel tests: seeded entropy, a fixed fee
//! estimator, a `Party` that persists its records before taking messages, message pumping,
//! opening a channel between two parties (with a real funding transaction, confirmed at
//! `FUNDING_HEIGHT` as transaction `FUNDING_TX_INDEX`), preimages and mirror checks.
//!
//! Must never: depend on timing or an unseeded RNG.
#![allow(dead_code, unused_imports)]

pub use bitcoin::hashes::{sha256, Hash};
pub use bitcoin::secp256k1::{Message as SecpMsg, Secp256k1, SecretKey};
pub use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, Txid};
pub use fulmen_channel::machine::{
    Broadcast, BroadcastKind, Channel, ChannelConfig, ChannelError, CloseReason, Entropy, Event,
    FeeEstimator, FundingMismatch, Phase, Record, SeedKeySource,
};
pub use fulmen_htlc::{PaymentHash, PaymentPreimage};
pub use fulmen_wire::msgs::{Message, OnionPacket, ONION_PACKET_LEN};
pub use fulmen_wire::ShortChannelId;
pub use rand::{RngCore, SeedableRng};
pub use rand_chacha::ChaCha20Rng;

pub const CHAIN: [u8; 32] = [6u8; 32];
pub const FUNDING_SAT: u64 = 1_000_000;
pub const PUSH_MSAT: u64 = 100_000_000;
/// Height of the block that confirms the funding in `open_pair`.
pub const FUNDING_HEIGHT: u32 = 110;
/// Index of the funding transaction in that block.
pub const FUNDING_TX_INDEX: u32 = 3;
/// Output index of the funding output in `funding_tx`.
pub const FUNDING_VOUT: u32 = 1;

pub struct Rng(pub ChaCha20Rng);
impl Entropy for Rng {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
}

pub struct Fees(pub u32);
impl FeeEstimator for Fees {
    fn feerate_per_kw(&self) -> u32 {
        self.0
    }
}

pub struct Party {
    pub ch: Channel,
    pub keys: SeedKeySource,
    pub log: Vec<Record>,
    pub events: Vec<Event>,
}

impl Party {
    /// Persist every pending batch (append to the log) and acknowledge it.
    pub fn persist(&mut self) {
        while let Some(b) = self.ch.poll_persist() {
            self.log.extend(b.records);
            self.ch.persisted(b.id).unwrap();
        }
        while let Some(e) = self.ch.poll_event() {
            self.events.push(e);
        }
    }

    pub fn outgoing(&mut self) -> Vec<Message> {
        self.persist();
        let mut v = Vec::new();
        while let Some(m) = self.ch.poll_message() {
            // Through the wire codec, as a real transport would.
            v.push(Message::decode(&m.encode()).unwrap());
        }
        v
    }

    pub fn assert_restores(&mut self) {
        self.persist();
        let r = Channel::restore(&self.keys, ChannelConfig::default(), &self.log).unwrap();
        assert_eq!(r.state(), self.ch.state(), "rebuilt from records differs");
        // Through the persistence format, as the node stores them: every record round-trips
        // and the channel rebuilt from the decoded records is the same.
        let decoded: Vec<Record> = self
            .log
            .iter()
            .map(|rec| {
                let d = Record::decode(&rec.encode()).unwrap();
                assert_eq!(&d, rec, "record changed through encode/decode");
                d
            })
            .collect();
        let r = Channel::restore(&self.keys, ChannelConfig::default(), &decoded).unwrap();
        assert_eq!(
            r.state(),
            self.ch.state(),
            "rebuilt from decoded records differs"
        );
    }
}

/// The variant names of the records in `logs` (from their `Debug` form).
pub fn record_kinds(logs: &[&[Record]]) -> std::collections::BTreeSet<String> {
    logs.iter()
        .flat_map(|l| l.iter())
        .map(|r| {
            let d = format!("{r:?}");
            d.split(|c: char| !c.is_alphanumeric())
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

pub fn onion() -> OnionPacket {
    OnionPacket(Box::new([0u8; ONION_PACKET_LEN]))
}

/// Deliver messages both ways until quiet; each side commits whenever it can.
pub fn run(a: &mut Party, b: &mut Party) {
    for _ in 0..1000 {
        let mut progressed = false;
        for m in a.outgoing() {
            b.ch.handle_message(&m).unwrap();
            progressed = true;
        }
        for m in b.outgoing() {
            a.ch.handle_message(&m).unwrap();
            progressed = true;
        }
        for p in [&mut *a, &mut *b] {
            if p.ch.can_send_commitment() {
                p.ch.send_commitment().unwrap();
                progressed = true;
            }
        }
        a.assert_restores();
        b.assert_restores();
        if !progressed {
            return;
        }
    }
    panic!("no quiescence");
}

pub fn open_pair(seed: u64, cfg_b: ChannelConfig) -> Result<(Party, Party), ChannelError> {
    open_pair_with(seed, ChannelConfig::default(), cfg_b)
}

/// A transaction whose output `FUNDING_VOUT` pays `value` to `script_pubkey` (output 0
/// pays someone else), spending a made-up coin: the chain is not involved here.
pub fn funding_tx(script_pubkey: ScriptBuf, value: Amount) -> Transaction {
    Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: Txid::from_byte_array([9u8; 32]),
                vout: 0,
            },
            ..TxIn::default()
        }],
        output: vec![
            TxOut {
                value: Amount::from_sat(50_000),
                script_pubkey: ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array(
                    [8; 32],
                )),
            },
            TxOut {
                value,
                script_pubkey,
            },
        ],
    }
}

pub fn open_pair_with(
    seed: u64,
    cfg_a: ChannelConfig,
    cfg_b: ChannelConfig,
) -> Result<(Party, Party), ChannelError> {
    let (mut a, mut b, tx) = open_funded(seed, cfg_a, cfg_b, funding_tx)?;
    for p in [&mut a, &mut b] {
        p.ch.handle_funding_confirmed(FUNDING_HEIGHT, FUNDING_TX_INDEX, &tx)
            .unwrap();
        p.ch.handle_block(FUNDING_HEIGHT).unwrap();
    }
    run(&mut a, &mut b);
    assert_eq!(a.ch.state().phase, Phase::AwaitingReady, "depth 1 < 3");
    for p in [&mut a, &mut b] {
        p.ch.handle_block(FUNDING_HEIGHT + 2).unwrap();
    }
    run(&mut a, &mut b);
    assert_eq!(a.ch.state().phase, Phase::Normal);
    assert_eq!(b.ch.state().phase, Phase::Normal);
    assert!(a.events.contains(&Event::ChannelReady));
    Ok((a, b))
}

/// Open up to both commitments 0 signed (phase `AwaitingReady`, nothing confirmed): the
/// opener funds with the transaction `make_tx(script, value)` builds from its
/// `FundingGenerationReady` request, at output `FUNDING_VOUT`; returns it.
pub fn open_funded(
    seed: u64,
    cfg_a: ChannelConfig,
    cfg_b: ChannelConfig,
    make_tx: impl FnOnce(ScriptBuf, Amount) -> Transaction,
) -> Result<(Party, Party, Transaction), ChannelError> {
    let mut rng = Rng(ChaCha20Rng::seed_from_u64(seed));
    let fees = Fees(1000);
    let ka = SeedKeySource::new([1u8; 32]);
    let kb = SeedKeySource::new([2u8; 32]);
    let cha = Channel::new_outbound(
        &ka,
        &mut rng,
        &fees,
        cfg_a,
        CHAIN,
        FUNDING_SAT,
        PUSH_MSAT,
        100,
    )?;
    let mut a = Party {
        ch: cha,
        keys: ka,
        log: vec![],
        events: vec![],
    };
    let open = a.outgoing().pop().unwrap();
    let Message::OpenChannel(open) = open else {
        panic!("not open_channel")
    };
    let chb = Channel::new_inbound(&kb, &mut rng, &fees, cfg_b, CHAIN, &open, 100)?;
    let mut b = Party {
        ch: chb,
        keys: kb,
        log: vec![],
        events: vec![],
    };
    run(&mut a, &mut b);
    let Some(Event::FundingGenerationReady {
        script_pubkey,
        value,
    }) = a.events.pop()
    else {
        panic!("no funding event")
    };
    assert_eq!(value.to_sat(), FUNDING_SAT);
    let tx = make_tx(script_pubkey, value);
    let outpoint = OutPoint {
        txid: tx.compute_txid(),
        vout: FUNDING_VOUT,
    };
    a.ch.handle_funding_tx(outpoint).unwrap();
    run(&mut a, &mut b);
    assert!(a.events.contains(&Event::FundingSigned { outpoint }));
    assert_eq!(a.ch.channel_id(), b.ch.channel_id());
    assert_eq!(b.ch.state().phase, Phase::AwaitingReady);
    Ok((a, b, tx))
}

pub fn preimage(n: u64) -> PaymentPreimage {
    let mut p = [0u8; 32];
    p[..8].copy_from_slice(&n.to_be_bytes());
    p[31] = 0xaa;
    PaymentPreimage(p)
}

pub fn hash_of(p: &PaymentPreimage) -> PaymentHash {
    p.payment_hash()
}

/// Payee side: fulfill every received HTLC whose preimage is known.
pub fn fulfill_received(p: &mut Party) {
    let evs: Vec<Event> = std::mem::take(&mut p.events);
    for e in evs {
        if let Event::HtlcReceived { id, htlc, .. } = e {
            // The payer encoded the preimage index in the cltv (test convention).
            let pre = preimage(u64::from(htlc.cltv_expiry - 500));
            assert_eq!(hash_of(&pre), htlc.payment_hash);
            p.ch.fulfill_htlc(id, pre).unwrap();
        } else {
            p.events.push(e);
        }
    }
}

pub fn check_mirror(a: &Party, b: &Party) {
    let (a_us, a_them) = a.ch.balances_msat().unwrap();
    let (b_us, b_them) = b.ch.balances_msat().unwrap();
    assert_eq!(a_us, b_them);
    assert_eq!(a_them, b_us);
    assert_eq!(a_us + a_them, FUNDING_SAT * 1000, "no HTLC left when quiet");
    assert!(a.ch.is_quiescent() && b.ch.is_quiescent());
}
