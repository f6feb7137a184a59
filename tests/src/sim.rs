//! The generic parts of the deterministic simulation harness, shared by the two-channel
//! [`crate::pair`] harness and the manager network: seeded entropy ([`SimRng`]), a virtual
//! clock ([`Clock`]), a fixed fee estimator ([`FixedFees`]), a transcript hash
//! ([`Transcript`]), a seeded message scheduler between endpoints ([`Links`]) and a durable
//! log that models a crash ([`DurableLog`]).
//!
//! Owns: nothing about channels or managers; endpoints are plain indices (`usize`) and
//! messages plain bytes. Must never: read the wall clock, sleep, or use an unseeded RNG —
//! the same seed must give the same run.

use std::collections::{BTreeMap, VecDeque};

use bitcoin::hashes::{sha256, Hash, HashEngine};
use fulmen_channel::machine::{Entropy, FeeEstimator};
use rand::{Rng as _, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Seeded entropy (ChaCha20): the only randomness a simulation uses.
pub struct SimRng(ChaCha20Rng);

impl SimRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> SimRng {
        SimRng(ChaCha20Rng::seed_from_u64(seed))
    }

    /// An independent generator for one purpose (`label`) of run `seed`: SHA256 of both is
    /// the ChaCha20 key, so adding a consumer of one stream never shifts another.
    pub fn derive(seed: u64, label: &str) -> SimRng {
        let mut e = sha256::Hash::engine();
        e.input(&seed.to_be_bytes());
        e.input(label.as_bytes());
        SimRng(ChaCha20Rng::from_seed(
            sha256::Hash::from_engine(e).to_byte_array(),
        ))
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.gen_range(0..n)
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u32) -> bool {
        self.0.gen_range(0..100u32) < percent
    }

    /// 32 random bytes.
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        self.0.fill_bytes(&mut b);
        b
    }
}

impl RngCore for SimRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.0.try_fill_bytes(dest)
    }
}

impl Entropy for SimRng {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
}

/// A virtual clock (seconds); only the test moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    now: u64,
}

impl Clock {
    /// A clock reading `start`.
    pub fn new(start: u64) -> Clock {
        Clock { now: start }
    }

    /// The current time.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Move forward by `secs`.
    pub fn advance(&mut self, secs: u64) {
        self.now += secs;
    }

    /// Move forward to `t` if it is later (never backwards).
    pub fn advance_to(&mut self, t: u64) {
        self.now = self.now.max(t);
    }
}

/// A fee estimator that always answers the same feerate (sat per 1000 weight).
#[derive(Debug, Clone, Copy)]
pub struct FixedFees(pub u32);

impl FeeEstimator for FixedFees {
    fn feerate_per_kw(&self) -> u32 {
        self.0
    }
}

/// SHA256 over everything observable in a run (delivered messages, events, crashes,
/// restarts), each entry framed as `kind-len kind data-len data`: two runs with equal
/// hashes saw the same things in the same order.
#[derive(Clone)]
pub struct Transcript {
    engine: sha256::HashEngine,
    entries: u64,
}

impl Default for Transcript {
    fn default() -> Self {
        Transcript::new()
    }
}

impl Transcript {
    /// An empty transcript.
    pub fn new() -> Transcript {
        Transcript {
            engine: sha256::Hash::engine(),
            entries: 0,
        }
    }

    /// Append one entry.
    pub fn record(&mut self, kind: &str, data: &[u8]) {
        self.engine.input(&(kind.len() as u64).to_be_bytes());
        self.engine.input(kind.as_bytes());
        self.engine.input(&(data.len() as u64).to_be_bytes());
        self.engine.input(data);
        self.entries += 1;
    }

    /// How many entries were recorded.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The hash of everything recorded so far.
    pub fn hash(&self) -> [u8; 32] {
        sha256::Hash::from_engine(self.engine.clone()).to_byte_array()
    }
}

/// One message in flight.
#[derive(Debug, Clone)]
struct InFlight {
    due: u64,
    bytes: Vec<u8>,
}

/// A message taken off a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Sending endpoint.
    pub from: usize,
    /// Receiving endpoint.
    pub to: usize,
    /// The encoded message.
    pub bytes: Vec<u8>,
}

/// The seeded delivery scheduler: one FIFO per directed link (TCP-like: in order within a
/// link), a random delay per message (a message never overtakes the one before it on its
/// link), a random choice of which ready link delivers next (reordering across links), and
/// disconnects that drop whatever is in flight both ways.
#[derive(Debug, Clone, Default)]
pub struct Links {
    queues: BTreeMap<(usize, usize), VecDeque<InFlight>>,
    /// Largest delay a message gets (0: due at once).
    pub max_delay: u64,
    sent: u64,
    dropped: u64,
}

impl Links {
    /// No messages in flight; each message is delayed by `0..=max_delay`.
    pub fn new(max_delay: u64) -> Links {
        Links {
            max_delay,
            ..Links::default()
        }
    }

    /// Queue `bytes` from `from` to `to`, sent at `now`.
    pub fn send(&mut self, from: usize, to: usize, bytes: Vec<u8>, now: u64, rng: &mut SimRng) {
        let delay = if self.max_delay == 0 {
            0
        } else {
            rng.below(self.max_delay + 1)
        };
        self.sent += 1;
        self.queues
            .entry((from, to))
            .or_default()
            .push_back(InFlight {
                due: now + delay,
                bytes,
            });
    }

    /// True when nothing is in flight anywhere.
    pub fn is_empty(&self) -> bool {
        self.queues.values().all(VecDeque::is_empty)
    }

    /// Messages in flight from `from` to `to`.
    pub fn in_flight(&self, from: usize, to: usize) -> usize {
        self.queues.get(&(from, to)).map_or(0, VecDeque::len)
    }

    /// Messages sent so far, and dropped by disconnects.
    pub fn counts(&self) -> (u64, u64) {
        (self.sent, self.dropped)
    }

    /// The head of link `from → to`, if it is due at `now`.
    pub fn pop(&mut self, from: usize, to: usize, now: u64) -> Option<Delivery> {
        let q = self.queues.get_mut(&(from, to))?;
        if q.front()?.due > now {
            return None;
        }
        let m = q.pop_front()?;
        Some(Delivery {
            from,
            to,
            bytes: m.bytes,
        })
    }

    /// The head of a link chosen uniformly among those whose head is due at `now`.
    pub fn pop_random(&mut self, now: u64, rng: &mut SimRng) -> Option<Delivery> {
        let ready: Vec<(usize, usize)> = self
            .queues
            .iter()
            .filter(|(_, q)| q.front().is_some_and(|m| m.due <= now))
            .map(|(k, _)| *k)
            .collect();
        if ready.is_empty() {
            return None;
        }
        let (from, to) = ready[rng.below(ready.len() as u64) as usize];
        self.pop(from, to, now)
    }

    /// When the earliest head of any link becomes due.
    pub fn next_due(&self) -> Option<u64> {
        self.queues
            .values()
            .filter_map(|q| q.front().map(|m| m.due))
            .min()
    }

    /// Drop everything in flight between `a` and `b`, both ways; returns how many.
    pub fn disconnect(&mut self, a: usize, b: usize) -> usize {
        let mut n = 0;
        for k in [(a, b), (b, a)] {
            if let Some(q) = self.queues.get_mut(&k) {
                n += q.len();
                q.clear();
            }
        }
        self.dropped += n as u64;
        n
    }

    /// Drop everything in flight to or from `a`; returns how many.
    pub fn isolate(&mut self, a: usize) -> usize {
        let peers: Vec<usize> = self
            .queues
            .keys()
            .filter_map(|&(f, t)| (f == a).then_some(t).or((t == a).then_some(f)))
            .collect();
        peers.into_iter().map(|p| self.disconnect(a, p)).sum()
    }
}

/// What an endpoint keeps durably: batches are applied to it in order.
pub trait Store: Default {
    /// One batch of writes.
    type Batch: Clone;
    /// Apply one durable batch.
    fn apply(&mut self, batch: &Self::Batch);
}

impl<R: Clone> Store for Vec<R> {
    type Batch = Vec<R>;
    fn apply(&mut self, batch: &Vec<R>) {
        self.extend(batch.iter().cloned());
    }
}

/// An endpoint's storage, modelling a crash: a batch handed out by `poll_persist` is
/// pending until the harness acknowledges it (written in order, oldest first); a crash
/// loses every pending batch, and a restart sees only [`DurableLog::durable`].
pub struct DurableLog<S: Store> {
    durable: S,
    pending: VecDeque<(u64, S::Batch)>,
    acked: u64,
    lost: u64,
    /// What survives power loss, if tracked ([`DurableLog::with_power_loss`]).
    power: Option<PowerLoss<S>>,
}

/// The part of a [`DurableLog`] that survives power loss: every batch up to the last one
/// written synced, and the batches acknowledged unsynced since (lost with the power).
struct PowerLoss<S: Store> {
    synced: S,
    unsynced: Vec<S::Batch>,
}

impl<S: Store> Default for DurableLog<S> {
    fn default() -> Self {
        DurableLog {
            durable: S::default(),
            pending: VecDeque::new(),
            acked: 0,
            lost: 0,
            power: None,
        }
    }
}

impl<S: Store> DurableLog<S> {
    /// An empty log.
    pub fn new() -> DurableLog<S> {
        DurableLog::default()
    }

    /// An empty log that also tracks what survives power loss: a batch acknowledged
    /// unsynced ([`DurableLog::ack_next_with`]) survives a crash of the process, and power
    /// loss only once a later batch was written synced.
    pub fn with_power_loss() -> DurableLog<S> {
        DurableLog {
            power: Some(PowerLoss {
                synced: S::default(),
                unsynced: Vec::new(),
            }),
            ..DurableLog::default()
        }
    }

    /// Make the oldest pending batch durable, synced (`sync`: it survives power loss, and
    /// so does every batch before it) or not; returns its id.
    pub fn ack_next_with(&mut self, sync: bool) -> Option<u64> {
        let (id, batch) = self.pending.pop_front()?;
        self.durable.apply(&batch);
        self.acked += 1;
        if let Some(p) = &mut self.power {
            if sync {
                for b in p.unsynced.drain(..) {
                    p.synced.apply(&b);
                }
                p.synced.apply(&batch);
            } else {
                p.unsynced.push(batch);
            }
        }
        Some(id)
    }

    /// Power loss: every pending batch and every batch acknowledged unsynced since the last
    /// synced one is lost; returns how many. Panics unless the log tracks power loss.
    pub fn power_loss(&mut self) -> usize
    where
        S: Clone,
    {
        let pending = self.crash().len();
        let p = self
            .power
            .as_mut()
            .expect("a log made with DurableLog::with_power_loss");
        let unsynced = p.unsynced.len();
        p.unsynced.clear();
        self.durable = p.synced.clone();
        self.lost += unsynced as u64;
        pending + unsynced
    }

    /// Batches acknowledged unsynced since the last synced one (0 unless tracked).
    pub fn unsynced_len(&self) -> usize {
        self.power.as_ref().map_or(0, |p| p.unsynced.len())
    }

    /// What survives a crash.
    pub fn durable(&self) -> &S {
        &self.durable
    }

    /// The durable part, to configure it (not to write: use [`DurableLog::write`]).
    pub fn durable_mut(&mut self) -> &mut S {
        &mut self.durable
    }

    /// A batch was handed out for writing (not durable yet).
    pub fn hand_out(&mut self, id: u64, batch: S::Batch) {
        self.pending.push_back((id, batch));
    }

    /// Write a batch synchronously (durable at once).
    pub fn write(&mut self, batch: &S::Batch) {
        self.durable.apply(batch);
    }

    /// Batches handed out and not yet durable, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &(u64, S::Batch)> {
        self.pending.iter()
    }

    /// Number of pending batches.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Make the oldest pending batch durable (synced); returns its id.
    pub fn ack_next(&mut self) -> Option<u64> {
        self.ack_next_with(true)
    }

    /// A crash: every pending batch is lost; returns them.
    pub fn crash(&mut self) -> Vec<(u64, S::Batch)> {
        let lost: Vec<_> = self.pending.drain(..).collect();
        self.lost += lost.len() as u64;
        lost
    }

    /// Batches acknowledged, and lost in crashes, so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.acked, self.lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_fifo_per_link_and_drop_on_disconnect() {
        let mut rng = SimRng::new(1);
        let mut l = Links::new(5);
        for i in 0..20u8 {
            l.send(0, 1, vec![i], 0, &mut rng);
            l.send(1, 0, vec![100 + i], 0, &mut rng);
        }
        let mut got = (vec![], vec![]);
        let mut now = 0;
        while !l.is_empty() {
            match l.pop_random(now, &mut rng) {
                Some(d) if d.from == 0 => got.0.push(d.bytes[0]),
                Some(d) => got.1.push(d.bytes[0]),
                None => now = l.next_due().unwrap(),
            }
        }
        assert_eq!(got.0, (0..20).collect::<Vec<u8>>());
        assert_eq!(got.1, (100..120).collect::<Vec<u8>>());
        l.send(0, 1, vec![1], now, &mut rng);
        l.send(1, 0, vec![2], now, &mut rng);
        l.send(2, 0, vec![3], now, &mut rng);
        assert_eq!(l.disconnect(1, 0), 2);
        assert_eq!(l.isolate(0), 1);
        assert!(l.is_empty());
    }

    #[test]
    fn durable_log_loses_only_pending_batches() {
        let mut log: DurableLog<Vec<u8>> = DurableLog::new();
        log.hand_out(0, vec![1, 2]);
        log.hand_out(1, vec![3]);
        assert_eq!(log.ack_next(), Some(0));
        log.hand_out(2, vec![4]);
        assert_eq!(log.crash().len(), 2);
        assert_eq!(log.durable(), &vec![1, 2]);
        assert_eq!(log.counts(), (1, 2));
    }

    #[test]
    fn seeded_entropy_and_transcript_are_deterministic() {
        assert_eq!(SimRng::new(3).bytes32(), SimRng::new(3).bytes32());
        assert_ne!(
            SimRng::derive(3, "a").bytes32(),
            SimRng::derive(3, "b").bytes32()
        );
        let mut t = Transcript::new();
        t.record("x", b"ab");
        let mut u = Transcript::new();
        u.record("xa", b"b");
        assert_ne!(t.hash(), u.hash(), "entries are framed");
    }
}
