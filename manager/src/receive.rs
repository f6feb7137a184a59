//! Receiving payments at the final hop: an invoice paid by one HTLC or by several (basic MPP:
//! parts are held until they add up to the invoice's total, then all are fulfilled; after 60 s
//! without the rest, all fail with `mpp_timeout`), and keysend payments (the preimage comes
//! in the onion; accepted when [`crate::ManagerConfig::accept_keysend`] is set).
//!
//! Owns: the decision for an HTLC that reached its final hop, and the sets of held parts.
//! Must never: release a preimage before the parts add up, for an HTLC that fails the BOLT 4
//! final-hop checks, or for a keysend whose preimage does not match its hash. Held parts are
//! kept in memory only: after a restart they are not resumed (the payer's retry or the
//! HTLCs' deadlines resolve them).

use fulmen_channel::machine::HtlcInfo;
use fulmen_htlc::forward::{check_final_hop, ExpectedPayment, FinalHopAccept, IncomingHtlc};
use fulmen_htlc::mpp::{MppPart, MppSet, MppStatus, MPP_TIMEOUT_SECS};
use fulmen_htlc::onion::{create_error_packet, HopPayload};
use fulmen_htlc::{FailureMessage, PaymentHash, PaymentPreimage, PaymentSecret};

use crate::api::{InvoiceInfo, InvoiceStatus};
use crate::manager::Manager;
use crate::payments::{parse_hex32, Settle, MIN_FINAL_CLTV};
use crate::types::{InvoiceRecord, NodeEvent};

/// Parts of one multi-part payment held so far.
#[derive(Debug)]
pub(crate) struct HeldSet {
    set: MppSet,
    /// (local channel id, HTLC id, amount, shared secret) of each part.
    parts: Vec<(i64, u64, u64, [u8; 32])>,
}

impl Manager {
    /// The decision for an HTLC that reached us as its final hop; `None` while it is held
    /// as a part of an incomplete multi-part payment.
    pub(crate) fn receive_decision(
        &mut self,
        i: usize,
        id: u64,
        htlc: &HtlcInfo,
        payload: &HopPayload,
        shared_secret: [u8; 32],
    ) -> Option<Settle> {
        let hash = htlc.payment_hash;
        let height = self.height;
        let now = self.now;
        let fail = |f: FailureMessage| Some(Settle::Fail(create_error_packet(&shared_secret, &f)));
        let details = FailureMessage::IncorrectOrUnknownPaymentDetails {
            htlc_msat: htlc.amount_msat,
            height,
        };
        let key = hex::encode(hash.0);
        let incoming = IncomingHtlc {
            amount_msat: htlc.amount_msat,
            cltv_expiry: htlc.cltv_expiry,
        };
        if let (Some(pre), false) = (payload.keysend_preimage, self.invoices.contains_key(&key)) {
            return self.keysend_decision(&incoming, payload, pre, hash, shared_secret);
        }
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
        let already_paid = rec
            .as_ref()
            .is_some_and(|r| r.info.status == InvoiceStatus::Paid);
        let preimage = rec.as_ref().and_then(|r| parse_hex32(&r.preimage));
        match check_final_hop(&incoming, payload, expected.as_ref(), height, now) {
            Err(f) => {
                tracing::info!(failure = ?f, "rejecting an incoming payment");
                fail(f)
            }
            Ok(_) if already_paid => fail(details),
            Ok(FinalHopAccept::Complete) => match preimage {
                Some(pre) => Some(Settle::Fulfill(pre)),
                None => fail(details),
            },
            Ok(FinalHopAccept::Partial { total_msat }) => {
                let chan = self.channels.get(i)?.id;
                let held = self.mpp.entry(hash).or_insert_with(|| HeldSet {
                    set: MppSet::new(total_msat, now),
                    parts: Vec::new(),
                });
                let part = MppPart {
                    id: held.parts.len() as u64,
                    amount_msat: htlc.amount_msat,
                };
                match held.set.add(part, total_msat, height) {
                    Err(f) => fail(f),
                    Ok(MppStatus::Waiting { received_msat }) => {
                        held.parts.push((chan, id, htlc.amount_msat, shared_secret));
                        tracing::info!(payment = %hash, received_msat, total_msat, "holding a part");
                        None
                    }
                    Ok(MppStatus::Complete { .. }) => {
                        let Some(pre) = preimage else {
                            return fail(details);
                        };
                        let others = self.mpp.remove(&hash).map(|h| h.parts).unwrap_or_default();
                        for (c, h, amount, _) in others {
                            if let Some(e) = self.channels.iter_mut().find(|e| e.id == c) {
                                if let Err(err) = e.ch.fulfill_htlc(h, PaymentPreimage(pre)) {
                                    tracing::warn!(error = %err, "fulfilling a held part");
                                } else {
                                    self.note_received(&hash, amount);
                                }
                            }
                        }
                        Some(Settle::Fulfill(pre))
                    }
                }
            }
        }
    }

    fn keysend_decision(
        &mut self,
        incoming: &IncomingHtlc,
        payload: &HopPayload,
        pre: PaymentPreimage,
        hash: PaymentHash,
        shared_secret: [u8; 32],
    ) -> Option<Settle> {
        let height = self.height;
        let details = FailureMessage::IncorrectOrUnknownPaymentDetails {
            htlc_msat: incoming.amount_msat,
            height,
        };
        let fail = |f: FailureMessage| Some(Settle::Fail(create_error_packet(&shared_secret, &f)));
        if !self.config.accept_keysend || !pre.matches(&hash) {
            return fail(details);
        }
        if incoming.amount_msat < payload.amt_to_forward {
            return fail(FailureMessage::FinalIncorrectHtlcAmount {
                incoming_htlc_amt: incoming.amount_msat,
            });
        }
        if incoming.cltv_expiry < payload.outgoing_cltv_value
            || incoming.cltv_expiry < height.saturating_add(MIN_FINAL_CLTV)
        {
            return fail(FailureMessage::FinalIncorrectCltvExpiry {
                cltv_expiry: incoming.cltv_expiry,
            });
        }
        // Recorded like an invoice (marked paid when the fulfill goes out).
        let rec = InvoiceRecord {
            info: InvoiceInfo {
                bolt11: String::new(),
                payment_hash: hex::encode(hash.0),
                amount_msat: incoming.amount_msat,
                description: "keysend".into(),
                status: InvoiceStatus::Unpaid,
                received_msat: None,
                created_at: self.now,
                expires_at: self.now,
                paid_at: None,
            },
            preimage: hex::encode(pre.0),
            payment_secret: String::new(),
            min_final_cltv: MIN_FINAL_CLTV,
        };
        self.save_invoice(rec);
        Some(Settle::Fulfill(pre.0))
    }

    /// Adds `amount_msat` to what the invoice of `hash` received and marks it paid.
    pub(crate) fn note_received(&mut self, hash: &PaymentHash, amount_msat: u64) {
        let key = hex::encode(hash.0);
        if let Some(mut rec) = self.invoices.get(&key).cloned() {
            let first = rec.info.status != InvoiceStatus::Paid;
            rec.info.status = InvoiceStatus::Paid;
            rec.info.received_msat = Some(rec.info.received_msat.unwrap_or(0) + amount_msat);
            rec.info.paid_at.get_or_insert(self.now);
            let info = rec.info.clone();
            self.save_invoice(rec);
            if first {
                self.event(NodeEvent::InvoicePaid(info));
            }
        }
    }

    /// Fails every held multi-part set whose rest did not arrive in time (`mpp_timeout`).
    pub(crate) fn expire_mpp_sets(&mut self) {
        let now = self.now;
        let mut expired: Vec<PaymentHash> = self
            .mpp
            .iter()
            .filter(|(_, h)| h.set.timed_out(now, MPP_TIMEOUT_SECS))
            .map(|(k, _)| *k)
            .collect();
        expired.sort();
        for hash in expired {
            let Some(held) = self.mpp.remove(&hash) else {
                continue;
            };
            tracing::info!(payment = %hash, parts = held.parts.len(), "multi-part payment timed out");
            for (c, h, _, ss) in held.parts {
                let packet = create_error_packet(&ss, &fulmen_htlc::forward::mpp_timeout());
                if let Some(e) = self.channels.iter_mut().find(|e| e.id == c) {
                    if let Err(err) = e.ch.fail_htlc(h, packet) {
                        tracing::warn!(error = %err, "failing a held part");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ManagerConfig, NodeSecrets, Stored};
    use bitcoin::secp256k1::SecretKey;
    use fulmen_channel::machine::{ChannelConfig, Entropy};

    const NOW: u64 = 1_700_000_000;

    struct Counter(u8);
    impl Entropy for Counter {
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for b in dest {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
    }

    /// A payee whose store holds one paid invoice (preimage `[9; 32]`).
    fn payee() -> (Manager, InvoiceRecord) {
        let pre = PaymentPreimage([9; 32]);
        let paid = InvoiceRecord {
            info: InvoiceInfo {
                bolt11: String::new(),
                payment_hash: hex::encode(pre.payment_hash().0),
                amount_msat: 5_000_000,
                description: "paid".into(),
                status: InvoiceStatus::Paid,
                received_msat: Some(5_000_000),
                created_at: NOW,
                expires_at: NOW + 3600,
                paid_at: Some(NOW),
            },
            preimage: hex::encode(pre.0),
            payment_secret: hex::encode([8; 32]),
            min_final_cltv: MIN_FINAL_CLTV,
        };
        let config = ManagerConfig {
            alias: "payee".into(),
            listen: None,
            dev: false,
            channel_config: ChannelConfig::default(),
            funding_sat_per_vb: 2,
            max_pending_inbound_opens: crate::MAX_PENDING_INBOUND_OPENS,
            forwarding: crate::DEFAULT_POLICY,
            accept_keysend: true,
            announce_channels: true,
            announce_depth: 1,
            tower: false,
        };
        let secrets = NodeSecrets {
            node_secret: SecretKey::from_slice(&[0x11; 32]).expect("a key"),
            channel_seed: [0x22; 32],
            wallet_seed: fulmen_wallet::Seed::from_phrase(
                "abandon abandon abandon abandon abandon abandon abandon abandon abandon \
                 abandon abandon about",
            )
            .expect("a phrase"),
        };
        let stored = Stored {
            invoices: vec![paid.clone()],
            ..Stored::default()
        };
        let m =
            Manager::new(config, secrets, Box::new(Counter(0)), stored, NOW).expect("a manager");
        (m, paid)
    }

    /// A keysend HTLC reusing the paid invoice's preimage.
    fn keysend_again(m: &mut Manager) -> Option<Settle> {
        let pre = PaymentPreimage([9; 32]);
        let htlc = HtlcInfo {
            amount_msat: 5_000_000,
            payment_hash: pre.payment_hash(),
            cltv_expiry: 1_000,
        };
        let payload = HopPayload {
            amt_to_forward: 5_000_000,
            outgoing_cltv_value: 1_000,
            short_channel_id: None,
            payment_data: None,
            payment_metadata: None,
            keysend_preimage: Some(pre),
        };
        m.receive_decision(0, 0, &htlc, &payload, [1; 32])
    }

    /// A paid invoice is not loaded at start; recalled for a turn (as the shell does for the
    /// HTLCs of the turn), a keysend reusing its preimage is refused as a repeat instead of
    /// being taken as a new payment that would overwrite the invoice's row — which is what
    /// happens without the recall.
    #[test]
    fn a_recalled_paid_invoice_refuses_a_keysend_reusing_its_preimage() {
        let (mut m, paid) = payee();
        assert_eq!(m.invoice_count(), 0, "paid invoices are not loaded");
        m.recall_invoices(vec![paid]);
        assert!(matches!(keysend_again(&mut m), Some(Settle::Fail(_))));
        assert!(m.pending.invoices.is_empty(), "nothing rewritten");

        let (mut m, _) = payee();
        assert!(matches!(keysend_again(&mut m), Some(Settle::Fulfill(_))));
        assert_eq!(
            m.pending.invoices.len(),
            1,
            "a keysend row under the paid hash"
        );
    }
}
