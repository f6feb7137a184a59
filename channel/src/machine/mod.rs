//! The BOLT 2 channel state machine, sans-IO, in the quinn style.
//!
//! Owns: the [`Channel`] type (inputs `handle_*` and commands, outputs `poll_*`), the update
//! records it persists through ([`Record`]), the persist-before-send rule, and the typed
//! outputs: why a channel closed ([`CloseReason`]), what a broadcast is ([`Broadcast`]),
//! whose fault an error is ([`ChannelError`]). Payments are named by
//! [`fulmen_htlc::PaymentHash`] / [`fulmen_htlc::PaymentPreimage`]. Must never do I/O, read
//! a clock or a global RNG, release a message before the records it depends on were
//! acknowledged durable (the one exception, [`ChannelConfig::early_fulfill`], is an
//! `update_fulfill_htlc`, which binds no one until a later signature and revocation that
//! do wait), or trust a funding output it has not checked.
//!
//! Submodules: [`traits`] (key source, entropy, fee estimator), [`params`] (config and
//! BOLT 2 parameter checks), [`state`] (persistent state, records, `apply`), [`codec`]
//! (record persistence format), [`close`] (close reasons, broadcasts), `commit`
//! (building/signing/verifying commitments), `opening` (opening, funding confirmation and
//! its verification, `channel_ready`), `normal` (HTLC updates, commitments, revocations),
//! `fee` (`update_fee`, `update_fail_malformed_htlc`), `reestablish` and `shutdown`
//! (cooperative close).

pub mod close;
pub mod codec;
pub(crate) mod commit;
mod dust;
pub mod error;
mod fee;
mod normal;
mod opening;
pub mod params;
mod reestablish;
mod shutdown;
pub mod state;
pub mod traits;

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use bitcoin::secp256k1::{All, PublicKey, Secp256k1};
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction};
use fulmen_htlc::PaymentPreimage;
use fulmen_wire::msgs::Message;
use fulmen_wire::ShortChannelId;

pub use crate::funding::FundingMismatch;
pub use close::{Broadcast, BroadcastKind, CloseReason};
pub use codec::RecordCodecError;
pub use error::ChannelError;
pub use params::{ChannelConfig, SideParams};
pub use state::{ChannelState, HtlcInfo, Phase, Record, Spec, Update};
pub use traits::{ChannelSecrets, Entropy, FeeEstimator, KeySource, SeedKeySource};

use crate::keys::{per_commitment_point, ChannelBasepoints};
use crate::shachain::{generate_from_seed, MAX_INDEX};
use error::internal;

/// Something the application should know or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Opener: build a transaction paying `value` to `script_pubkey` (do NOT broadcast it
    /// yet) and hand its outpoint to [`Channel::handle_funding_tx`].
    FundingGenerationReady {
        /// The P2WSH 2-of-2 script.
        script_pubkey: ScriptBuf,
        /// The capacity.
        value: Amount,
    },
    /// Opener: our commitment 0 is signed by the peer; broadcasting the funding is safe.
    FundingSigned {
        /// The funding outpoint.
        outpoint: OutPoint,
    },
    /// `channel_ready` went both ways: payments may flow.
    ChannelReady,
    /// An HTLC offered by the peer is irrevocably committed: fulfill, fail or forward it.
    HtlcReceived {
        /// Its id.
        id: u64,
        /// The HTLC.
        htlc: HtlcInfo,
        /// Its onion (peel it to learn whether to settle or forward, and to build a
        /// failure).
        onion: fulmen_wire::msgs::OnionPacket,
    },
    /// An HTLC offered by the peer is irrevocably committed, but counting it would put a
    /// commitment's dust exposure above [`ChannelConfig::max_dust_htlc_exposure_msat`]
    /// (BOLT 2): fail it back with [`Channel::fail_htlc`] (`temporary_channel_failure`);
    /// never fulfill or forward it. Emitted instead of [`Event::HtlcReceived`]. The channel
    /// cannot build the failure onion itself (it has no onion shared secret), hence an event.
    HtlcMustFail {
        /// Its id.
        id: u64,
        /// The HTLC.
        htlc: HtlcInfo,
        /// Its onion (for the failure's shared secret).
        onion: fulmen_wire::msgs::OnionPacket,
    },
    /// The peer fulfilled an HTLC we offered (the preimage is valid).
    HtlcFulfilled {
        /// Our HTLC id.
        id: u64,
        /// The preimage.
        preimage: PaymentPreimage,
    },
    /// The peer's failure of an HTLC we offered is irrevocably committed.
    HtlcFailed {
        /// Our HTLC id.
        id: u64,
        /// The encrypted failure onion.
        reason: Vec<u8>,
    },
    /// The peer's `update_fail_malformed_htlc` of an HTLC we offered is irrevocably
    /// committed.
    HtlcFailedMalformed {
        /// Our HTLC id.
        id: u64,
        /// SHA256 of the onion the peer could not parse.
        sha256_of_onion: [u8; 32],
        /// BOLT 4 failure code (BADONION set).
        failure_code: u16,
    },
    /// The peer sent `shutdown`: answer with [`Channel::shutdown`] (no new HTLCs either way).
    ShutdownReceived,
    /// The channel closed; see [`Channel::poll_broadcast`] for what to broadcast (the
    /// reason says whether anything was).
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// A batch of records to make durable; its messages are released by
/// [`Channel::persisted`]`(id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistBatch {
    /// Batch id (acknowledge with [`Channel::persisted`]).
    pub id: u64,
    /// The records, in order; append them to the channel's log.
    pub records: Vec<Record>,
}

/// Connection state of the peer link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Connected and in sync.
    Up,
    /// Disconnected (or just restored): call `handle_reconnect` when the peer is back.
    Down,
    /// Our `channel_reestablish` is out; waiting for the peer's.
    Reestablishing,
}

#[derive(Debug)]
struct Batch {
    id: u64,
    records: Vec<Record>,
    messages: Vec<Message>,
    handed_out: bool,
    durable: bool,
}

/// One channel with one peer.
///
/// # Call order
/// 1. Create with [`Channel::new_outbound`] (we open) or [`Channel::new_inbound`] (the
///    peer's `open_channel`), or rebuild with [`Channel::restore`] from the records.
/// 2. Feed inputs: [`Channel::handle_message`] (peer messages), [`Channel::handle_block`]
///    (every new tip height) and [`Channel::handle_funding_confirmed`]`(height, tx_index,
///    &tx)` (the block holding the funding transaction: the channel checks the output at
///    the funding outpoint is the agreed 2-of-2 for the capacity and derives its
///    [`ShortChannelId`]; a mismatch fails it with [`CloseReason::FundingMismatch`]), and
///    commands ([`Channel::handle_funding_tx`], [`Channel::add_htlc`],
///    [`Channel::fulfill_htlc`], [`Channel::fail_htlc`], [`Channel::send_commitment`],
///    [`Channel::update_fee`], [`Channel::shutdown`]). Payments are named by
///    [`fulmen_htlc::PaymentHash`] and settled with [`fulmen_htlc::PaymentPreimage`].
/// 3. After every input, drain the outputs:
///    - [`Channel::poll_persist`]: write the batch's records durably, then call
///      [`Channel::persisted`] with its id. **Persist-before-send**: the messages produced
///      with a batch (`commitment_signed`, `revoke_and_ack`, `funding_signed`, ...) are held
///      inside the channel and only become visible to [`Channel::poll_message`] once that
///      batch and every earlier one are acknowledged. There is no other way to get them —
///      except a lone `update_fulfill_htlc` with nothing of the channel still waiting ahead
///      of it, released at once unless [`ChannelConfig::early_fulfill`] is off (it commits
///      no one until the `commitment_signed` and `revoke_and_ack` after it, which wait).
///    - [`Channel::poll_message`]: send to the peer, in order.
///    - [`Channel::poll_event`]: application events ([`Event::Closed`] carries a
///      [`CloseReason`]).
///    - [`Channel::poll_broadcast`]: transactions to broadcast, each a [`Broadcast`] saying
///      what it is: the cooperative [`BroadcastKind::Closing`] transaction, or our own
///      [`BroadcastKind::Commitment`] after a failure (a force close — never record it as
///      a closing transaction).
///
/// A peer message that breaks the protocol returns [`ChannelError::Protocol`] and fails the
/// channel: an `error` is queued and the latest signed commitment is offered for broadcast.
/// A peer message we cannot answer because of our own failure returns
/// [`ChannelError::Internal`] and fails the channel the same way. A refused command returns
/// [`ChannelError::Command`] (or [`ChannelError::Internal`] if we failed) and changes
/// nothing — except [`Channel::send_commitment`], whose `Internal` failure (a commitment we
/// cannot build can never be sent) fails the channel. Each side may have at most
/// [`params::MAX_UNSIGNED_UPDATES`] updates outstanding before its `commitment_signed`: a
/// peer past it breaks the protocol, our commands past it are refused.
///
/// Records are increments (one per state change), plus a [`Record::Snapshot`] of the whole
/// state every [`ChannelConfig::snapshot_every`] records; `restore` replays them from the
/// first record or from a snapshot and yields a [`ChannelState`] equal to the original's.
pub struct Channel {
    state: ChannelState,
    secrets: ChannelSecrets,
    local_bp: ChannelBasepoints,
    secp: Secp256k1<All>,
    config: ChannelConfig,
    best_height: u32,
    batches: VecDeque<Batch>,
    next_batch_id: u64,
    outbox: VecDeque<Message>,
    events: VecDeque<Event>,
    broadcasts: VecDeque<Broadcast>,
    /// Fee of the last `closing_signed` we sent (negotiation is not persisted: BOLT 2
    /// restarts it after a reconnection).
    closing_sent_fee: Option<u64>,
    /// Connection state (not persisted: a restored channel starts `Down`).
    link: Link,
    /// Latest fee estimate ([`Channel::handle_fee_estimate`]), to judge `update_fee`.
    fee_estimate: u32,
    /// Updates accepted from the peer since its last `commitment_signed`, collapsed fee
    /// updates included; capped at [`params::MAX_UNSIGNED_UPDATES`]. Not persisted: the
    /// updates it counts are forgotten at the next reestablish anyway.
    remote_unsigned: usize,
    /// Our recently used per-commitment secrets and points (not persisted).
    points: Mutex<PointCache>,
    /// Records queued since the last snapshot (or since the first record).
    since_snapshot: u64,
    /// Records applied since this object was built: see [`Channel::state_version`].
    state_version: u64,
}

/// Our last few per-commitment secrets and points, by commitment number. Each costs up to
/// 48 SHA256 and a point multiplication, and one commitment round asks for the same number
/// several times (the next point in `revoke_and_ack`, then the secret and point to verify
/// that commitment, then the secret to revoke it). Both are functions of the seed and the
/// number, so an entry never goes stale; numbers only grow, so the few most recent suffice.
#[derive(Debug, Default)]
struct PointCache {
    entries: [Option<(u64, [u8; 32], PublicKey)>; POINT_CACHE_LEN],
    /// Slot the next insertion overwrites (round robin).
    next: usize,
}

const POINT_CACHE_LEN: usize = 4;

impl PointCache {
    fn get(&self, number: u64) -> Option<([u8; 32], PublicKey)> {
        self.entries
            .iter()
            .flatten()
            .find(|(n, _, _)| *n == number)
            .map(|(_, s, p)| (*s, *p))
    }

    fn insert(&mut self, number: u64, secret: [u8; 32], point: PublicKey) {
        self.entries[self.next] = Some((number, secret, point));
        self.next = (self.next + 1) % POINT_CACHE_LEN;
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// Our basepoints are the setup's (derived from `keys` when the channel was created;
    /// [`Channel::restore`] checks that `keys` still holds them).
    fn with_state(keys: &dyn KeySource, config: ChannelConfig, state: ChannelState) -> Channel {
        let secp = crate::keys::context();
        let secrets = keys.channel_secrets(&state.setup.key_id);
        let local_bp = state.setup.local.basepoints;
        Channel {
            fee_estimate: state.setup.feerate_per_kw,
            best_height: state.setup.created_height,
            state,
            secrets,
            local_bp,
            secp,
            config,
            batches: VecDeque::new(),
            next_batch_id: 0,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            broadcasts: VecDeque::new(),
            closing_sent_fee: None,
            link: Link::Up,
            remote_unsigned: 0,
            points: Mutex::new(PointCache::default()),
            since_snapshot: 0,
            state_version: 0,
        }
    }

    /// Rebuild a channel from its records (the first must be [`Record::Created`]). The
    /// rebuilt [`ChannelState`] equals the original's. Messages not yet sent before the
    /// restart are not regenerated (that is `channel_reestablish`'s job).
    pub fn restore(
        keys: &dyn KeySource,
        config: ChannelConfig,
        records: &[Record],
    ) -> Result<Channel, ChannelError> {
        let (first, rest) = records
            .split_first()
            .ok_or(ChannelError::Records("no records".into()))?;
        let mut state = match first {
            Record::Created(setup) => ChannelState::new((**setup).clone()),
            // What the store keeps of a channel once it dropped the records before a
            // snapshot.
            Record::Snapshot(state) => (**state).clone(),
            _ => {
                return Err(ChannelError::Records(
                    "first record is neither Created nor Snapshot".into(),
                ))
            }
        };
        for r in rest {
            state.apply(r)?;
        }
        let mut ch = Channel::with_state(keys, config, state);
        ch.since_snapshot = rest.len() as u64;
        if !ch.secrets.are_behind(&ch.secp, &ch.local_bp) {
            return Err(ChannelError::Records(
                "the key source does not hold this channel's keys".into(),
            ));
        }
        ch.link = Link::Down;
        Ok(ch)
    }

    /// The persistent state (compare two channels with it).
    pub fn state(&self) -> &ChannelState {
        &self.state
    }

    /// A number that changes whenever [`Channel::state`] does (it counts the records
    /// applied since this object was built): a caller that derives something from the state
    /// — a monitor's view — can skip the work while it is unchanged.
    pub fn state_version(&self) -> u64 {
        self.state_version
    }

    /// The channel id (temporary until the funding outpoint is known).
    pub fn channel_id(&self) -> [u8; 32] {
        self.state.channel_id
    }

    /// The short channel id, once the funding confirmed and its output was verified (see
    /// [`Channel::handle_funding_confirmed`]). `None` before, and for a channel whose
    /// confirmation was stored by record format version 1 (never verified).
    pub fn short_channel_id(&self) -> Option<ShortChannelId> {
        self.state.short_channel_id
    }

    /// Why the channel closed, once it did.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.state.closed_reason.as_ref()
    }

    /// Our balance and theirs in our current commitment, msat (HTLCs excluded).
    pub fn balances_msat(&self) -> Option<(u64, u64)> {
        self.state
            .local_commit
            .as_ref()
            .map(|c| (c.spec.to_us_msat, c.spec.to_them_msat))
    }

    /// True when the link is up and reestablished (commands are accepted).
    pub fn is_connected(&self) -> bool {
        self.link == Link::Up
    }

    /// True when no update or signature is outstanding in either direction.
    pub fn is_quiescent(&self) -> bool {
        let s = &self.state;
        s.local_changes == Default::default()
            && s.remote_changes == Default::default()
            && s.remote_next.is_none()
    }

    /// Next batch of records to persist, if any is not handed out yet.
    pub fn poll_persist(&mut self) -> Option<PersistBatch> {
        let b = self
            .batches
            .iter_mut()
            .find(|b| !b.handed_out && !b.durable)?;
        b.handed_out = true;
        Some(PersistBatch {
            id: b.id,
            records: b.records.clone(),
        })
    }

    /// Acknowledge that batch `id`'s records are durable; releases its messages once every
    /// earlier batch is acknowledged too.
    pub fn persisted(&mut self, id: u64) -> Result<(), ChannelError> {
        let b = self
            .batches
            .iter_mut()
            .find(|b| b.id == id && b.handed_out)
            .ok_or(ChannelError::Command(format!("no batch {id} handed out")))?;
        b.durable = true;
        self.release();
        Ok(())
    }

    /// True if a message waits for a batch to be acknowledged durable: writing the batches
    /// handed out must survive power loss before it may leave. False: nothing anyone will
    /// see depends on them yet.
    pub fn holds_messages(&self) -> bool {
        self.batches.iter().any(|b| !b.messages.is_empty())
    }

    /// Next message for the peer (only from acknowledged batches).
    pub fn poll_message(&mut self) -> Option<Message> {
        self.outbox.pop_front()
    }

    /// Next application event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Next transaction to broadcast, with what it is.
    pub fn poll_broadcast(&mut self) -> Option<Broadcast> {
        self.broadcasts.pop_front()
    }

    fn release(&mut self) {
        while self.batches.front().is_some_and(|b| b.durable) {
            if let Some(b) = self.batches.pop_front() {
                self.outbox.extend(b.messages);
            }
        }
    }

    fn queue(&mut self, mut records: Vec<Record>, messages: Vec<Message>) {
        if records.is_empty() && messages.is_empty() {
            return;
        }
        // Every state change is applied, then queued here with its records.
        self.state_version += records.len() as u64;
        // Every `snapshot_every` records, the batch ends with the whole state, so the store
        // can drop what came before and a restart replays a short tail.
        self.since_snapshot += records.len() as u64;
        let every = self.config.snapshot_every;
        if every > 0 && self.since_snapshot >= every {
            records.push(self.snapshot_record());
        }
        let id = self.next_batch_id;
        self.next_batch_id += 1;
        let mut messages = messages;
        if self.may_send_early(&messages) {
            self.outbox.extend(messages.drain(..));
        }
        self.batches.push_back(Batch {
            id,
            durable: records.is_empty(),
            records,
            messages,
            handed_out: false,
        });
        self.release();
    }

    /// Writes a snapshot of the whole state now if any record was written since the last
    /// one (a clean stop: the next start reads one record for this channel instead of up to
    /// `snapshot_every`). A batch of its own, with no message; the state does not change.
    pub fn compact(&mut self) {
        if self.since_snapshot == 0 {
            return;
        }
        let id = self.next_batch_id;
        self.next_batch_id += 1;
        let snapshot = self.snapshot_record();
        self.batches.push_back(Batch {
            id,
            durable: false,
            records: vec![snapshot],
            messages: Vec::new(),
            handed_out: false,
        });
    }

    /// Makes the next [`Channel::compact`] write a snapshot even if no record was written
    /// since the last one: the stored records are in an older format (see
    /// [`codec::is_json_record`]) and the snapshot rewrites them in the current one.
    pub fn mark_for_compaction(&mut self) {
        self.since_snapshot = self.since_snapshot.max(1);
    }

    /// A [`Record::Snapshot`] of the whole state; the count of records since one restarts.
    fn snapshot_record(&mut self) -> Record {
        self.since_snapshot = 0;
        Record::Snapshot(Box::new(self.state.clone()))
    }

    /// True if `messages` may leave before their records are durable: a lone
    /// `update_fulfill_htlc` ([`ChannelConfig::early_fulfill`]) with no earlier message of
    /// this channel still waiting for its batch.
    fn may_send_early(&self, messages: &[Message]) -> bool {
        self.config.early_fulfill
            && !messages.is_empty()
            && messages
                .iter()
                .all(|m| matches!(m, Message::UpdateFulfillHtlc(_)))
            && self.batches.iter().all(|b| b.messages.is_empty())
    }

    /// Apply `records`, then build the messages with `f` from the new state; on error the
    /// state is rolled back and nothing is queued. A record that does not apply here is
    /// our own failure (handlers validate before they emit records):
    /// [`ChannelError::Internal`].
    fn transact(
        &mut self,
        records: Vec<Record>,
        f: impl FnOnce(&Channel) -> Result<Vec<Message>, ChannelError>,
    ) -> Result<(), ChannelError> {
        let saved = self.state.clone();
        let res = records
            .iter()
            .try_for_each(|r| self.state.apply(r))
            .map_err(own_record_error)
            .and_then(|()| f(self));
        match res {
            Ok(msgs) => {
                self.queue(records, msgs);
                Ok(())
            }
            Err(e) => {
                self.state = saved;
                Err(e)
            }
        }
    }

    /// [`Self::transact`] for one `LocalUpdate` or `RemoteUpdate` record whose messages are
    /// already built: applying it checks the HTLC id before it changes anything, so no copy
    /// of the state is kept for a rollback (a copy per update made a turn of n new HTLCs
    /// copy a state holding up to n HTLCs, and their onions, n times).
    fn transact_update(
        &mut self,
        record: Record,
        messages: Vec<Message>,
    ) -> Result<(), ChannelError> {
        debug_assert!(matches!(
            record,
            Record::LocalUpdate(_) | Record::RemoteUpdate(_)
        ));
        self.state.apply(&record).map_err(own_record_error)?;
        self.queue(vec![record], messages);
        Ok(())
    }

    fn our_point(&self, number: u64) -> Result<PublicKey, ChannelError> {
        Ok(self.our_secret_and_point(number)?.1)
    }

    /// Our per-commitment secret and point of commitment `number`, from the cache or
    /// computed (and cached).
    fn our_secret_and_point(&self, number: u64) -> Result<([u8; 32], PublicKey), ChannelError> {
        if let Some(hit) = self.point_cache().get(number) {
            return Ok(hit);
        }
        let secret = self.compute_secret(number)?;
        let point = per_commitment_point(&self.secp, &secret).map_err(internal)?;
        self.point_cache().insert(number, secret, point);
        Ok((secret, point))
    }

    fn our_secret(&self, number: u64) -> Result<[u8; 32], ChannelError> {
        match self.point_cache().get(number) {
            Some((secret, _)) => Ok(secret),
            None => self.compute_secret(number),
        }
    }

    fn point_cache(&self) -> std::sync::MutexGuard<'_, PointCache> {
        // The cache holds no invariant a panic could break: a poisoned lock is still usable.
        self.points.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn compute_secret(&self, number: u64) -> Result<[u8; 32], ChannelError> {
        let idx = MAX_INDEX
            .checked_sub(number)
            .ok_or(internal("commitment number exhausted"))?;
        generate_from_seed(&self.secrets.commitment_seed, idx).map_err(internal)
    }

    fn check_open(&self) -> Result<(), ChannelError> {
        if self.state.phase == Phase::Closed {
            return Err(ChannelError::Closed);
        }
        Ok(())
    }

    /// Handle one message from the peer. A [`ChannelError::Protocol`] or
    /// [`ChannelError::Internal`] result has already failed the channel; so has the peer's
    /// `error` (returned as [`ChannelError::Protocol`], closed with
    /// [`CloseReason::PeerError`], no `error` sent back).
    pub fn handle_message(&mut self, msg: &Message) -> Result<(), ChannelError> {
        self.check_open()?;
        if self.link == Link::Down {
            return Err(ChannelError::Command(
                "link is down: handle_reconnect first".into(),
            ));
        }
        if let Message::Error(e) = msg {
            let text = close::bounded(&String::from_utf8_lossy(&e.data.0));
            self.fail_with(CloseReason::PeerError(text.clone()), true, false);
            return Err(ChannelError::Protocol(format!("peer sent error: {text}")));
        }
        let res = match (self.link, msg) {
            (_, Message::ChannelReestablish(m)) => self.on_channel_reestablish(m),
            (Link::Reestablishing, other) => Err(ChannelError::Protocol(format!(
                "message type {} before channel_reestablish",
                other.msg_type()
            ))),
            (_, msg) => self.dispatch(msg),
        };
        match &res {
            Err(ChannelError::Protocol(r)) => self.fail(CloseReason::ProtocolViolation(r.clone())),
            Err(ChannelError::Internal(r)) => self.fail(CloseReason::Internal(r.clone())),
            Ok(()) => self.maybe_start_closing()?,
            Err(_) => {}
        }
        res
    }

    fn dispatch(&mut self, msg: &Message) -> Result<(), ChannelError> {
        let is_update = matches!(
            msg,
            Message::UpdateAddHtlc(_)
                | Message::UpdateFulfillHtlc(_)
                | Message::UpdateFailHtlc(_)
                | Message::UpdateFailMalformedHtlc(_)
                | Message::UpdateFee(_)
        );
        if is_update && self.remote_unsigned >= params::MAX_UNSIGNED_UPDATES {
            return Err(ChannelError::Protocol(format!(
                "more than {} unsigned updates before commitment_signed",
                params::MAX_UNSIGNED_UPDATES
            )));
        }
        let res = self.dispatch_inner(msg);
        if res.is_ok() {
            if is_update {
                self.remote_unsigned += 1;
            } else if matches!(msg, Message::CommitmentSigned(_)) {
                self.remote_unsigned = 0;
            }
        }
        res
    }

    fn dispatch_inner(&mut self, msg: &Message) -> Result<(), ChannelError> {
        match msg {
            Message::AcceptChannel(m) => self.on_accept_channel(m),
            Message::FundingCreated(m) => self.on_funding_created(m),
            Message::FundingSigned(m) => self.on_funding_signed(m),
            Message::ChannelReady(m) => self.on_channel_ready(m),
            Message::UpdateAddHtlc(m) => self.on_update_add(m),
            Message::UpdateFulfillHtlc(m) => self.on_update_fulfill(m),
            Message::UpdateFailHtlc(m) => self.on_update_fail(m),
            Message::UpdateFailMalformedHtlc(m) => self.on_update_fail_malformed(m),
            Message::UpdateFee(m) => self.on_update_fee(m),
            Message::CommitmentSigned(m) => self.on_commitment_signed(m),
            Message::RevokeAndAck(m) => self.on_revoke_and_ack(m),
            Message::Shutdown(m) => self.on_shutdown(m),
            Message::ClosingSigned(m) => self.on_closing_signed(m),
            other => Err(ChannelError::Protocol(format!(
                "unexpected message type {}",
                other.msg_type()
            ))),
        }
    }

    /// Fail the channel: record it, queue an `error`, offer the latest signed commitment.
    fn fail(&mut self, reason: CloseReason) {
        self.fail_with(reason, true, true);
    }

    /// Close the channel for `reason`: record it; offer our latest signed commitment for
    /// broadcast if `broadcast` (and we hold one); queue an `error` with the reason's text
    /// if `notify`; report [`Event::Closed`].
    fn fail_with(&mut self, reason: CloseReason, broadcast: bool, notify: bool) {
        if broadcast {
            let number = self.state.local_commit.as_ref().map(|c| c.number);
            if let (Some(number), Ok(tx)) = (number, self.signed_local_commitment()) {
                self.broadcasts.push_back(Broadcast {
                    kind: BroadcastKind::Commitment { number },
                    tx,
                });
            }
        }
        let rec = Record::Closed(reason.clone());
        // Applying Closed cannot fail.
        let _ = self.state.apply(&rec);
        let msgs = if notify {
            let text = reason.to_string();
            vec![Message::Error(fulmen_wire::msgs::Error::text(
                self.state.channel_id,
                &text,
            ))]
        } else {
            vec![]
        };
        self.queue(vec![rec], msgs);
        self.events.push_back(Event::Closed { reason });
    }

    /// Force-close: record the close and offer our latest signed commitment for broadcast
    /// ([`BroadcastKind::Commitment`]). No `error` is queued: the caller tells the peer
    /// (with [`CloseReason::ForceClosed`]'s text) once the commitment is out, so the peer's
    /// own commitment does not race ours into the mempool. Refused before both commitments 0
    /// are signed (there is nothing to broadcast) and once closed.
    pub fn force_close(&mut self) -> Result<(), ChannelError> {
        self.check_open()?;
        if self.state.local_commit.is_none() {
            return Err(ChannelError::Command(
                "no signed commitment yet: nothing to broadcast".into(),
            ));
        }
        self.fail_with(CloseReason::ForceClosed, true, false);
        Ok(())
    }

    /// Our latest commitment, fully signed (both funding signatures), ready to broadcast.
    /// (After a failure the channel hands it out itself, as a
    /// [`BroadcastKind::Commitment`] from [`Channel::poll_broadcast`].)
    pub fn signed_local_commitment(&self) -> Result<Transaction, ChannelError> {
        let lc = self
            .state
            .local_commit
            .as_ref()
            .ok_or(ChannelError::Command("no commitment yet".into()))?;
        let point = self.our_point(lc.number)?;
        let built = commit::build(
            &self.secp,
            &self.state,
            &self.local_bp,
            true,
            lc.number,
            &point,
            &lc.spec,
        )?;
        let remote_funding = self.state.remote()?.basepoints.funding_pubkey;
        commit::signed_local(
            &self.secp,
            &built,
            &self.secrets,
            &self.local_bp.funding_pubkey,
            &remote_funding,
            &lc.remote_sig,
        )
    }
}

/// A record of ours that does not apply is our own failure: handlers validate before they
/// emit records.
fn own_record_error(e: ChannelError) -> ChannelError {
    match e {
        ChannelError::Records(s) => internal(format!("record does not apply: {s}")),
        other => other,
    }
}
