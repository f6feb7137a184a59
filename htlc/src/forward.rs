//! Forwarding and final-hop rules (BOLT 4 / BOLT 7) as pure functions: each check returns
//! the exact BOLT 4 [`FailureMessage`] the node must send back.
//!
//! The node supplies everything (channel policy, current height, "now", the invoice it
//! issued); nothing here reads a clock, a store or the network.

use crate::failure::FailureMessage;
use crate::onion::HopPayload;
use crate::payment::{PaymentHash, PaymentSecret};

/// Blocks within which an outgoing HTLC would expire too soon to be safe to forward.
pub const DEFAULT_MIN_OUTGOING_CLTV_MARGIN: u32 = 3;
/// An outgoing CLTV more than this many blocks ahead is refused (`expiry_too_far`).
pub const DEFAULT_MAX_CLTV_EXPIRY_DELTA: u32 = 2016;

/// The policy this node advertised (its `channel_update`) for the outgoing channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardingPolicy {
    /// `fee_base_msat`.
    pub fee_base_msat: u32,
    /// `fee_proportional_millionths`.
    pub fee_proportional_millionths: u32,
    /// `cltv_expiry_delta`.
    pub cltv_expiry_delta: u16,
    /// `htlc_minimum_msat`.
    pub htlc_minimum_msat: u64,
    /// `htlc_maximum_msat`.
    pub htlc_maximum_msat: u64,
    /// False if the channel is disabled in its latest update.
    pub enabled: bool,
    /// The latest `channel_update` message bytes, enclosed as-is in UPDATE failures (BOLT 4
    /// now asks for the full message including its 2-byte type 258; readers accept both).
    pub channel_update: Vec<u8>,
}

/// The incoming HTLC as received on the upstream channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingHtlc {
    /// Amount of the incoming HTLC.
    pub amount_msat: u64,
    /// `cltv_expiry` of the incoming HTLC.
    pub cltv_expiry: u32,
}

/// Limits the node applies to outgoing expiries relative to the current height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CltvLimits {
    /// Outgoing CLTV must be more than `height + min_margin` (else `expiry_too_soon`).
    pub min_margin: u32,
    /// Outgoing CLTV must be at most `height + max_delta` (else `expiry_too_far`).
    pub max_delta: u32,
}

impl Default for CltvLimits {
    fn default() -> Self {
        CltvLimits {
            min_margin: DEFAULT_MIN_OUTGOING_CLTV_MARGIN,
            max_delta: DEFAULT_MAX_CLTV_EXPIRY_DELTA,
        }
    }
}

/// Fee a forwarding node charges to forward `amount_msat`:
/// `fee_base_msat + amount_msat * fee_proportional_millionths / 1_000_000` (rounded down,
/// computed without overflow; saturates at `u64::MAX`).
pub fn forwarding_fee(
    fee_base_msat: u32,
    fee_proportional_millionths: u32,
    amount_msat: u64,
) -> u64 {
    let prop = u128::from(amount_msat) * u128::from(fee_proportional_millionths) / 1_000_000;
    let fee = prop + u128::from(fee_base_msat);
    u64::try_from(fee).unwrap_or(u64::MAX)
}

/// Checks an HTLC to forward over the channel with `policy`. `payload` is this hop's
/// decoded onion payload. Returns the failure to send back, in BOLT 4 precedence:
/// disabled channel, amount limits, fee, CLTV delta, expiry too soon / too far.
pub fn check_forward(
    policy: &ForwardingPolicy,
    incoming: &IncomingHtlc,
    payload: &HopPayload,
    current_height: u32,
    limits: &CltvLimits,
) -> Result<(), FailureMessage> {
    let update = || policy.channel_update.clone();
    if !policy.enabled {
        return Err(FailureMessage::ChannelDisabled {
            disabled_flags: 0,
            channel_update: update(),
        });
    }
    let out_amt = payload.amt_to_forward;
    if out_amt < policy.htlc_minimum_msat {
        return Err(FailureMessage::AmountBelowMinimum {
            htlc_msat: incoming.amount_msat,
            channel_update: update(),
        });
    }
    if out_amt > policy.htlc_maximum_msat {
        return Err(FailureMessage::TemporaryChannelFailure {
            channel_update: update(),
        });
    }
    let fee = forwarding_fee(
        policy.fee_base_msat,
        policy.fee_proportional_millionths,
        out_amt,
    );
    let needed = out_amt.saturating_add(fee);
    if incoming.amount_msat < needed {
        return Err(FailureMessage::FeeInsufficient {
            htlc_msat: incoming.amount_msat,
            channel_update: update(),
        });
    }
    let out_cltv = payload.outgoing_cltv_value;
    if u64::from(incoming.cltv_expiry) < u64::from(out_cltv) + u64::from(policy.cltv_expiry_delta) {
        return Err(FailureMessage::IncorrectCltvExpiry {
            cltv_expiry: incoming.cltv_expiry,
            channel_update: update(),
        });
    }
    if u64::from(out_cltv) <= u64::from(current_height) + u64::from(limits.min_margin) {
        return Err(FailureMessage::ExpiryTooSoon {
            channel_update: update(),
        });
    }
    if u64::from(out_cltv) > u64::from(current_height) + u64::from(limits.max_delta) {
        return Err(FailureMessage::ExpiryTooFar);
    }
    Ok(())
}

/// The failure for an HTLC whose `short_channel_id` names no channel we have.
pub fn unknown_next_peer() -> FailureMessage {
    FailureMessage::UnknownNextPeer
}

/// What the final node knows about a payment it expects (from the invoice it issued).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedPayment {
    /// The payment hash (the node found the preimage for it).
    pub payment_hash: PaymentHash,
    /// The payment secret put in the invoice.
    pub payment_secret: PaymentSecret,
    /// Invoice amount; `None` for "any amount".
    pub amount_msat: Option<u64>,
    /// The invoice's `min_final_cltv_expiry_delta`.
    pub min_final_cltv_expiry_delta: u32,
    /// Invoice expiry as UNIX seconds (`timestamp + expiry`).
    pub expires_at_secs: u64,
}

/// How the final node should treat an HTLC that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalHopAccept {
    /// This HTLC alone pays the whole amount: settle it.
    Complete,
    /// Part of a multi-part payment of `total_msat`: hold it until the parts add up
    /// (or fail all with `mpp_timeout`).
    Partial {
        /// `total_msat` from `payment_data`.
        total_msat: u64,
    },
}

/// Checks an HTLC arriving at its final hop. `expected` is `None` if the payment hash is
/// unknown. `now_secs` and `current_height` come from the caller.
///
/// Failures: `final_incorrect_htlc_amount` (incoming amount below the onion's),
/// `final_incorrect_cltv_expiry` (incoming expiry below the onion's), and
/// `incorrect_or_unknown_payment_details` for unknown hash, missing or wrong payment
/// secret, amount below the invoice or above twice it, expiry too close, expired invoice.
pub fn check_final_hop(
    incoming: &IncomingHtlc,
    payload: &HopPayload,
    expected: Option<&ExpectedPayment>,
    current_height: u32,
    now_secs: u64,
) -> Result<FinalHopAccept, FailureMessage> {
    if incoming.amount_msat < payload.amt_to_forward {
        return Err(FailureMessage::FinalIncorrectHtlcAmount {
            incoming_htlc_amt: incoming.amount_msat,
        });
    }
    if incoming.cltv_expiry < payload.outgoing_cltv_value {
        return Err(FailureMessage::FinalIncorrectCltvExpiry {
            cltv_expiry: incoming.cltv_expiry,
        });
    }
    let details = || FailureMessage::IncorrectOrUnknownPaymentDetails {
        htlc_msat: incoming.amount_msat,
        height: current_height,
    };
    let expected = expected.ok_or_else(details)?;
    let data = payload.payment_data.as_ref().ok_or_else(details)?;
    if data.payment_secret != expected.payment_secret {
        return Err(details());
    }
    if now_secs >= expected.expires_at_secs {
        return Err(details());
    }
    let min_expiry = u64::from(current_height) + u64::from(expected.min_final_cltv_expiry_delta);
    if u64::from(incoming.cltv_expiry) < min_expiry {
        return Err(details());
    }
    if let Some(amt) = expected.amount_msat {
        if data.total_msat < amt || data.total_msat > amt.saturating_mul(2) {
            return Err(details());
        }
    }
    if incoming.amount_msat >= data.total_msat {
        Ok(FinalHopAccept::Complete)
    } else {
        Ok(FinalHopAccept::Partial {
            total_msat: data.total_msat,
        })
    }
}

/// The failure for every part of a multi-part payment that did not complete in time.
pub fn mpp_timeout() -> FailureMessage {
    FailureMessage::MppTimeout
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onion::PaymentData;

    fn policy() -> ForwardingPolicy {
        ForwardingPolicy {
            fee_base_msat: 1000,
            fee_proportional_millionths: 100,
            cltv_expiry_delta: 40,
            htlc_minimum_msat: 1000,
            htlc_maximum_msat: 1_000_000_000,
            enabled: true,
            channel_update: vec![1, 2],
        }
    }

    #[test]
    fn fee_formula() {
        assert_eq!(forwarding_fee(1000, 100, 1_000_000), 1100);
        assert_eq!(forwarding_fee(0, 1, 999_999), 0);
        assert_eq!(forwarding_fee(u32::MAX, u32::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn forward_checks_each_failure() {
        let p = policy();
        let lim = CltvLimits::default();
        let pl = HopPayload::forward(1_000_000, 600, 7);
        let ok = IncomingHtlc {
            amount_msat: 1_001_100,
            cltv_expiry: 640,
        };
        assert_eq!(check_forward(&p, &ok, &pl, 500, &lim), Ok(()));
        let low_fee = IncomingHtlc {
            amount_msat: 1_001_099,
            ..ok
        };
        assert_eq!(
            check_forward(&p, &low_fee, &pl, 500, &lim)
                .unwrap_err()
                .code(),
            FailureMessage::FeeInsufficient {
                htlc_msat: 0,
                channel_update: vec![]
            }
            .code()
        );
        let bad_cltv = IncomingHtlc {
            cltv_expiry: 639,
            ..ok
        };
        assert_eq!(
            check_forward(&p, &bad_cltv, &pl, 500, &lim),
            Err(FailureMessage::IncorrectCltvExpiry {
                cltv_expiry: 639,
                channel_update: vec![1, 2]
            })
        );
        assert_eq!(
            check_forward(&p, &ok, &pl, 597, &lim),
            Err(FailureMessage::ExpiryTooSoon {
                channel_update: vec![1, 2]
            })
        );
        assert_eq!(check_forward(&p, &ok, &pl, 596, &lim), Ok(()));
        let far = HopPayload::forward(1_000_000, 5000, 7);
        let inc = IncomingHtlc {
            amount_msat: 1_001_100,
            cltv_expiry: 5040,
        };
        assert_eq!(
            check_forward(&p, &inc, &far, 500, &lim),
            Err(FailureMessage::ExpiryTooFar)
        );
        let tiny = HopPayload::forward(999, 600, 7);
        assert!(matches!(
            check_forward(&p, &ok, &tiny, 500, &lim),
            Err(FailureMessage::AmountBelowMinimum {
                htlc_msat: 1_001_100,
                ..
            })
        ));
        let disabled = ForwardingPolicy {
            enabled: false,
            ..p
        };
        assert!(matches!(
            check_forward(&disabled, &ok, &pl, 500, &lim),
            Err(FailureMessage::ChannelDisabled { .. })
        ));
        assert_eq!(unknown_next_peer().code(), 0x400a);
    }

    #[test]
    fn final_hop_checks_each_failure() {
        let secret = PaymentSecret([1; 32]);
        let exp = ExpectedPayment {
            payment_hash: PaymentHash([2; 32]),
            payment_secret: secret,
            amount_msat: Some(10_000),
            min_final_cltv_expiry_delta: 18,
            expires_at_secs: 2000,
        };
        let pd = PaymentData {
            payment_secret: secret,
            total_msat: 10_000,
        };
        let pl = HopPayload::final_hop(10_000, 620, pd);
        let inc = IncomingHtlc {
            amount_msat: 10_000,
            cltv_expiry: 620,
        };
        assert_eq!(
            check_final_hop(&inc, &pl, Some(&exp), 600, 1000),
            Ok(FinalHopAccept::Complete)
        );
        let details = FailureMessage::IncorrectOrUnknownPaymentDetails {
            htlc_msat: 10_000,
            height: 600,
        };
        assert_eq!(
            check_final_hop(&inc, &pl, None, 600, 1000),
            Err(details.clone())
        );
        assert_eq!(
            check_final_hop(&inc, &pl, Some(&exp), 600, 2000),
            Err(details.clone())
        );
        let late = FailureMessage::IncorrectOrUnknownPaymentDetails {
            htlc_msat: 10_000,
            height: 603,
        };
        assert_eq!(check_final_hop(&inc, &pl, Some(&exp), 603, 1000), Err(late));
        let wrong_secret = HopPayload::final_hop(
            10_000,
            620,
            PaymentData {
                payment_secret: PaymentSecret([9; 32]),
                total_msat: 10_000,
            },
        );
        assert_eq!(
            check_final_hop(&inc, &wrong_secret, Some(&exp), 600, 1000),
            Err(details.clone())
        );
        let short = IncomingHtlc {
            amount_msat: 9_999,
            cltv_expiry: 620,
        };
        assert_eq!(
            check_final_hop(&short, &pl, Some(&exp), 600, 1000),
            Err(FailureMessage::FinalIncorrectHtlcAmount {
                incoming_htlc_amt: 9_999
            })
        );
        let early = IncomingHtlc {
            amount_msat: 10_000,
            cltv_expiry: 619,
        };
        assert_eq!(
            check_final_hop(&early, &pl, Some(&exp), 600, 1000),
            Err(FailureMessage::FinalIncorrectCltvExpiry { cltv_expiry: 619 })
        );
        // Multi-part: a 4000 msat part of a 10000 total.
        let part = HopPayload::final_hop(4_000, 620, pd);
        let inc_part = IncomingHtlc {
            amount_msat: 4_000,
            cltv_expiry: 620,
        };
        assert_eq!(
            check_final_hop(&inc_part, &part, Some(&exp), 600, 1000),
            Ok(FinalHopAccept::Partial { total_msat: 10_000 })
        );
        // Overpaying more than twice the invoice is refused.
        let over = HopPayload::final_hop(
            20_001,
            620,
            PaymentData {
                payment_secret: secret,
                total_msat: 20_001,
            },
        );
        let inc_over = IncomingHtlc {
            amount_msat: 20_001,
            cltv_expiry: 620,
        };
        assert!(check_final_hop(&inc_over, &over, Some(&exp), 600, 1000).is_err());
        assert_eq!(mpp_timeout().code(), 23);
    }
}
