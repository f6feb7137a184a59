//! Payments: issuing invoices, paying them over a direct channel with a real one-hop onion,
//! settling HTLCs that reach us, and recording outcomes.
//!
//! Owns: [`InvoiceRecord`]s and [`PaymentRecord`]s and their status changes (queued into the
//! turn's writes together with the channel records that cause them); the
//! [`NodeEvent::PaymentCompleted`] that wakes `pay` callers after the write. Must never:
//! release a preimage for an HTLC that fails the BOLT 4 final-hop checks, or pay an invoice
//! twice.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::PublicKey;
use fulmen_channel::machine::HtlcInfo;
use fulmen_htlc::invoice::{
    create_invoice, parse_invoice, Invoice, InvoiceDescription, InvoiceParams,
};
use fulmen_htlc::onion::{create_error_packet, process_onion, OnionReject, ProcessedOnion};
use fulmen_htlc::{FailureMessage, PaymentHash, PaymentPreimage, PaymentSecret};
use fulmen_wire::msgs::OnionPacket;

use crate::api::{InvoiceInfo, InvoiceStatus, PaymentInfo, PaymentStatus};
use crate::manager::Manager;
use crate::send::{PartFailure, PaymentPlan, DEFAULT_PAY_TIMEOUT_SECS};
use crate::types::{CmdError, InvoiceRecord, PaymentRecord, RequestId, Response};

/// `min_final_cltv_expiry_delta` of our invoices (the BOLT 11 default).
pub const MIN_FINAL_CLTV: u32 = 18;
/// Blocks added to the final CLTV so a payee a block or two ahead still accepts.
const CLTV_SLACK: u32 = 3;
/// Most blocks our funds may be locked up by one payment: the payer refuses an invoice
/// whose final CLTV (with the slack) asks for more (2016 blocks, as other implementations).
pub const MAX_TOTAL_CLTV_DELTA: u32 = 2016;

/// What to do with an HTLC that reached us.
pub(crate) enum Settle {
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
            basic_mpp: true,
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
        self.invoices.insert(key, rec);
    }

    pub(crate) fn save_payment(&mut self, rec: PaymentRecord) {
        self.index_payment(&rec);
        // A payment no longer open stays here until the batch holding this record is
        // durable (`Manager::persisted` then drops it: the store has it from then on).
        self.pending.payments.push(rec.clone());
        self.payments.insert(rec.info.payment_hash.clone(), rec);
    }

    /// Indexes every part of `rec` still pending by its HTLC, and forgets the others (a
    /// payment stored before parts existed has its one HTLC in `channel` / `htlc_id`).
    pub(crate) fn index_payment(&mut self, rec: &PaymentRecord) {
        let key = &rec.info.payment_hash;
        if rec.parts.is_empty() {
            if let (Some(c), Some(h)) = (rec.channel, rec.htlc_id) {
                if rec.is_pending() {
                    self.payment_by_htlc.insert((c, h), key.clone());
                } else {
                    self.payment_by_htlc.remove(&(c, h));
                }
            }
        }
        for p in &rec.parts {
            if p.status == PaymentStatus::Pending {
                self.payment_by_htlc
                    .insert((p.channel, p.htlc_id), key.clone());
            } else {
                self.payment_by_htlc.remove(&(p.channel, p.htlc_id));
            }
        }
    }

    /// `pay`: an invoice, over a route (retried, split if needed) within the fee limit
    /// (default 1 % + 50 sat) and the time limit (default 60 s).
    pub(crate) fn pay(
        &mut self,
        request: RequestId,
        invoice: &str,
        max_fee_msat: Option<u64>,
        timeout_secs: Option<u64>,
    ) {
        match parse_invoice(invoice.trim()) {
            Ok(inv) => self.pay_invoice(request, &inv, max_fee_msat, timeout_secs),
            Err(e) => self.reply(request, Err(CmdError::invalid(format!("bad invoice: {e}")))),
        }
    }

    /// `pay` of a parsed invoice (see [`Command::PayInvoice`]).
    pub(crate) fn pay_invoice(
        &mut self,
        request: RequestId,
        inv: &Invoice,
        max_fee_msat: Option<u64>,
        timeout_secs: Option<u64>,
    ) {
        let res = self.start_payment(inv, max_fee_msat, timeout_secs);
        self.reply(request, res.map(Response::PaymentStarted));
    }

    fn start_payment(
        &mut self,
        inv: &Invoice,
        max_fee_msat: Option<u64>,
        timeout_secs: Option<u64>,
    ) -> Result<PaymentInfo, CmdError> {
        let (hash, plan) = self.plan_invoice_payment(inv, max_fee_msat, timeout_secs)?;
        self.begin_payment(hash, plan)
    }

    /// The checks of `pay` on an invoice, and the plan of paying it; refused if the
    /// invoice is not for us to pay now, or is being paid or paid already.
    pub(crate) fn plan_invoice_payment(
        &self,
        inv: &Invoice,
        max_fee_msat: Option<u64>,
        timeout_secs: Option<u64>,
    ) -> Result<(PaymentHash, PaymentPlan), CmdError> {
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
        self.check_not_paying(&hash)?;
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
        let plan = PaymentPlan {
            payee: payee.to_string(),
            total_msat: amount,
            payment_secret: Some(hex::encode(inv.payment_secret().0)),
            keysend_preimage: None,
            final_cltv_delta: final_cltv,
            max_fee_msat: max_fee_msat
                .unwrap_or_else(|| fulmen_routing::pathfind::default_max_fee_msat(amount)),
            deadline: now.saturating_add(timeout_secs.unwrap_or(DEFAULT_PAY_TIMEOUT_SECS)),
            bolt11: Some(inv.as_str().to_string()),
            ..PaymentPlan::default()
        };
        Ok((hash, plan))
    }

    /// `keysend`: a spontaneous payment; we choose the preimage and put it in the onion.
    pub(crate) fn keysend(
        &mut self,
        request: RequestId,
        node_id: PublicKey,
        amount_msat: u64,
        max_fee_msat: Option<u64>,
    ) {
        let res = (|| {
            if amount_msat == 0 {
                return Err(CmdError::invalid("amount_msat must be positive"));
            }
            if node_id == self.node_id {
                return Err(CmdError::invalid("cannot keysend to ourselves"));
            }
            let preimage = PaymentPreimage(self.random32());
            let hash = preimage.payment_hash();
            self.check_not_paying(&hash)?;
            let plan = PaymentPlan {
                payee: node_id.to_string(),
                total_msat: amount_msat,
                payment_secret: None,
                keysend_preimage: Some(hex::encode(preimage.0)),
                final_cltv_delta: MIN_FINAL_CLTV + CLTV_SLACK,
                max_fee_msat: max_fee_msat
                    .unwrap_or_else(|| fulmen_routing::pathfind::default_max_fee_msat(amount_msat)),
                deadline: self.now.saturating_add(DEFAULT_PAY_TIMEOUT_SECS),
                ..PaymentPlan::default()
            };
            self.begin_payment(hash, plan)
        })();
        self.reply(request, res.map(Response::PaymentStarted));
    }

    fn check_not_paying(&self, hash: &PaymentHash) -> Result<(), CmdError> {
        // Payments no longer open leave memory once durable: the shell checked its store
        // before handing over the command (see `crate::history`); this covers the rest.
        let earlier = self.payments.get(&hex::encode(hash.0));
        crate::history::refuse_repeat(earlier.map(|p| p.info.status))
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
            // Over our dust exposure limit: fail it whatever it asks (BOLT 2).
            Ok(ProcessedOnion::Forward { shared_secret, .. })
            | Ok(ProcessedOnion::Receive { shared_secret, .. })
                if must_fail =>
            {
                let f = FailureMessage::TemporaryChannelFailure {
                    channel_update: Vec::new(),
                };
                Settle::Fail(create_error_packet(&shared_secret, &f))
            }
            Ok(ProcessedOnion::Forward {
                payload,
                next,
                shared_secret,
            }) => {
                let next = OnionPacket(Box::new(next.to_bytes()));
                match self.forward_htlc(i, id, htlc, payload, next, shared_secret) {
                    Some(s) => s,
                    None => return,
                }
            }
            Ok(ProcessedOnion::Receive {
                payload,
                shared_secret,
            }) => match self.receive_decision(i, id, &htlc, &payload, shared_secret) {
                Some(s) => s,
                None => return,
            },
        };
        let Some(e) = self.channels.get_mut(i) else {
            return;
        };
        let res = match decision {
            Settle::Fulfill(preimage) => {
                let r = e.ch.fulfill_htlc(id, PaymentPreimage(preimage));
                if r.is_ok() {
                    self.note_received(&hash, htlc.amount_msat);
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

    /// One of our HTLCs was fulfilled (`Ok(preimage)`) or failed without an error onion
    /// (`Err(why)`).
    pub(crate) fn on_htlc_settled(
        &mut self,
        i: usize,
        htlc_id: u64,
        outcome: Result<[u8; 32], String>,
    ) {
        let Some(chan) = self.channels.get(i).map(|e| e.id) else {
            return;
        };
        let known = match outcome {
            Ok(pre) => self.part_fulfilled(chan, htlc_id, PaymentPreimage(pre)),
            Err(why) => self.part_failed(chan, htlc_id, PartFailure::Text(why)),
        };
        if !known {
            tracing::debug!(htlc = htlc_id, "settled HTLC without a pending payment");
        }
    }

    /// One of our HTLCs failed with an error onion.
    pub(crate) fn on_htlc_failed(&mut self, i: usize, htlc_id: u64, reason: Vec<u8>) {
        let Some(chan) = self.channels.get(i).map(|e| e.id) else {
            return;
        };
        if !self.part_failed(chan, htlc_id, PartFailure::Onion(reason)) {
            tracing::debug!(htlc = htlc_id, "failed HTLC without a pending payment");
        }
    }
}
