//! The two-channel harness: two `fulmen_channel::machine::Channel` endpoints over the
//! [`crate::sim`] scheduler, each with a [`DurableLog`] of its records.
//!
//! An [`Endpoint`] hands out every batch its channel produces; the harness acknowledges
//! batches in order (at once, or at random points under [`AckPolicy::Random`]). Events are
//! held with the batch they came with and released to the application only once it is
//! durable — as the manager releases its outputs — so a crash ([`Pair::restart`] with
//! `crash = true`) loses the pending batches and everything that came with them, and the
//! restarted side is rebuilt from its durable records only (through the persistence codec).
//!
//! [`Pair::run`] delivers in order until quiet (the deterministic tests); the seeded
//! scheduler tests drive [`Pair::flush`], [`Pair::deliver_random`], [`Pair::restart`] etc.
//! Invariants: [`Pair::check_step`] (value conserved in every commitment, never a signature
//! on a revoked state) after any step, and [`Pair::check_views`] at every quiescent step
//! (both views of both commitments mirrored — balances, HTLC sets, feerate, numbers, HTLC
//! ids — and each side rebuilt from its records equal to its live state).
//!
//! Must never: depend on timing or an unseeded RNG.

use std::collections::{BTreeSet, VecDeque};

use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxIn, TxOut, Txid};
use fulmen_channel::machine::{
    Channel, ChannelConfig, ChannelError, Event, Phase, Record, SeedKeySource, Spec,
};
use fulmen_channel::shachain::MAX_INDEX;
use fulmen_htlc::{PaymentHash, PaymentPreimage};
use fulmen_wire::msgs::{Message, OnionPacket, ONION_PACKET_LEN};

use crate::sim::{Clock, Delivery, DurableLog, FixedFees, Links, SimRng, Store, Transcript};

/// The chain hash the pair's channels use.
pub const CHAIN: [u8; 32] = [6u8; 32];
/// Default capacity of [`open_pair`].
pub const FUNDING_SAT: u64 = 1_000_000;
/// Default push of [`open_pair`] (the acceptor's opening balance).
pub const PUSH_MSAT: u64 = 100_000_000;
/// Height of the block that confirms the funding in [`open_pair`] (creation height + 10).
pub const FUNDING_HEIGHT: u32 = 110;
/// Index of the funding transaction in that block.
pub const FUNDING_TX_INDEX: u32 = 3;
/// Output index of the funding output in [`funding_tx`].
pub const FUNDING_VOUT: u32 = 1;

/// An endpoint's durable storage. Each record is written as the node stores it — the
/// bytes of `Record::encode` — and checked, when written, to decode to the same record; so
/// the records kept here are exactly what a restart decodes from storage.
#[derive(Debug, Clone)]
pub struct ChannelLog {
    /// The records, in order.
    pub records: Vec<Record>,
    /// Check every record through the persistence format when written (default); off
    /// only for benchmarks.
    pub through_codec: bool,
}

impl Default for ChannelLog {
    fn default() -> Self {
        ChannelLog {
            records: vec![],
            through_codec: true,
        }
    }
}

impl Store for ChannelLog {
    type Batch = Vec<Record>;
    fn apply(&mut self, batch: &Vec<Record>) {
        if !self.through_codec {
            self.records.extend(batch.iter().cloned());
            return;
        }
        for rec in batch {
            let bytes = rec.encode();
            let d = Record::decode(&bytes).expect("a written record decodes");
            assert_eq!(&d, rec, "record changed through encode/decode");
            self.records.push(d);
        }
    }
}

/// One side: its channel, key source, storage and the events released to it.
pub struct Endpoint {
    /// "a" or "b" (transcript labels).
    pub name: &'static str,
    /// The channel under test.
    pub ch: Channel,
    /// Its key source (needed to restore it).
    pub keys: SeedKeySource,
    /// Its configuration (needed to restore it).
    pub config: ChannelConfig,
    /// Its records: durable, and handed out but not yet acknowledged.
    pub store: DurableLog<ChannelLog>,
    /// Events released to the application (their batch is durable), oldest first.
    pub events: Vec<Event>,
    /// Released events, restarts and crashes of this side.
    pub transcript: Transcript,
    held: VecDeque<(u64, Event)>,
    last_batch: Option<u64>,
    acked_upto: Option<u64>,
}

impl Endpoint {
    /// A side with nothing stored yet.
    pub fn new(
        name: &'static str,
        ch: Channel,
        keys: SeedKeySource,
        config: ChannelConfig,
    ) -> Endpoint {
        Endpoint {
            name,
            ch,
            keys,
            config,
            store: DurableLog::new(),
            events: vec![],
            transcript: Transcript::new(),
            held: VecDeque::new(),
            last_batch: None,
            acked_upto: None,
        }
    }

    /// Take every new batch (pending until acknowledged), then the channel's events: each
    /// is held until the newest pending batch is durable (released at once if none is).
    pub fn hand_out(&mut self) {
        while let Some(b) = self.ch.poll_persist() {
            self.last_batch = Some(b.id);
            self.store.hand_out(b.id, b.records);
        }
        while let Some(e) = self.ch.poll_event() {
            match self.store.pending().last() {
                Some((id, _)) => self.held.push_back((*id, e)),
                None => self.release(e),
            }
        }
    }

    fn release(&mut self, e: Event) {
        // The onion's 1366 bytes are hashed as bytes, not formatted.
        match &e {
            Event::HtlcReceived { id, htlc, onion } | Event::HtlcMustFail { id, htlc, onion } => {
                let kind = if matches!(e, Event::HtlcReceived { .. }) {
                    "received"
                } else {
                    "must-fail"
                };
                let mut d = format!("{kind} {id} {htlc:?}").into_bytes();
                d.extend_from_slice(&onion.0[..]);
                self.transcript.record("event", &d);
            }
            _ => self.transcript.record("event", format!("{e:?}").as_bytes()),
        }
        self.events.push(e);
    }

    /// Make the oldest pending batch durable and acknowledge it to the channel (which
    /// releases its messages); release the events held for it. Returns its id.
    pub fn ack_next(&mut self) -> Option<u64> {
        let id = self.store.ack_next()?;
        self.ch
            .persisted(id)
            .expect("acknowledged a batch handed out");
        self.acked_upto = Some(id);
        while self.held.front().is_some_and(|(b, _)| *b <= id) {
            if let Some((_, e)) = self.held.pop_front() {
                self.release(e);
            }
        }
        Some(id)
    }

    /// Acknowledge every pending batch.
    pub fn ack_all(&mut self) {
        while self.ack_next().is_some() {}
    }

    /// Hand out and acknowledge every batch (a synchronous write).
    pub fn persist(&mut self) {
        self.hand_out();
        self.ack_all();
    }

    /// The id of the newest batch handed out by this incarnation of the channel.
    pub fn last_batch(&self) -> Option<u64> {
        self.last_batch
    }

    /// The id of the newest batch acknowledged in this incarnation.
    pub fn acked_upto(&self) -> Option<u64> {
        self.acked_upto
    }

    /// Persist everything, then the released messages, through the wire codec.
    pub fn outgoing(&mut self) -> Vec<Message> {
        self.persist();
        std::iter::from_fn(|| self.ch.poll_message())
            .map(|m| Message::decode(&m.encode()).expect("own message decodes"))
            .collect()
    }

    /// The durable records.
    pub fn log(&self) -> &[Record] {
        &self.store.durable().records
    }

    /// Durable records followed by the pending ones.
    pub fn all_records(&self) -> Vec<Record> {
        let mut v = self.store.durable().records.clone();
        for (_, b) in self.store.pending() {
            v.extend(b.iter().cloned());
        }
        v
    }

    /// Persist everything, then [`Endpoint::check_restores`].
    pub fn assert_restores(&mut self) {
        self.persist();
        self.check_restores();
    }

    /// The channel rebuilt from all its records equals the live channel. (Every durable
    /// record was checked, when written, to come back equal through the persistence format
    /// — `Record::encode` / `decode` — so this holds for the decoded records too.)
    pub fn check_restores(&self) {
        let log = self.all_records();
        let r = Channel::restore(&self.keys, self.config.clone(), &log).unwrap();
        assert_eq!(r.state(), self.ch.state(), "rebuilt from records differs");
    }

    /// Restart this side from its durable records, as stored (each went through the
    /// persistence format when written, see [`ChannelLog`]). `crash`: the pending batches and the events held for them are lost (else
    /// they are written first, and the restarted state must equal the live one). Returns
    /// the number of batches lost.
    pub fn restart(&mut self, crash: bool) -> usize {
        let lost = if crash {
            self.check_restores();
            self.held.clear();
            self.store.crash().len()
        } else {
            self.persist();
            0
        };
        assert!(self.store.durable().through_codec, "records as stored");
        let r = Channel::restore(&self.keys, self.config.clone(), self.log()).unwrap();
        if lost == 0 {
            assert_eq!(r.state(), self.ch.state(), "restored state differs");
        }
        self.ch = r;
        self.last_batch = None;
        self.acked_upto = None;
        let kind = if crash { "crash" } else { "restart" };
        self.transcript.record(kind, &(lost as u64).to_be_bytes());
        lost
    }
}

/// When the harness acknowledges the batches an endpoint hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckPolicy {
    /// At once (every write is synchronous; a crash loses nothing).
    Immediate,
    /// At each flush, each pending batch (oldest first) with this probability in percent;
    /// the rest wait for [`Pair::ack`] or the next flush.
    Random(u32),
}

/// Which invariants [`Pair::run`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// [`Pair::check_step`] and restore-from-records every round, [`Pair::check_views`]
    /// once quiet.
    EveryRound,
    /// [`Pair::check_views`] once quiet.
    Quiet,
    /// None (benchmarks).
    Off,
}

/// Two endpoints (`a` opened the channel), the links between them, a virtual clock, the
/// scheduler's seeded RNG and the transcript of deliveries.
pub struct Pair {
    /// The opener (endpoint 0).
    pub a: Endpoint,
    /// The acceptor (endpoint 1).
    pub b: Endpoint,
    /// Messages in flight: link (0, 1) is a → b.
    pub links: Links,
    /// The virtual clock (drives message delays).
    pub clock: Clock,
    /// The scheduler's randomness (delays, acknowledgements, which link delivers).
    pub rng: SimRng,
    /// Deliveries and link events.
    pub transcript: Transcript,
    /// When batches are acknowledged by [`Pair::flush`].
    pub ack: AckPolicy,
    /// Which invariants [`Pair::run`] checks.
    pub checks: Checks,
    /// Quiescent steps at which [`Pair::check_views`] ran.
    pub quiet_checks: u64,
}

/// Parameters of [`Pair::open`].
#[derive(Debug, Clone)]
pub struct OpenParams {
    /// Seeds the channels' entropy and the scheduler.
    pub seed: u64,
    /// Capacity.
    pub funding_sat: u64,
    /// Pushed to the acceptor.
    pub push_msat: u64,
    /// Both sides' fee estimate (the opening feerate).
    pub feerate: u32,
    /// The opener's config.
    pub cfg_a: ChannelConfig,
    /// The acceptor's config.
    pub cfg_b: ChannelConfig,
    /// Block height at creation; funding confirms at +10 (as transaction
    /// [`FUNDING_TX_INDEX`]), the channel is ready at +12.
    pub height: u32,
    /// The made-up coin the stand-in funding transaction spends (no chain is involved).
    pub funding_coin: OutPoint,
    /// Which invariants [`Pair::run`] checks (during the opening too).
    pub checks: Checks,
}

impl OpenParams {
    /// The defaults of the two-party tests: 1,000,000 sat, 100,000,000 msat pushed,
    /// 1000 sat/kw, default configs, height 100.
    pub fn new(seed: u64) -> OpenParams {
        OpenParams {
            seed,
            funding_sat: FUNDING_SAT,
            push_msat: PUSH_MSAT,
            feerate: 1000,
            cfg_a: ChannelConfig::default(),
            cfg_b: ChannelConfig::default(),
            height: 100,
            funding_coin: OutPoint {
                txid: Txid::from_byte_array([9u8; 32]),
                vout: 0,
            },
            checks: Checks::EveryRound,
        }
    }
}

/// Open a channel with the default parameters and the acceptor's config `cfg_b`.
pub fn open_pair(seed: u64, cfg_b: ChannelConfig) -> Result<Pair, ChannelError> {
    open_pair_with(seed, ChannelConfig::default(), cfg_b)
}

/// Open a channel with the default parameters and both configs.
pub fn open_pair_with(
    seed: u64,
    cfg_a: ChannelConfig,
    cfg_b: ChannelConfig,
) -> Result<Pair, ChannelError> {
    Pair::open(OpenParams {
        cfg_a,
        cfg_b,
        ..OpenParams::new(seed)
    })
}

/// Open up to both commitments 0 signed (phase `AwaitingReady`, nothing confirmed), with
/// the default parameters and both configs: the opener funds with the transaction
/// `make_tx(script, value)` builds from its `FundingGenerationReady` request, at output
/// [`FUNDING_VOUT`]; returns it.
pub fn open_funded(
    seed: u64,
    cfg_a: ChannelConfig,
    cfg_b: ChannelConfig,
    make_tx: impl FnOnce(ScriptBuf, Amount) -> Transaction,
) -> Result<(Pair, Transaction), ChannelError> {
    let p = OpenParams {
        cfg_a,
        cfg_b,
        ..OpenParams::new(seed)
    };
    Pair::open_funded(&p, make_tx)
}

/// A stand-in funding transaction spending the made-up `coin`: output [`FUNDING_VOUT`] pays
/// `value` to `script_pubkey`, output 0 pays someone else.
pub fn funding_tx_spending(coin: OutPoint, script_pubkey: ScriptBuf, value: Amount) -> Transaction {
    Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: coin,
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

/// [`funding_tx_spending`] the default coin of [`OpenParams::new`].
pub fn funding_tx(script_pubkey: ScriptBuf, value: Amount) -> Transaction {
    funding_tx_spending(OpenParams::new(0).funding_coin, script_pubkey, value)
}

fn mirrored(s: &Spec) -> Spec {
    Spec {
        to_us_msat: s.to_them_msat,
        to_them_msat: s.to_us_msat,
        offered_by_us: s.offered_by_them.clone(),
        offered_by_them: s.offered_by_us.clone(),
        feerate_per_kw: s.feerate_per_kw,
    }
}

impl Pair {
    /// Two endpoints, nothing in flight, immediate acknowledgements, no message delays.
    pub fn new(a: Endpoint, b: Endpoint, seed: u64) -> Pair {
        Pair {
            a,
            b,
            links: Links::new(0),
            clock: Clock::new(0),
            rng: SimRng::derive(seed, "pair scheduler"),
            transcript: Transcript::new(),
            ack: AckPolicy::Immediate,
            checks: Checks::EveryRound,
            quiet_checks: 0,
        }
    }

    /// Open a channel: `open_channel` … `channel_ready` both ways, checking each stage; the
    /// stand-in funding transaction spends `p.funding_coin` and confirms at `p.height + 10`.
    pub fn open(p: OpenParams) -> Result<Pair, ChannelError> {
        let coin = p.funding_coin;
        let (mut pair, tx) =
            Pair::open_funded(&p, |script, value| funding_tx_spending(coin, script, value))?;
        let h = p.height + 10;
        for e in [&mut pair.a, &mut pair.b] {
            e.ch.handle_funding_confirmed(h, FUNDING_TX_INDEX, &tx)?;
            e.ch.handle_block(h)?;
        }
        pair.run();
        if pair.b.config.minimum_depth > 1 {
            assert_eq!(pair.a.ch.state().phase, Phase::AwaitingReady, "depth 1");
        }
        for e in [&mut pair.a, &mut pair.b] {
            e.ch.handle_block(h + 2)?;
        }
        pair.run();
        assert_eq!(pair.a.ch.state().phase, Phase::Normal);
        assert_eq!(pair.b.ch.state().phase, Phase::Normal);
        assert!(pair.a.events.contains(&Event::ChannelReady));
        Ok(pair)
    }

    /// Open up to both commitments 0 signed (phase `AwaitingReady`, nothing confirmed):
    /// the opener funds with `make_tx(script, value)`, at output [`FUNDING_VOUT`].
    pub fn open_funded(
        p: &OpenParams,
        make_tx: impl FnOnce(ScriptBuf, Amount) -> Transaction,
    ) -> Result<(Pair, Transaction), ChannelError> {
        let mut ent = SimRng::new(p.seed);
        let fees = FixedFees(p.feerate);
        let (ka, kb) = (SeedKeySource::new([1u8; 32]), SeedKeySource::new([2u8; 32]));
        let cha = Channel::new_outbound(
            &ka,
            &mut ent,
            &fees,
            p.cfg_a.clone(),
            CHAIN,
            p.funding_sat,
            p.push_msat,
            p.height,
        )?;
        let mut a = Endpoint::new("a", cha, ka, p.cfg_a.clone());
        let Some(open @ Message::OpenChannel(_)) = a.outgoing().pop() else {
            panic!("not open_channel")
        };
        let Message::OpenChannel(o) = &open else {
            unreachable!()
        };
        let chb = Channel::new_inbound(&kb, &mut ent, &fees, p.cfg_b.clone(), CHAIN, o, p.height)?;
        let b = Endpoint::new("b", chb, kb, p.cfg_b.clone());
        let mut pair = Pair::new(a, b, p.seed);
        pair.checks = p.checks;
        if p.checks == Checks::Off {
            for e in [&mut pair.a, &mut pair.b] {
                e.store.durable_mut().through_codec = false;
            }
        }
        pair.transcript.record("a>b", &open.encode());
        pair.run();
        let Some(Event::FundingGenerationReady {
            script_pubkey,
            value,
        }) = pair.a.events.pop()
        else {
            panic!("no funding event")
        };
        assert_eq!(value.to_sat(), p.funding_sat);
        let tx = make_tx(script_pubkey, value);
        let outpoint = OutPoint {
            txid: tx.compute_txid(),
            vout: FUNDING_VOUT,
        };
        pair.a.ch.handle_funding_tx(outpoint)?;
        pair.run();
        assert!(pair.a.events.contains(&Event::FundingSigned { outpoint }));
        assert_eq!(pair.a.ch.channel_id(), pair.b.ch.channel_id());
        assert_eq!(pair.b.ch.state().phase, Phase::AwaitingReady);
        Ok((pair, tx))
    }

    /// Endpoint `i` (0 = a, 1 = b).
    pub fn end(&mut self, i: usize) -> &mut Endpoint {
        if i == 0 {
            &mut self.a
        } else {
            &mut self.b
        }
    }

    /// Endpoint `i`, shared.
    pub fn end_ref(&self, i: usize) -> &Endpoint {
        if i == 0 {
            &self.a
        } else {
            &self.b
        }
    }

    /// The hash of the whole run: deliveries, and both sides' events, restarts and crashes.
    pub fn transcript_hash(&self) -> [u8; 32] {
        let mut e = sha256::Hash::engine();
        for t in [&self.transcript, &self.a.transcript, &self.b.transcript] {
            e.input(&t.hash());
        }
        sha256::Hash::from_engine(e).to_byte_array()
    }

    /// After an input to side `i`: hand out its batches, acknowledge them as the policy
    /// says, and queue the released messages on the link (encoded, with a random delay).
    pub fn flush(&mut self, i: usize) {
        let (e, links, rng, now) = match i {
            0 => (
                &mut self.a,
                &mut self.links,
                &mut self.rng,
                self.clock.now(),
            ),
            _ => (
                &mut self.b,
                &mut self.links,
                &mut self.rng,
                self.clock.now(),
            ),
        };
        e.hand_out();
        match self.ack {
            AckPolicy::Immediate => e.ack_all(),
            AckPolicy::Random(p) => {
                while e.store.pending_len() > 0 && rng.percent(p) {
                    e.ack_next();
                }
            }
        }
        while let Some(m) = e.ch.poll_message() {
            links.send(i, 1 - i, m.encode(), now, rng);
        }
    }

    /// Acknowledge every pending batch of side `i` and queue what that releases.
    pub fn ack(&mut self, i: usize) {
        self.end(i).ack_all();
        self.flush(i);
    }

    /// Hand one delivery to its receiver (through the codec) and flush the receiver.
    pub fn deliver(&mut self, d: Delivery) -> Result<(), ChannelError> {
        let label = if d.from == 0 { "a>b" } else { "b>a" };
        self.transcript.record(label, &d.bytes);
        let m = Message::decode(&d.bytes).expect("a delivered message decodes");
        let r = self.end(d.to).ch.handle_message(&m);
        self.flush(d.to);
        r
    }

    /// Deliver the head of a random ready link (a peer's protocol error panics). False if
    /// no link is ready at the current time.
    pub fn deliver_random(&mut self) -> bool {
        let now = self.clock.now();
        let Some(d) = self.links.pop_random(now, &mut self.rng) else {
            return false;
        };
        let (from, to) = (d.from, d.to);
        if let Err(e) = self.deliver(d) {
            panic!("delivery {from}->{to} refused: {e}");
        }
        true
    }

    /// Advance the clock to the next message's due time, if anything is in flight.
    pub fn advance_to_next_due(&mut self) {
        if let Some(t) = self.links.next_due() {
            self.clock.advance_to(t);
        }
    }

    /// Deliver in order until quiet, acknowledging every write and letting each side
    /// commit whenever it can: all of a → b, then all of b → a, then commitments; repeat.
    /// Checks [`Pair::check_step`] each round and [`Pair::check_views`] once quiet.
    pub fn run(&mut self) {
        for _ in 0..1000 {
            let mut progressed = false;
            for i in 0..2 {
                self.end(i).ack_all();
                self.flush(i);
            }
            for from in 0..2 {
                while let Some(d) = self.links.pop(from, 1 - from, u64::MAX) {
                    if let Err(e) = self.deliver(d) {
                        panic!("delivery {from}->{} refused: {e}", 1 - from);
                    }
                    progressed = true;
                }
            }
            for i in 0..2 {
                if self.end(i).ch.can_send_commitment() {
                    self.end(i).ch.send_commitment().unwrap();
                    self.flush(i);
                    progressed = true;
                }
            }
            if self.checks == Checks::EveryRound {
                self.check_step();
                self.a.check_restores();
                self.b.check_restores();
            }
            if !progressed && self.links.is_empty() {
                if self.checks != Checks::Off {
                    self.check_if_quiet();
                }
                return;
            }
        }
        panic!("no quiescence");
    }

    /// Drop the link: both channels learn it, everything in flight is lost both ways.
    pub fn disconnect(&mut self) {
        for i in 0..2 {
            self.end(i).ch.handle_disconnect();
            self.flush(i);
        }
        let n = self.links.disconnect(0, 1);
        self.transcript
            .record("disconnect", &(n as u64).to_be_bytes());
    }

    /// Both sides reconnect and queue `channel_reestablish`.
    pub fn reconnect(&mut self) {
        for i in 0..2 {
            self.end(i).ch.handle_reconnect().unwrap();
            self.flush(i);
        }
    }

    /// Disconnect, restart side `i` from its durable records (`crash`: losing its pending
    /// batches), reconnect. Returns the number of batches lost.
    pub fn restart(&mut self, i: usize, crash: bool) -> usize {
        self.disconnect();
        let lost = self.end(i).restart(crash);
        self.reconnect();
        lost
    }

    /// Nothing in flight, nothing pending, no update or signature outstanding.
    pub fn is_quiet(&self) -> bool {
        self.links.is_empty()
            && [&self.a, &self.b]
                .iter()
                .all(|e| e.store.pending_len() == 0 && e.ch.is_quiescent())
    }

    /// [`Pair::check_views`] if the pair is quiet and both channels are in normal operation.
    pub fn check_if_quiet(&mut self) {
        let normal = |e: &Endpoint| e.ch.state().phase == Phase::Normal;
        if self.is_quiet() && normal(&self.a) && normal(&self.b) {
            self.check_views();
            self.quiet_checks += 1;
        }
    }

    /// Invariants that hold after any step, for each side: every commitment (ours, theirs,
    /// their next) holds exactly the capacity; we never hold a signature on a state the
    /// peer revoked.
    pub fn check_step(&self) {
        for e in [&self.a, &self.b] {
            let st = e.ch.state();
            let cap = st.setup.funding_sat * 1000;
            let (Some(lc), Some(rc)) = (&st.local_commit, &st.remote_commit) else {
                continue;
            };
            assert_eq!(lc.spec.total_msat(), cap, "{}: value in ours", e.name);
            assert_eq!(rc.spec.total_msat(), cap, "{}: value in theirs", e.name);
            if let Some(n) = &st.remote_next {
                assert_eq!(n.spec.total_msat(), cap, "{}: value in next", e.name);
            }
            if let Some(idx) = st.remote_secrets.last_index() {
                let revoked = MAX_INDEX - idx;
                assert!(rc.number > revoked, "{}: signed a revoked state", e.name);
                if let Some(n) = &st.remote_next {
                    assert!(n.number > revoked);
                }
            }
        }
    }

    /// Both sides' views agree (call when quiet): [`check_channel_views`], and each side
    /// rebuilt from its records equals its live state.
    pub fn check_views(&self) {
        check_channel_views(&self.a.ch, &self.b.ch);
        self.a.check_restores();
        self.b.check_restores();
    }

    /// Quiet with no HTLC left: balances mirrored and summing to the capacity.
    pub fn check_mirror(&self) {
        let (a_us, a_them) = self.a.ch.balances_msat().unwrap();
        let (b_us, b_them) = self.b.ch.balances_msat().unwrap();
        assert_eq!(a_us, b_them);
        assert_eq!(a_them, b_us);
        let cap = self.a.ch.state().setup.funding_sat * 1000;
        assert_eq!(a_us + a_them, cap, "no HTLC left when quiet");
        assert!(self.a.ch.is_quiescent() && self.b.ch.is_quiescent());
    }
}

/// Both ends of one channel agree (call when neither has an update or signature
/// outstanding): each commitment as its holder and as the other side sees it (balances,
/// HTLC sets, feerate, number), both commitments of a side hold the same, HTLC ids line up,
/// balances mirror and value is conserved.
pub fn check_channel_views(a: &Channel, b: &Channel) {
    let (sa, sb) = (a.state(), b.state());
    let (Some(alc), Some(arc), Some(blc), Some(brc)) = (
        &sa.local_commit,
        &sa.remote_commit,
        &sb.local_commit,
        &sb.remote_commit,
    ) else {
        panic!("no commitments")
    };
    assert_eq!(sa.channel_id, sb.channel_id, "not the same channel");
    assert_eq!(alc.number, brc.number, "a's commitment number, both views");
    assert_eq!(blc.number, arc.number, "b's commitment number, both views");
    assert_eq!(alc.spec, mirrored(&brc.spec), "a's commitment, both views");
    assert_eq!(blc.spec, mirrored(&arc.spec), "b's commitment, both views");
    assert_eq!(alc.spec, arc.spec, "a: both commitments hold the same");
    assert_eq!(blc.spec, brc.spec, "b: both commitments hold the same");
    assert_eq!(
        sa.next_local_htlc_id, sb.next_remote_htlc_id,
        "a's next HTLC id"
    );
    assert_eq!(
        sb.next_local_htlc_id, sa.next_remote_htlc_id,
        "b's next HTLC id"
    );
    let (a_us, a_them) = a.balances_msat().unwrap_or_default();
    let (b_us, b_them) = b.balances_msat().unwrap_or_default();
    assert_eq!((a_us, a_them), (b_them, b_us), "balances mirrored");
    assert_eq!(alc.spec.total_msat(), sa.setup.funding_sat * 1000, "value");
}

/// The variant names of the records in `logs` (from their `Debug` form).
pub fn record_kinds(logs: &[&[Record]]) -> BTreeSet<String> {
    logs.iter()
        .flat_map(|l| l.iter())
        .map(|r| {
            let d = format!("{r:?}");
            d.split(|c: char| !c.is_alphanumeric())
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// An all-zero onion (the channel does not peel onions).
pub fn onion() -> OnionPacket {
    OnionPacket(Box::new([0u8; ONION_PACKET_LEN]))
}

/// The test convention's preimage number `n`.
pub fn preimage(n: u64) -> PaymentPreimage {
    let mut p = [0u8; 32];
    p[..8].copy_from_slice(&n.to_be_bytes());
    p[31] = 0xaa;
    PaymentPreimage(p)
}

/// The payment hash of a preimage.
pub fn hash_of(p: &PaymentPreimage) -> PaymentHash {
    p.payment_hash()
}

/// Payee side: fulfill every received HTLC (the payer encoded the preimage number in the
/// cltv: `500 + n`), keeping the other events.
pub fn fulfill_received(p: &mut Endpoint) {
    let evs: Vec<Event> = std::mem::take(&mut p.events);
    for e in evs {
        if let Event::HtlcReceived { id, htlc, .. } = e {
            let pre = preimage(u64::from(htlc.cltv_expiry - 500));
            assert_eq!(hash_of(&pre), htlc.payment_hash);
            p.ch.fulfill_htlc(id, pre).unwrap();
        } else {
            p.events.push(e);
        }
    }
}
