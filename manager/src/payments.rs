//! Payments: issuing invoices, paying them over a direct channel with a real one-hop onion,
//! settling HTLCs that reach us, and recording outcomes.
//!
//! Owns: [`InvoiceRecord`]s and [`PaymentRecord`]s and their status changes (queued into the
//! turn's writes together with the channel records that cause them); the
//! [`NodeEvent::PaymentCompleted`] that wakes `pay` callers after the write. Must never:
//! release a preimage for an HTLC that fails the BOLT 4 final-hop checks, or pay an invoice
//! twice.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, SecretKey};
use fulmen_channel::machine::{HtlcInfo, Phase};
use fulmen_htlc::forward::{check_final_hop, ExpectedPayment, FinalHopAccept, IncomingHtlc};
use fulmen_htlc::invoice::{create_invoice, parse_invoice, InvoiceDescription, InvoiceParams};
use fulmen_htlc::onion::{
    construct_onion, create_error_packet, decode_error_packet, process_onion, OnionHop,
    OnionReject, PaymentData, ProcessedOnion,
};
use fulmen_htlc::{FailureMessage, PaymentHash, PaymentPreimage, PaymentSecret};
use fulmen_wire::msgs::OnionPacket;

use crate::api::{InvoiceInfo, InvoiceStatus, PaymentInfo, PaymentStatus};
use crate::manager::Manager;
use crate::types::{CmdError, InvoiceRecord, NodeEvent, PaymentRecord, RequestId, Response};

/// `min_final_cltv_expiry_delta` of our invoices (the BOLT 11 default).
pub const MIN_FINAL_CLTV: u32 = 18;
/// Blocks added to the final CLTV so a payee a block or two ahead still accepts.
const CLTV_SLACK: u32 = 3;
/// Most blocks our funds may be locked up by one payment: the payer refuses an invoice
/// whose final CLTV (with the slack) asks for more (2016 blocks, as other implementations).
pub const MAX_TOTAL_CLTV_DELTA: u32 = 2016;

/// What to do with an HTLC that reached us.
enum Settle {
    /// Fulfill with this preimage.
    Fulfill([u8; 32]),
    /// Fail with this error onion.
    Fail(Vec<u8>),
    /// Fail as malformed: BADONION code and SHA256 of the onion.
    Malformed(u16, [u8; 32]),
}

pub(crate) fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}

impl Manager {
    /// `invoice`.
    pub(crate) fn create_invoice(
        &mut self,
        request: RequestId,
        amount_msat: u64,
        description: String,
        expiry_secs: u64,
    ) {
        if amount_msat == 0 {
            let err = CmdError::invalid("amount_msat must be positive");
            return self.reply(request, Err(err));
        }
        let preimage = PaymentPreimage(self.random32());
        let hash = preimage.payment_hash();
        let secret = PaymentSecret(self.random32());
        let now = self.now;
        let params = InvoiceParams {
            amount_msat: Some(amount_msat),
            payment_hash: hash,
            payment_secret: secret,
            description: InvoiceDescription::Direct(description.clone()),
            timestamp_secs: now,
            expiry_secs,
            min_final_cltv_expiry_delta: u64::from(MIN_FINAL_CLTV),
            route_hints: Vec::new(),
            basic_mpp: false,
        };
        let invoice = match create_invoice(&self.secp, &params, &self.node_secret) {
            Ok(i) => i,
            Err(e) => {
                let err = CmdError::invalid(format!("cannot create invoice: {e}"));
                return self.reply(request, Err(err));
            }
        };
        let info = InvoiceInfo {
            bolt11: invoice.as_str().to_string(),
            payment_hash: hex::encode(hash.0),
            amount_msat,
            description,
            status: InvoiceStatus::Unpaid,
            received_msat: None,
            created_at: now,
            expires_at: now.saturating_add(expiry_secs),
            paid_at: None,
        };
        let rec = InvoiceRecord {
            info: info.clone(),
            preimage: hex::encode(preimage.0),
            payment_secret: hex::encode(secret.0),
            min_final_cltv: MIN_FINAL_CLTV,
        };
        self.save_invoice(rec);
        self.reply(request, Ok(Response::Invoice(info)));
    }

    pub(crate) fn save_invoice(&mut self, rec: InvoiceRecord) {
        let key = rec.info.payment_hash.clone();
        self.pending.invoices.push(rec.clone());
        if !self.invoices.contains_key(&key) {
            self.invoice_order.push(key.clone());
        }
        self.invoices.insert(key, rec);
    }

    fn save_payment(&mut self, rec: PaymentRecord) {
        let key = rec.info.payment_hash.clone();
        if let (Some(c), Some(h)) = (rec.channel, rec.htlc_id) {
            if rec.is_pending() {
                self.payment_by_htlc.insert((c, h), key.clone());
            } else {
                self.payment_by_htlc.remove(&(c, h));
            }
        }
        self.pending.payments.push(rec.clone());
        if !self.payments.contains_key(&key) {
            self.payment_order.push(key.clone());
        }
        self.payments.insert(key, rec);
    }

    /// An invoice as `listinvoices` shows it now (expiry applied).
    pub(crate) fn invoice_view(&self, rec: &InvoiceRecord) -> InvoiceInfo {
        let mut info = rec.info.clone();
        if info.status == InvoiceStatus::Unpaid && self.now >= info.expires_at {
            info.status = InvoiceStatus::Expired;
        }
        info
    }

    /// `pay`: one-hop payment over a channel with the payee.
    pub(crate) fn pay(&mut self, request: RequestId, invoice: &str) {
        let res = self.start_payment(invoice);
        self.reply(request, res.map(Response::PaymentStarted));
    }

    fn start_payment(&mut self, text: &str) -> Result<PaymentInfo, CmdError> {
        let inv = parse_invoice(text.trim())
            .map_err(|e| CmdError::invalid(format!("bad invoice: {e}")))?;
        if inv.currency() != lightning_invoice::Currency::Regtest {
            return Err(CmdError::invalid("the invoice is not for regtest"));
        }
        let now = self.now;
        if inv.is_expired_at(now) {
            return Err(CmdError::invalid("the invoice has expired"));
        }
        let amount = inv
            .amount_msat()
            .ok_or_else(|| CmdError::invalid("invoices without an amount are not supported yet"))?;
        let hash = inv.payment_hash();
        let key = hex::encode(hash.0);
        if let Some(p) = self.payments.get(&key) {
            match p.info.status {
                PaymentStatus::Succeeded => {
                    return Err(CmdError::failed("this invoice is already paid"))
                }
                PaymentStatus::Pending => {
                    return Err(CmdError::failed("a payment of this invoice is in flight"))
                }
                PaymentStatus::Failed => {}
            }
        }
        let payee = inv.payee();
        if payee == self.node_id {
            return Err(CmdError::invalid("cannot pay our own invoice"));
        }
        let final_cltv = u32::try_from(inv.min_final_cltv_expiry_delta())
            .unwrap_or(u32::MAX / 2)
            .saturating_add(CLTV_SLACK);
        if final_cltv > MAX_TOTAL_CLTV_DELTA {
            return Err(CmdError::invalid(format!(
                "the invoice's min_final_cltv_expiry_delta {} would lock the payment for more \
                 than {MAX_TOTAL_CLTV_DELTA} blocks",
                inv.min_final_cltv_expiry_delta()
            )));
        }
        let cltv = self.height.saturating_add(final_cltv);
        let session_key = SecretKey::from_slice(&self.random32())
            .map_err(|e| CmdError::failed(format!("session key: {e}")))?;
        let hop = OnionHop {
            pubkey: payee,
            payload: fulmen_htlc::onion::HopPayload::final_hop(
                amount,
                cltv,
                PaymentData {
                    payment_secret: inv.payment_secret(),
                    total_msat: amount,
                },
            ),
        };
        let (packet, secrets) = construct_onion(&self.secp, &session_key, &[hop], &hash)
            .map_err(|e| CmdError::failed(format!("building the onion: {e}")))?;
        let onion = OnionPacket(Box::new(packet.to_bytes()));
        let (chan, htlc_id) = self.add_payment_htlc(&payee, amount, hash, cltv, onion)?;
        let info = PaymentInfo {
            payment_hash: key,
            destination: payee.to_string(),
            amount_msat: amount,
            fee_msat: 0,
            status: PaymentStatus::Pending,
            preimage: None,
            failure: None,
            channel_id: self
                .channels
                .iter()
                .find(|e| e.id == chan)
                .map(|e| hex::encode(e.ch.channel_id())),
            created_at: now,
            completed_at: None,
        };
        self.save_payment(PaymentRecord {
            info: info.clone(),
            channel: Some(chan),
            htlc_id: Some(htlc_id),
            shared_secrets: secrets.iter().map(hex::encode).collect(),
        });
        Ok(info)
    }

    fn add_payment_htlc(
        &mut self,
        payee: &PublicKey,
        amount: u64,
        hash: PaymentHash,
        cltv: u32,
        onion: OnionPacket,
    ) -> Result<(i64, u64), CmdError> {
        let mut reasons = Vec::new();
        let mut candidates: Vec<usize> = (0..self.channels.len())
            .filter(|&i| {
                self.channels
                    .get(i)
                    .is_some_and(|e| e.peer == *payee && e.ch.state().phase == Phase::Normal)
            })
            .collect();
        if candidates.is_empty() {
            return Err(CmdError::failed(format!(
                "no route: no open channel with {payee} (multi-hop routing is not available yet)"
            )));
        }
        // Most local balance first.
        candidates.sort_by_key(|&i| {
            std::cmp::Reverse(
                self.channels
                    .get(i)
                    .and_then(|e| e.ch.balances_msat())
                    .map_or(0, |b| b.0),
            )
        });
        for i in candidates {
            let Some(e) = self.channels.get_mut(i) else {
                continue;
            };
            if !e.ch.is_connected() {
                reasons.push(format!(
                    "channel {}: peer not connected",
                    hex::encode(e.ch.channel_id())
                ));
                continue;
            }
            match e.ch.add_htlc(amount, hash, cltv, onion.clone()) {
                Ok(id) => return Ok((e.id, id)),
                Err(err) => {
                    reasons.push(format!("channel {}: {err}", hex::encode(e.ch.channel_id())))
                }
            }
        }
        Err(CmdError::failed(format!(
            "cannot send: {}",
            reasons.join("; ")
        )))
    }

    /// An HTLC offered to us is irrevocably committed: settle it if it pays one of our
    /// invoices, fail it otherwise (we do not forward yet).
    pub(crate) fn on_htlc_received(
        &mut self,
        i: usize,
        id: u64,
        htlc: HtlcInfo,
        onion: OnionPacket,
        must_fail: bool,
    ) {
        if self.maybe_hold(i, id, htlc, &onion, must_fail) {
            return;
        }
        let hash = htlc.payment_hash;
        let processed = process_onion(&self.secp, &self.node_secret, &onion.0[..], &hash);
        let now = self.now;
        let height = self.height;
        let decision: Settle = match processed {
            Err(OnionReject::Malformed(f)) => {
                let sha = sha256::Hash::hash(&onion.0[..]).to_byte_array();
                Settle::Malformed(f.code(), sha)
            }
            Err(OnionReject::Fail {
                error_packet,
                failure,
            }) => {
                tracing::info!(failure = ?failure, "rejecting an HTLC with a bad payload");
                Settle::Fail(error_packet)
            }
            Ok(ProcessedOnion::Forward { shared_secret, .. }) => {
                // Forwarding comes with multi-hop routing; until then we are a dead end.
                let f = fulmen_htlc::forward::unknown_next_peer();
                Settle::Fail(create_error_packet(&shared_secret, &f))
            }
            Ok(ProcessedOnion::Receive {
                payload,
                shared_secret,
            }) => {
                if must_fail {
                    let f = FailureMessage::TemporaryChannelFailure {
                        channel_update: Vec::new(),
                    };
                    Settle::Fail(create_error_packet(&shared_secret, &f))
                } else {
                    let key = hex::encode(hash.0);
                    let rec = self.invoices.get(&key).cloned();
                    let expected = rec.as_ref().and_then(|r| {
                        Some(ExpectedPayment {
                            payment_hash: hash,
                            payment_secret: PaymentSecret(parse_hex32(&r.payment_secret)?),
                            amount_msat: Some(r.info.amount_msat),
                            min_final_cltv_expiry_delta: r.min_final_cltv,
                            expires_at_secs: r.info.expires_at,
                        })
                    });
                    let incoming = IncomingHtlc {
                        amount_msat: htlc.amount_msat,
                        cltv_expiry: htlc.cltv_expiry,
                    };
                    let already_paid = rec
                        .as_ref()
                        .is_some_and(|r| r.info.status == InvoiceStatus::Paid);
                    match check_final_hop(&incoming, &payload, expected.as_ref(), height, now) {
                        Ok(FinalHopAccept::Complete) if !already_paid => {
                            match rec.as_ref().and_then(|r| parse_hex32(&r.preimage)) {
                                Some(pre) => Settle::Fulfill(pre),
                                None => {
                                    let f = FailureMessage::IncorrectOrUnknownPaymentDetails {
                                        htlc_msat: htlc.amount_msat,
                                        height,
                                    };
                                    Settle::Fail(create_error_packet(&shared_secret, &f))
                                }
                            }
                        }
                        Ok(_) => {
                            // Already paid, or a partial payment (MPP is not supported yet).
                            let f = FailureMessage::IncorrectOrUnknownPaymentDetails {
                                htlc_msat: htlc.amount_msat,
                                height,
                            };
                            Settle::Fail(create_error_packet(&shared_secret, &f))
                        }
                        Err(f) => {
                            tracing::info!(failure = ?f, "rejecting an incoming payment");
                            Settle::Fail(create_error_packet(&shared_secret, &f))
                        }
                    }
                }
            }
        };
        let Some(e) = self.channels.get_mut(i) else {
            return;
        };
        let res = match decision {
            Settle::Fulfill(preimage) => {
                let r = e.ch.fulfill_htlc(id, PaymentPreimage(preimage));
                if r.is_ok() {
                    let key = hex::encode(hash.0);
                    if let Some(mut rec) = self.invoices.get(&key).cloned() {
                        rec.info.status = InvoiceStatus::Paid;
                        rec.info.received_msat = Some(htlc.amount_msat);
                        rec.info.paid_at = Some(now);
                        let info = rec.info.clone();
                        self.save_invoice(rec);
                        self.event(NodeEvent::InvoicePaid(info));
                    }
                }
                r
            }
            Settle::Fail(packet) => e.ch.fail_htlc(id, packet),
            Settle::Malformed(code, sha) => e.ch.fail_malformed_htlc(id, sha, code),
        };
        if let Err(err) = res {
            tracing::warn!(htlc = id, error = %err, "settling an incoming HTLC");
        }
    }

    fn payment_by_htlc(&self, chan: i64, htlc_id: u64) -> Option<String> {
        self.payment_by_htlc.get(&(chan, htlc_id)).cloned()
    }

    /// One of our HTLCs was fulfilled (`Ok(preimage)`) or failed (`Err(why)`).
    pub(crate) fn on_htlc_settled(
        &mut self,
        i: usize,
        htlc_id: u64,
        outcome: Result<[u8; 32], String>,
    ) {
        let Some(chan) = self.channels.get(i).map(|e| e.id) else {
            return;
        };
        let Some(key) = self.payment_by_htlc(chan, htlc_id) else {
            tracing::debug!(htlc = htlc_id, "settled HTLC without a pending payment");
            return;
        };
        let Some(mut rec) = self.payments.get(&key).cloned() else {
            return;
        };
        match outcome {
            Ok(pre) => {
                if sha256::Hash::hash(&pre).to_byte_array().to_vec()
                    != hex::decode(&key).unwrap_or_default()
                {
                    tracing::error!("fulfilled with a preimage that does not match");
                    return;
                }
                rec.info.status = PaymentStatus::Succeeded;
                rec.info.preimage = Some(hex::encode(pre));
            }
            Err(why) => {
                rec.info.status = PaymentStatus::Failed;
                rec.info.failure = Some(why);
            }
        }
        rec.info.completed_at = Some(self.now);
        let info = rec.info.clone();
        self.save_payment(rec);
        self.event(NodeEvent::PaymentCompleted(info));
    }

    /// One of our HTLCs failed with an error onion: attribute it.
    pub(crate) fn on_htlc_failed(&mut self, i: usize, htlc_id: u64, reason: Vec<u8>) {
        let Some(chan) = self.channels.get(i).map(|e| e.id) else {
            return;
        };
        let why = match self
            .payment_by_htlc(chan, htlc_id)
            .and_then(|k| self.payments.get(&k))
        {
            Some(p) => {
                let secrets: Vec<[u8; 32]> = p
                    .shared_secrets
                    .iter()
                    .filter_map(|s| parse_hex32(s))
                    .collect();
                match decode_error_packet(&secrets, &reason) {
                    Ok(a) => format!(
                        "{:?} (code {:#06x}) at hop {}",
                        a.failure,
                        a.failure.code(),
                        a.hop_index
                    ),
                    Err(e) => format!("failure onion could not be decoded: {e}"),
                }
            }
            None => String::new(),
        };
        self.on_htlc_settled(i, htlc_id, Err(why));
    }
}
