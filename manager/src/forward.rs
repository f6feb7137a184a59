//! Forwarding HTLCs: an incoming HTLC whose onion names a next channel is checked against
//! our policy for that channel (`fulmen_htlc::forward::check_forward`) and offered on it; the
//! link in → out is a [`ForwardRecord`] written in the same batch as the outgoing
//! `update_add_htlc`'s record. The downstream outcome comes back the same turn it arrives: a
//! preimage fulfills the incoming HTLC (or, if that channel is closed, goes to its monitor to
//! claim on chain); a failure is wrapped with our shared secret and failed back.
//!
//! Owns: the forwards table and the node's forwarding policy per channel. Must never: release
//! an outgoing HTLC before its link is durable (they share a batch), fail an incoming HTLC
//! whose outgoing one may still be fulfilled, or settle an incoming HTLC twice.

use std::collections::HashMap;

use fulmen_channel::machine::{HtlcInfo, Phase};
use fulmen_htlc::forward::{check_forward, CltvLimits, ForwardingPolicy, IncomingHtlc};
use fulmen_htlc::onion::{create_error_packet, wrap_error_packet, HopPayload};
use fulmen_htlc::{FailureMessage, PaymentPreimage};
use fulmen_wire::msgs::OnionPacket;
use serde::{Deserialize, Serialize};

use crate::manager::Manager;
use crate::payments::{parse_hex32, Settle};

/// Where a forward stands.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ForwardStatus {
    /// Offered downstream; no outcome yet.
    Pending,
    /// Fulfilled downstream; the preimage went upstream.
    Settled,
    /// Failed downstream (or could not be offered); the failure went upstream.
    Failed,
}

/// One forwarded HTLC, as stored and as `forwards` shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ForwardRecord {
    /// Local id of the incoming channel.
    pub in_channel: i64,
    /// The incoming HTLC's id.
    pub in_htlc: u64,
    /// Local id of the outgoing channel.
    pub out_channel: i64,
    /// The outgoing HTLC's id.
    pub out_htlc: u64,
    /// Incoming amount, msat.
    pub in_msat: u64,
    /// Outgoing amount, msat (the difference is our fee).
    pub out_msat: u64,
    /// Incoming expiry.
    pub in_cltv: u32,
    /// Outgoing expiry.
    pub out_cltv: u32,
    /// Payment hash, hex.
    pub payment_hash: String,
    /// Our onion shared secret for this hop, hex (wraps failures coming back).
    pub shared_secret: String,
    /// Where it stands.
    pub status: ForwardStatus,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// When it was offered downstream, UNIX seconds.
    pub created_at: u64,
    /// When it was resolved.
    pub resolved_at: Option<u64>,
}

/// Our forwarding policy for one channel (what our `channel_update` advertises).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChannelPolicy {
    /// Base fee, msat.
    pub fee_base_msat: u32,
    /// Proportional fee, millionths.
    pub fee_ppm: u32,
    /// CLTV delta we require.
    pub cltv_expiry_delta: u16,
}

/// Default forwarding policy of a node (lnd's base fee; a small delta for test networks).
pub const DEFAULT_POLICY: ChannelPolicy = ChannelPolicy {
    fee_base_msat: 1_000,
    fee_ppm: 100,
    cltv_expiry_delta: 40,
};

/// How a downstream HTLC ended.
#[derive(Debug, Clone)]
pub(crate) enum Downstream {
    /// Fulfilled with this preimage.
    Fulfilled(PaymentPreimage),
    /// Failed with this error onion (from downstream, to wrap).
    FailedOnion(Vec<u8>),
    /// Failed by a node that could not parse its onion, or by us (on chain, channel gone):
    /// we create the error with this failure.
    FailedHere(FailureMessage),
}

/// The forwards of a node, indexed both ways.
#[derive(Debug, Default)]
pub(crate) struct Forwards {
    /// By (incoming channel, incoming HTLC id).
    pub by_in: HashMap<(i64, u64), ForwardRecord>,
    /// (outgoing channel, outgoing HTLC id) → (incoming channel, incoming HTLC id).
    pub by_out: HashMap<(i64, u64), (i64, u64)>,
    /// Insertion order of `by_in` keys (for `forwards`).
    pub order: Vec<(i64, u64)>,
}

impl ForwardRecord {
    /// True while the manager must keep the forward in memory: no outcome yet (its
    /// outgoing HTLC is indexed to settle the incoming one). A resolved forward is only shown
    /// by `forwards`; the store keeps the flag and loads only open forwards at start.
    pub fn is_open(&self) -> bool {
        self.status == ForwardStatus::Pending
    }
}

impl Forwards {
    /// Drops the forwards of `keys` that are resolved (their rows are durable).
    pub(crate) fn drop_resolved(&mut self, keys: &[(i64, u64)]) {
        let before = self.by_in.len();
        for k in keys {
            if self.by_in.get(k).is_some_and(|r| !r.is_open()) {
                self.by_in.remove(k);
            }
        }
        if self.by_in.len() != before {
            let by_in = &self.by_in;
            self.order.retain(|k| by_in.contains_key(k));
        }
    }

    pub(crate) fn insert(&mut self, r: ForwardRecord) {
        let k = (r.in_channel, r.in_htlc);
        if r.status == ForwardStatus::Pending {
            self.by_out.insert((r.out_channel, r.out_htlc), k);
        } else {
            self.by_out.remove(&(r.out_channel, r.out_htlc));
        }
        if !self.by_in.contains_key(&k) {
            self.order.push(k);
        }
        self.by_in.insert(k, r);
    }
}

impl Manager {
    /// Our policy for channel `chan` (its override, else the node's default).
    pub(crate) fn policy_of(&self, chan: i64) -> ChannelPolicy {
        self.policies
            .get(&chan)
            .copied()
            .unwrap_or(self.config.forwarding)
    }

    /// An incoming HTLC (on channel index `i`) to forward: offered on the channel its onion
    /// names, or the failure to send back.
    pub(crate) fn forward_htlc(
        &mut self,
        i: usize,
        id: u64,
        htlc: HtlcInfo,
        payload: HopPayload,
        next: OnionPacket,
        shared_secret: [u8; 32],
    ) -> Option<Settle> {
        let fail = |f: FailureMessage| Some(Settle::Fail(create_error_packet(&shared_secret, &f)));
        let in_chan = self.channels.get(i)?.id;
        let Some(scid) = payload.short_channel_id else {
            return fail(FailureMessage::InvalidOnionPayload { typ: 6, offset: 0 });
        };
        let out = self.channels.iter().position(|e| {
            e.ch.short_channel_id().map(|s| s.to_u64()) == Some(scid)
                && e.ch.state().phase == Phase::Normal
        });
        let Some(o) = out else {
            return fail(fulmen_htlc::forward::unknown_next_peer());
        };
        let out_chan = self.channels.get(o)?.id;
        let pol = self.policy_of(out_chan);
        let policy = ForwardingPolicy {
            fee_base_msat: pol.fee_base_msat,
            fee_proportional_millionths: pol.fee_ppm,
            cltv_expiry_delta: pol.cltv_expiry_delta,
            htlc_minimum_msat: 1,
            htlc_maximum_msat: u64::MAX,
            enabled: self.channels.get(o)?.ch.is_connected(),
            channel_update: self.channel_update_bytes(out_chan),
        };
        let incoming = IncomingHtlc {
            amount_msat: htlc.amount_msat,
            cltv_expiry: htlc.cltv_expiry,
        };
        if let Err(f) = check_forward(
            &policy,
            &incoming,
            &payload,
            self.height,
            &CltvLimits::default(),
        ) {
            tracing::info!(failure = ?f, "refusing to forward");
            return fail(f);
        }
        let e = self.channels.get_mut(o)?;
        let added = e.ch.add_htlc(
            payload.amt_to_forward,
            htlc.payment_hash,
            payload.outgoing_cltv_value,
            next,
        );
        let out_htlc = match added {
            Ok(h) => h,
            Err(err) => {
                tracing::info!(error = %err, "cannot offer the forward downstream");
                return fail(FailureMessage::TemporaryChannelFailure {
                    channel_update: policy.channel_update,
                });
            }
        };
        let rec = ForwardRecord {
            in_channel: in_chan,
            in_htlc: id,
            out_channel: out_chan,
            out_htlc,
            in_msat: htlc.amount_msat,
            out_msat: payload.amt_to_forward,
            in_cltv: htlc.cltv_expiry,
            out_cltv: payload.outgoing_cltv_value,
            payment_hash: hex::encode(htlc.payment_hash.0),
            shared_secret: hex::encode(shared_secret),
            status: ForwardStatus::Pending,
            failure: None,
            created_at: self.now,
            resolved_at: None,
        };
        self.save_forward(rec);
        None
    }

    fn save_forward(&mut self, rec: ForwardRecord) {
        self.pending.forwards.push(rec.clone());
        self.forwards.insert(rec);
    }

    /// The outgoing HTLC `(chan, htlc)` ended: true if it was a forward (then the incoming
    /// HTLC is settled accordingly, once).
    pub(crate) fn forward_resolved(&mut self, chan: i64, htlc: u64, outcome: Downstream) -> bool {
        let Some(key) = self.forwards.by_out.get(&(chan, htlc)).copied() else {
            return false;
        };
        let Some(mut rec) = self.forwards.by_in.get(&key).cloned() else {
            return false;
        };
        let ss = parse_hex32(&rec.shared_secret).unwrap_or([0; 32]);
        let in_i = self.channels.iter().position(|e| e.id == rec.in_channel);
        match outcome {
            Downstream::Fulfilled(preimage) => {
                rec.status = ForwardStatus::Settled;
                if let Some(e) = in_i.and_then(|i| self.channels.get_mut(i)) {
                    if e.is_closed() {
                        // Claim the incoming HTLC on chain with the preimage.
                        if let Some(m) = e.monitor.as_mut() {
                            m.provide_preimage(preimage);
                        }
                    } else if let Err(err) = e.ch.fulfill_htlc(rec.in_htlc, preimage) {
                        tracing::warn!(error = %err, "fulfilling a forwarded HTLC upstream");
                    }
                }
            }
            Downstream::FailedOnion(mut packet) => {
                wrap_error_packet(&ss, &mut packet);
                rec.status = ForwardStatus::Failed;
                rec.failure = Some("failed downstream".into());
                self.fail_upstream(in_i, rec.in_htlc, packet);
            }
            Downstream::FailedHere(f) => {
                rec.status = ForwardStatus::Failed;
                rec.failure = Some(format!("{f:?}"));
                let packet = create_error_packet(&ss, &f);
                self.fail_upstream(in_i, rec.in_htlc, packet);
            }
        }
        rec.resolved_at = Some(self.now);
        self.save_forward(rec);
        true
    }

    fn fail_upstream(&mut self, in_i: Option<usize>, htlc: u64, packet: Vec<u8>) {
        if let Some(e) = in_i.and_then(|i| self.channels.get_mut(i)) {
            if e.is_closed() {
                // The upstream peer times it out on chain.
                return;
            }
            if let Err(err) = e.ch.fail_htlc(htlc, packet) {
                tracing::warn!(error = %err, "failing a forwarded HTLC upstream");
            }
        }
    }

    /// A preimage learned on chain: every pending forward with its hash is fulfilled
    /// upstream.
    pub(crate) fn forward_preimage(&mut self, preimage: &PaymentPreimage) {
        let hash = hex::encode(preimage.payment_hash().0);
        let mut outs: Vec<(i64, u64)> = self
            .forwards
            .by_in
            .values()
            .filter(|r| r.status == ForwardStatus::Pending && r.payment_hash == hash)
            .map(|r| (r.out_channel, r.out_htlc))
            .collect();
        outs.sort();
        for (c, h) in outs {
            self.forward_resolved(c, h, Downstream::Fulfilled(*preimage));
        }
    }
}
