//! Sending payments over routes: `pay` (a BOLT 11 invoice) and `keysend` find a route with
//! the node's graph and scorer (`fulmen-routing`; our own channels enter with their exact
//! spendable balance), build the onion, offer the HTLC, and on each failure feed the scorer
//! (attributing the failure to the hop that sent it back), exclude what failed for good and
//! retry, until the payment succeeds, runs out of routes, attempts or time. When no single
//! route can carry the amount it is split over several (basic MPP).
//!
//! Owns: [`PaymentPlan`] and [`PartRecord`] (inside the stored [`PaymentRecord`]) and the
//! outcome of every part. Must never: have more in flight for a payment than its amount,
//! pay more fees than its limit, or report a payment failed while a part may still succeed.

use std::collections::HashMap;

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey, Signing};
use fulmen_channel::machine::Phase;
use fulmen_htlc::onion::{construct_onion, decode_error_packet, HopPayload, OnionHop, PaymentData};
use fulmen_htlc::{FailureMessage, PaymentHash, PaymentPreimage, PaymentSecret};
use fulmen_routing::graph::direction_between;
use fulmen_routing::{FirstHop, Route, RouteError, RouteHint, RouteHintHop, RouteHop, RouteParams};
use fulmen_wire::msgs::OnionPacket;
use fulmen_wire::ShortChannelId;
use serde::{Deserialize, Serialize};

use crate::api::{PaymentInfo, PaymentStatus};
use crate::manager::Manager;
use crate::payments::parse_hex32;
use crate::types::{CmdError, NodeEvent, PaymentRecord};

/// Most attempts (routes tried, parts included) per payment.
pub const MAX_ATTEMPTS: u32 = 12;
/// Default time a payment keeps retrying, seconds.
pub const DEFAULT_PAY_TIMEOUT_SECS: u64 = 60;
/// Most parts one payment is split into.
pub const MAX_PARTS: usize = 8;
/// Smallest part of a split payment, msat.
pub const MIN_PART_MSAT: u64 = 10_000;

/// What a payment is trying to do, kept so it can retry after a restart.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaymentPlan {
    /// The payee, hex.
    pub payee: String,
    /// What the payee must receive, msat.
    pub total_msat: u64,
    /// The invoice's payment secret, hex (none for keysend).
    pub payment_secret: Option<String>,
    /// The keysend preimage, hex (keysend only).
    pub keysend_preimage: Option<String>,
    /// The payee's final CLTV delta (with slack).
    pub final_cltv_delta: u32,
    /// Most fees the payment may pay, msat.
    pub max_fee_msat: u64,
    /// Retry until this time (UNIX seconds).
    pub deadline: u64,
    /// The invoice (for its route hints), if any.
    pub bolt11: Option<String>,
    /// Routes tried so far.
    pub attempts: u32,
    /// Channels that failed for good (short channel ids).
    pub excluded_channels: Vec<u64>,
    /// Nodes that failed for good, hex.
    pub excluded_nodes: Vec<String>,
    /// Set when the payee refused the payment: no more retries.
    pub given_up: bool,
}

/// One hop of a part's route, as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartHop {
    /// The node reached, hex.
    pub node_id: String,
    /// The channel used.
    pub short_channel_id: u64,
    /// HTLC amount over it, msat.
    pub amount_msat: u64,
    /// Fee the node keeps, msat.
    pub fee_msat: u64,
    /// Expiry above the height at sending.
    pub expiry_delta: u32,
}

/// One HTLC of a payment (an attempt, or a part of a split payment).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartRecord {
    /// Local id of the channel it went out on.
    pub channel: i64,
    /// Our HTLC id there.
    pub htlc_id: u64,
    /// What it delivers to the payee, msat.
    pub amount_msat: u64,
    /// Fees it pays, msat.
    pub fee_msat: u64,
    /// Its route.
    pub hops: Vec<PartHop>,
    /// Onion shared secrets (hex), to decode a failure.
    pub shared_secrets: Vec<String>,
    /// Where it stands.
    pub status: PaymentStatus,
    /// Index in `hops` of the node that reported its failure (from the failure onion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<u32>,
}

/// A part ready to be offered but for its onion ([`Manager::prepare_part`]): building the
/// onion needs nothing of the manager, so the parts of many payments can build theirs at
/// once, on several cores.
#[derive(Debug)]
pub(crate) struct PreparedPart {
    /// The payment's hash.
    hash: PaymentHash,
    /// Its route.
    route: Route,
    /// The HTLC's absolute expiry.
    cltv: u32,
    /// Each hop's key and payload, for the onion.
    hops: Vec<OnionHop>,
    /// The onion's session key.
    session_key: SecretKey,
}

/// An onion as offered, with the shared secrets that decode a failure coming back.
pub(crate) type BuiltOnion = (OnionPacket, Vec<[u8; 32]>);

impl PreparedPart {
    /// Builds the part's onion (two elliptic-curve multiplications per hop).
    pub(crate) fn build_onion<C: Signing>(
        &self,
        secp: &Secp256k1<C>,
    ) -> Result<BuiltOnion, String> {
        let (packet, secrets) = construct_onion(secp, &self.session_key, &self.hops, &self.hash)
            .map_err(|e| format!("building the onion: {e}"))?;
        Ok((OnionPacket(Box::new(packet.to_bytes())), secrets))
    }
}

/// How a part ended badly.
#[derive(Debug, Clone)]
pub(crate) enum PartFailure {
    /// With an error onion to decode.
    Onion(Vec<u8>),
    /// Without one (malformed onion downstream, timed out on chain, could not be offered).
    Text(String),
}

impl Manager {
    /// Our channels as first hops: exact spendable balance, by short channel id.
    fn first_hops(&self) -> Vec<FirstHop> {
        self.channels
            .iter()
            .filter(|e| e.ch.state().phase == Phase::Normal)
            .filter_map(|e| {
                Some(FirstHop {
                    short_channel_id: e.ch.short_channel_id()?,
                    peer: e.peer,
                    spendable_msat: e.ch.spendable_msat(),
                    htlc_minimum_msat: e.ch.state().setup.remote.map(|r| r.htlc_minimum_msat),
                })
            })
            .collect()
    }

    /// Why our own channels may not carry `amount_msat` (for a refused payment's message).
    fn first_hop_notes(&self, amount_msat: u64) -> Vec<String> {
        let mut notes = Vec::new();
        for e in &self.channels {
            if e.ch.state().phase != Phase::Normal {
                continue;
            }
            let id = hex::encode(e.ch.channel_id());
            if !e.ch.is_connected() {
                notes.push(format!("channel {id}: peer not connected"));
            } else if e.ch.spendable_msat() < amount_msat {
                notes.push(format!(
                    "channel {id}: cannot send more than {} msat",
                    e.ch.spendable_msat()
                ));
            }
        }
        if self
            .channels
            .iter()
            .all(|e| e.ch.state().phase != Phase::Normal)
        {
            notes.push("no open channel".into());
        }
        notes
    }

    /// Starts paying `plan` (a new payment): the first parts go out now. Refused (nothing
    /// stored) if not even one part could be offered.
    pub(crate) fn begin_payment(
        &mut self,
        hash: PaymentHash,
        plan: PaymentPlan,
    ) -> Result<PaymentInfo, CmdError> {
        self.sync_graph();
        let mut rec = self.new_payment_record(hash, &plan);
        let sent = self.send_remaining(&mut rec, hash);
        self.started_or_refused(rec, hash, sent)
    }

    /// The record of a payment about to start under `plan`: pending, no part yet.
    pub(crate) fn new_payment_record(
        &self,
        hash: PaymentHash,
        plan: &PaymentPlan,
    ) -> PaymentRecord {
        PaymentRecord {
            info: PaymentInfo {
                payment_hash: hex::encode(hash.0),
                destination: plan.payee.clone(),
                amount_msat: plan.total_msat,
                fee_msat: 0,
                status: PaymentStatus::Pending,
                preimage: None,
                failure: None,
                channel_id: None,
                created_at: self.now,
                completed_at: None,
                attempts: 0,
                route: Vec::new(),
                failed_at: None,
            },
            channel: None,
            htlc_id: None,
            shared_secrets: Vec::new(),
            parts: Vec::new(),
            plan: Some(plan.clone()),
        }
    }

    /// Ends the start of a payment whose first parts were offered with outcome `sent`:
    /// stored and under way if at least one part went out, else refused (nothing stored).
    pub(crate) fn started_or_refused(
        &mut self,
        mut rec: PaymentRecord,
        hash: PaymentHash,
        sent: Result<(), String>,
    ) -> Result<PaymentInfo, CmdError> {
        if let Err(e) = sent {
            if !rec.parts.is_empty() {
                // Some parts are already offered: the payment is under way and must be on
                // record (their outcome is ours to learn, and a second `pay` of the same
                // invoice must be refused). What was not sent goes out when a part fails
                // back — at the latest the payee's multi-part timeout.
                tracing::warn!(payment = %hash, "part of a split payment not sent: {e}");
                rec.info.failure = Some(format!("a part could not be sent: {e}"));
                let info = rec.info.clone();
                self.save_payment(rec);
                return Ok(info);
            }
            let notes = self.first_hop_notes(rec.info.amount_msat);
            let why = if notes.is_empty() {
                format!("no route: {e}")
            } else {
                format!("no route: {e}; {}", notes.join("; "))
            };
            return Err(CmdError::failed(why));
        }
        let info = rec.info.clone();
        self.save_payment(rec);
        Ok(info)
    }

    /// Sends what is not yet in flight or delivered, over one route or split over several.
    fn send_remaining(&mut self, rec: &mut PaymentRecord, hash: PaymentHash) -> Result<(), String> {
        let Some(plan) = rec.plan.clone() else {
            return Err("no payment plan".into());
        };
        let live: u64 = rec
            .parts
            .iter()
            .filter(|p| p.status != PaymentStatus::Failed)
            .map(|p| p.amount_msat)
            .sum();
        let remaining = plan.total_msat.saturating_sub(live);
        if remaining == 0 {
            return Ok(());
        }
        let fees_live: u64 = rec
            .parts
            .iter()
            .filter(|p| p.status != PaymentStatus::Failed)
            .map(|p| p.fee_msat)
            .sum();
        let fee_budget = plan.max_fee_msat.saturating_sub(fees_live);
        let parts = self.route_parts(&plan, hash, remaining, fee_budget, &mut HashMap::new())?;
        for part in parts {
            let onion = part.build_onion(&self.secp)?;
            self.offer_part(rec, part, onion)?;
        }
        Ok(())
    }

    /// The parts that carry `amount` under `plan` within `fee_budget`, routed over what
    /// `used` leaves of our channels (their first hops are added to it), ready but for
    /// their onions.
    pub(crate) fn route_parts(
        &mut self,
        plan: &PaymentPlan,
        hash: PaymentHash,
        amount: u64,
        fee_budget: u64,
        used: &mut HashMap<ShortChannelId, u64>,
    ) -> Result<Vec<PreparedPart>, String> {
        let payee: PublicKey = plan.payee.parse().map_err(|e| format!("bad payee: {e}"))?;
        let routes = self.routes_for(plan, payee, amount, fee_budget, used, 0)?;
        routes
            .into_iter()
            .map(|route| self.prepare_part(plan, hash, route))
            .collect()
    }

    /// Route query parameters for `amount` to `payee` under `plan`, with our channels'
    /// spendable balance less what `used` already took.
    fn route_params(
        &self,
        plan: &PaymentPlan,
        payee: PublicKey,
        amount: u64,
        fee_budget: u64,
        used: &HashMap<ShortChannelId, u64>,
    ) -> RouteParams {
        let mut params = RouteParams::new(self.node_id, payee, amount, self.now);
        params.final_cltv_delta = plan.final_cltv_delta;
        params.max_fee_msat = Some(fee_budget);
        params.first_hops = Some(
            self.first_hops()
                .into_iter()
                .map(|mut h| {
                    let u = used.get(&h.short_channel_id).copied().unwrap_or(0);
                    h.spendable_msat = h.spendable_msat.saturating_sub(u);
                    h
                })
                .collect(),
        );
        params.excluded_channels = plan
            .excluded_channels
            .iter()
            .map(|s| ShortChannelId::from_u64(*s))
            .collect();
        params.excluded_nodes = plan
            .excluded_nodes
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        params.route_hints = plan
            .bolt11
            .as_deref()
            // Validated by `parse_invoice` when the payment started: read the hints only.
            .and_then(|b| fulmen_htlc::invoice::route_hints_of_accepted(b).ok())
            .map(|hints| {
                hints
                    .into_iter()
                    .map(|hops| {
                        RouteHint(
                            hops.into_iter()
                                .map(|h| RouteHintHop {
                                    src_node_id: h.src_node_id,
                                    short_channel_id: ShortChannelId::from_u64(h.short_channel_id),
                                    fee_base_msat: h.fee_base_msat,
                                    fee_proportional_millionths: h.fee_proportional_millionths,
                                    cltv_expiry_delta: h.cltv_expiry_delta,
                                    htlc_minimum_msat: None,
                                    htlc_maximum_msat: None,
                                })
                                .collect(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        params
    }

    /// One route for `amount` under `plan`'s limits (no split).
    pub(crate) fn single_route(
        &mut self,
        plan: &PaymentPlan,
        payee: PublicKey,
        amount: u64,
    ) -> Result<Route, String> {
        let params = self.route_params(plan, payee, amount, plan.max_fee_msat, &HashMap::new());
        self.pathfinder
            .find_route(&self.graph, &self.scorer, &params)
            .map_err(|e| e.to_string())
    }

    /// Routes for `amount`: one if possible, else the amount split in two, recursively.
    /// Each route's first hop is added to `used` (what later routes may not count on).
    fn routes_for(
        &mut self,
        plan: &PaymentPlan,
        payee: PublicKey,
        amount: u64,
        fee_budget: u64,
        used: &mut HashMap<ShortChannelId, u64>,
        depth: u32,
    ) -> Result<Vec<Route>, String> {
        let params = self.route_params(plan, payee, amount, fee_budget, used);
        match self
            .pathfinder
            .find_route(&self.graph, &self.scorer, &params)
        {
            Ok(route) => {
                if let Some(first) = route.hops.first() {
                    *used.entry(first.short_channel_id).or_default() += first.amount_msat;
                }
                Ok(vec![route])
            }
            Err(RouteError::NoRoute { .. })
                if depth < 3
                    && amount >= 2 * MIN_PART_MSAT
                    && (1usize << (depth + 1)) <= MAX_PARTS =>
            {
                let half = amount / 2;
                let mut a = self.routes_for(plan, payee, half, fee_budget / 2, used, depth + 1)?;
                let b = self.routes_for(
                    plan,
                    payee,
                    amount - half,
                    fee_budget - fee_budget / 2,
                    used,
                    depth + 1,
                )?;
                a.extend(b);
                Ok(a)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Everything of a part over `route` but its onion: the hop payloads and a fresh
    /// session key (drawn now, so parts prepared together draw in order).
    fn prepare_part(
        &mut self,
        plan: &PaymentPlan,
        hash: PaymentHash,
        route: Route,
    ) -> Result<PreparedPart, String> {
        if route.hops.is_empty() {
            return Err("empty route".into());
        }
        let height = self.height;
        let payloads = route.payloads();
        let mut hops = Vec::with_capacity(payloads.len());
        for p in &payloads {
            let cltv = height.saturating_add(p.outgoing_cltv_delta);
            let payload = match p.short_channel_id {
                Some(scid) => HopPayload::forward(p.amt_to_forward_msat, cltv, scid.to_u64()),
                None => {
                    let data = plan
                        .payment_secret
                        .as_deref()
                        .and_then(parse_hex32)
                        .map(|s| PaymentData {
                            payment_secret: PaymentSecret(s),
                            total_msat: plan.total_msat,
                        });
                    HopPayload {
                        amt_to_forward: p.amt_to_forward_msat,
                        outgoing_cltv_value: cltv,
                        short_channel_id: None,
                        payment_data: data,
                        payment_metadata: None,
                        keysend_preimage: plan
                            .keysend_preimage
                            .as_deref()
                            .and_then(parse_hex32)
                            .map(PaymentPreimage),
                    }
                }
            };
            hops.push(OnionHop {
                pubkey: p.node_id,
                payload,
            });
        }
        let session_key =
            SecretKey::from_slice(&self.random32()).map_err(|e| format!("session key: {e}"))?;
        Ok(PreparedPart {
            hash,
            cltv: height.saturating_add(route.total_cltv_delta),
            route,
            hops,
            session_key,
        })
    }

    /// Offers `part` with its `onion` (from [`PreparedPart::build_onion`]) and records it
    /// in `rec`. Nothing changes if the channel refuses it.
    pub(crate) fn offer_part(
        &mut self,
        rec: &mut PaymentRecord,
        part: PreparedPart,
        onion: BuiltOnion,
    ) -> Result<(), String> {
        let PreparedPart {
            hash, route, cltv, ..
        } = part;
        let (packet, secrets) = onion;
        let first = route.hops.first().ok_or("empty route")?;
        let scid = first.short_channel_id;
        let e = self
            .channels
            .iter_mut()
            .find(|e| e.ch.short_channel_id() == Some(scid) && e.ch.state().phase == Phase::Normal)
            .ok_or_else(|| format!("our channel {scid} is gone"))?;
        let htlc_id =
            e.ch.add_htlc(first.amount_msat, hash, cltv, packet)
                .map_err(|err| format!("channel {scid}: {err}"))?;
        let chan = e.id;
        let channel_id = hex::encode(e.ch.channel_id());
        let part = PartRecord {
            channel: chan,
            htlc_id,
            amount_msat: route.final_amount_msat(),
            fee_msat: route.total_fee_msat,
            hops: route
                .hops
                .iter()
                .map(|h| PartHop {
                    node_id: h.node_id.to_string(),
                    short_channel_id: h.short_channel_id.to_u64(),
                    amount_msat: h.amount_msat,
                    fee_msat: h.fee_msat,
                    expiry_delta: h.expiry_delta,
                })
                .collect(),
            shared_secrets: secrets.iter().map(hex::encode).collect(),
            status: PaymentStatus::Pending,
            failed_at: None,
        };
        tracing::info!(
            payment = %hash,
            hops = part.hops.len(),
            amount_msat = part.amount_msat,
            fee_msat = part.fee_msat,
            "payment part sent"
        );
        if let Some(p) = rec.plan.as_mut() {
            p.attempts += 1;
        }
        rec.info.attempts = rec.plan.as_ref().map_or(1, |p| p.attempts);
        rec.info.channel_id.get_or_insert(channel_id);
        rec.channel.get_or_insert(chan);
        rec.htlc_id.get_or_insert(htlc_id);
        rec.parts.push(part);
        rec.info.fee_msat = live_fees(rec);
        Ok(())
    }

    /// The route of a stored part, for the scorer.
    fn part_route(&self, part: &PartRecord) -> Option<Route> {
        let mut prev = self.node_id;
        let mut hops = Vec::with_capacity(part.hops.len());
        for h in &part.hops {
            let node: PublicKey = h.node_id.parse().ok()?;
            hops.push(RouteHop {
                node_id: node,
                short_channel_id: ShortChannelId::from_u64(h.short_channel_id),
                direction: direction_between(&prev, &node),
                amount_msat: h.amount_msat,
                fee_msat: h.fee_msat,
                expiry_delta: h.expiry_delta,
                cltv_expiry_delta: 0,
            });
            prev = node;
        }
        let first = hops.first()?;
        Some(Route {
            payer: self.node_id,
            total_amount_msat: first.amount_msat,
            total_fee_msat: part.fee_msat,
            total_cltv_delta: first.expiry_delta,
            hops,
            success_probability: 1.0,
        })
    }

    /// Our HTLC `(chan, htlc)` was fulfilled: true if it was a payment part.
    pub(crate) fn part_fulfilled(
        &mut self,
        chan: i64,
        htlc: u64,
        preimage: PaymentPreimage,
    ) -> bool {
        let Some(key) = self.payment_by_htlc.get(&(chan, htlc)).cloned() else {
            return false;
        };
        let Some(mut rec) = self.payments.get(&key).cloned() else {
            return false;
        };
        if !preimage.matches(&PaymentHash(parse_hex32(&key).unwrap_or([0; 32]))) {
            tracing::error!("fulfilled with a preimage that does not match");
            return true;
        }
        let mut route = None;
        for p in rec.parts.iter_mut() {
            if (p.channel, p.htlc_id) == (chan, htlc) {
                p.status = PaymentStatus::Succeeded;
                route = Some(p.clone());
            }
        }
        if let Some(r) = route.and_then(|p| self.part_route(&p)) {
            self.scorer.payment_path_succeeded(&r);
        }
        self.payment_by_htlc.remove(&(chan, htlc));
        if rec.info.status == PaymentStatus::Pending {
            rec.info.status = PaymentStatus::Succeeded;
            rec.info.preimage = Some(hex::encode(preimage.0));
            rec.info.failure = None;
            rec.info.completed_at = Some(self.now);
            rec.info.fee_msat = live_fees(&rec);
            let info = rec.info.clone();
            self.save_payment(rec);
            self.event(NodeEvent::PaymentCompleted(info));
        } else {
            self.save_payment(rec);
        }
        true
    }

    /// Our HTLC `(chan, htlc)` failed: true if it was a payment part. Feeds the scorer,
    /// retries what is left, or ends the payment.
    pub(crate) fn part_failed(&mut self, chan: i64, htlc: u64, why: PartFailure) -> bool {
        let Some(key) = self.payment_by_htlc.get(&(chan, htlc)).cloned() else {
            return false;
        };
        let Some(mut rec) = self.payments.get(&key).cloned() else {
            return false;
        };
        self.payment_by_htlc.remove(&(chan, htlc));
        let Some(idx) = rec
            .parts
            .iter()
            .position(|p| (p.channel, p.htlc_id) == (chan, htlc))
        else {
            // A payment stored before parts existed: one HTLC, no retry.
            let reason = match why {
                PartFailure::Onion(bytes) => self.describe_legacy(&rec, &bytes),
                PartFailure::Text(t) => t,
            };
            self.finish_failed(rec, reason);
            return true;
        };
        let part = rec.parts.get(idx).cloned();
        if let Some(p) = rec.parts.get_mut(idx) {
            p.status = PaymentStatus::Failed;
        }
        let reason = match (part, why) {
            (Some(part), PartFailure::Onion(bytes)) => self.learn_failure(&mut rec, &part, &bytes),
            (_, PartFailure::Onion(_)) => "failure onion of an unknown part".to_string(),
            (_, PartFailure::Text(t)) => t,
        };
        rec.info.failure = Some(reason.clone());
        rec.info.fee_msat = live_fees(&rec);
        if rec.info.status != PaymentStatus::Pending {
            self.save_payment(rec);
            return true;
        }
        let hash = PaymentHash(parse_hex32(&key).unwrap_or([0; 32]));
        let plan = rec.plan.clone().unwrap_or_default();
        let can_retry = !plan.given_up && self.now < plan.deadline && plan.attempts < MAX_ATTEMPTS;
        if can_retry {
            match self.send_remaining(&mut rec, hash) {
                Ok(()) => {
                    self.save_payment(rec);
                    return true;
                }
                Err(e) => {
                    rec.info.failure = Some(format!("{reason}; then no route: {e}"));
                }
            }
        }
        let pending = rec.parts.iter().any(|p| p.status == PaymentStatus::Pending);
        if pending {
            self.save_payment(rec);
        } else {
            let why = rec.info.failure.clone().unwrap_or(reason);
            self.finish_failed(rec, why);
        }
        true
    }

    fn finish_failed(&mut self, mut rec: PaymentRecord, why: String) {
        rec.info.status = PaymentStatus::Failed;
        rec.info.failure = Some(why);
        rec.info.completed_at = Some(self.now);
        let info = rec.info.clone();
        self.save_payment(rec);
        self.event(NodeEvent::PaymentCompleted(info));
    }

    fn describe_legacy(&self, rec: &PaymentRecord, bytes: &[u8]) -> String {
        let secrets: Vec<[u8; 32]> = rec
            .shared_secrets
            .iter()
            .filter_map(|s| parse_hex32(s))
            .collect();
        match decode_error_packet(&secrets, bytes) {
            Ok(a) => format!("{:?} at hop {}", a.failure, a.hop_index),
            Err(e) => format!("failure onion could not be decoded: {e}"),
        }
    }

    /// Decodes a part's failure, teaches the scorer and the exclusions; returns a
    /// description.
    fn learn_failure(
        &mut self,
        rec: &mut PaymentRecord,
        part: &PartRecord,
        bytes: &[u8],
    ) -> String {
        let secrets: Vec<[u8; 32]> = part
            .shared_secrets
            .iter()
            .filter_map(|s| parse_hex32(s))
            .collect();
        let a = match decode_error_packet(&secrets, bytes) {
            Ok(a) => a,
            Err(e) => return format!("failure onion could not be decoded: {e}"),
        };
        if let Some(p) = rec
            .parts
            .iter_mut()
            .find(|p| (p.channel, p.htlc_id) == (part.channel, part.htlc_id))
        {
            p.failed_at = u32::try_from(a.hop_index).ok();
        }
        let last = part.hops.len().saturating_sub(1);
        let node = part.hops.get(a.hop_index).map(|h| h.node_id.clone());
        let desc = format!(
            "{} (code {:#06x}) at hop {} ({})",
            failure_name(&a.failure),
            a.failure.code(),
            a.hop_index,
            node.as_deref().unwrap_or("?")
        );
        let route = self.part_route(part);
        let plan = rec.plan.get_or_insert_with(PaymentPlan::default);
        if a.hop_index >= last {
            // The payee refused: nothing to retry (MPP timeouts excepted).
            if !matches!(a.failure, FailureMessage::MppTimeout) {
                plan.given_up = true;
            }
            if let Some(r) = &route {
                self.scorer
                    .payment_path_failed(r, part.hops.len(), self.now);
            }
            return desc;
        }
        // The channel out of the failing node is the next hop's.
        let failed_hop = a.hop_index + 1;
        if let Some(r) = &route {
            self.scorer.payment_path_failed(r, failed_hop, self.now);
        }
        let next_scid = part.hops.get(failed_hop).map(|h| h.short_channel_id);
        match &a.failure {
            FailureMessage::PermanentChannelFailure
            | FailureMessage::UnknownNextPeer
            | FailureMessage::RequiredChannelFeatureMissing
            | FailureMessage::ChannelDisabled { .. } => {
                if let Some(s) = next_scid {
                    plan.excluded_channels.push(s);
                }
            }
            FailureMessage::PermanentNodeFailure
            | FailureMessage::TemporaryNodeFailure
            | FailureMessage::RequiredNodeFeatureMissing
            | FailureMessage::InvalidRealm => {
                if let Some(n) = node {
                    plan.excluded_nodes.push(n);
                }
            }
            _ => {}
        }
        if let Some(update) = a.failure.channel_update() {
            self.learn_channel_update(update);
        }
        desc
    }
}

/// Fees of the parts not failed, msat.
fn live_fees(rec: &PaymentRecord) -> u64 {
    rec.parts
        .iter()
        .filter(|p| p.status != PaymentStatus::Failed)
        .map(|p| p.fee_msat)
        .sum()
}

/// A failure's name without its fields (a `channel_update` inside is long and unreadable).
fn failure_name(f: &FailureMessage) -> String {
    let full = format!("{f:?}");
    let end = full.find([' ', '(', '{']).unwrap_or(full.len());
    full[..end].to_string()
}
