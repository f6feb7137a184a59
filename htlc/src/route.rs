//! From a chosen path to per-hop onion payloads: amounts and CLTV expiries computed
//! backwards from the payee with each channel's fee and delta (the sender side of the
//! rules that `forward::check_forward` enforces at each hop).
//!
//! Pure arithmetic; overflow is an error, never a wrap or a panic.

use bitcoin::secp256k1::PublicKey;
use thiserror::Error;

use crate::forward::forwarding_fee;
use crate::onion::{HopPayload, OnionHop, PaymentData};

/// One hop of a path: the node reached and the channel (with that channel's policy, as
/// advertised by the channel's upstream end) used to reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathHop {
    /// The node this hop reaches.
    pub node_id: PublicKey,
    /// The channel into `node_id`.
    pub short_channel_id: u64,
    /// That channel's `fee_base_msat` (charged by the previous node when forwarding).
    pub fee_base_msat: u32,
    /// That channel's `fee_proportional_millionths`.
    pub fee_proportional_millionths: u32,
    /// That channel's `cltv_expiry_delta`.
    pub cltv_expiry_delta: u16,
}

/// The onion hops plus what the sender must put in its own `update_add_htlc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePayloads {
    /// One entry per path hop, ready for `onion::construct_onion`.
    pub hops: Vec<OnionHop>,
    /// Amount of the first HTLC (final amount plus all fees).
    pub first_amount_msat: u64,
    /// `cltv_expiry` of the first HTLC.
    pub first_cltv_expiry: u32,
    /// Total fees paid to intermediate nodes.
    pub total_fee_msat: u64,
}

/// Why payloads could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RouteError {
    /// The path has no hops.
    #[error("empty path")]
    EmptyPath,
    /// Amount or CLTV overflowed.
    #[error("amount or CLTV overflow along the path")]
    Overflow,
}

/// Builds the per-hop payloads for paying `amount_msat` to the last hop of `path`, with the
/// final HTLC expiring at `final_cltv_expiry` (absolute height: current height plus the
/// invoice's `min_final_cltv_expiry_delta`, from the caller). `payment_data` goes to the
/// final hop (its `total_msat` may exceed `amount_msat` for one part of an MPP payment).
pub fn build_route_payloads(
    path: &[PathHop],
    amount_msat: u64,
    final_cltv_expiry: u32,
    payment_data: Option<PaymentData>,
) -> Result<RoutePayloads, RouteError> {
    let n = path.len();
    if n == 0 {
        return Err(RouteError::EmptyPath);
    }
    // amounts[i] / cltvs[i]: the HTLC that arrives at path[i].
    let mut amounts = vec![0u64; n];
    let mut cltvs = vec![0u32; n];
    amounts[n - 1] = amount_msat;
    cltvs[n - 1] = final_cltv_expiry;
    for i in (0..n - 1).rev() {
        let next = &path[i + 1];
        let fee = forwarding_fee(
            next.fee_base_msat,
            next.fee_proportional_millionths,
            amounts[i + 1],
        );
        amounts[i] = amounts[i + 1]
            .checked_add(fee)
            .ok_or(RouteError::Overflow)?;
        cltvs[i] = cltvs[i + 1]
            .checked_add(u32::from(next.cltv_expiry_delta))
            .ok_or(RouteError::Overflow)?;
    }
    let hops = (0..n)
        .map(|i| {
            let payload = if i + 1 < n {
                HopPayload::forward(amounts[i + 1], cltvs[i + 1], path[i + 1].short_channel_id)
            } else {
                HopPayload {
                    amt_to_forward: amounts[i],
                    outgoing_cltv_value: cltvs[i],
                    short_channel_id: None,
                    payment_data,
                    payment_metadata: None,
                    keysend_preimage: None,
                }
            };
            OnionHop {
                pubkey: path[i].node_id,
                payload,
            }
        })
        .collect();
    Ok(RoutePayloads {
        hops,
        first_amount_msat: amounts[0],
        first_cltv_expiry: cltvs[0],
        total_fee_msat: amounts[0] - amount_msat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::{check_forward, CltvLimits, ForwardingPolicy, IncomingHtlc};
    use crate::payment::PaymentSecret;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};

    fn hop(i: u8, base: u32, prop: u32, delta: u16) -> PathHop {
        let secp = Secp256k1::new();
        let sk = SecretKey::from_slice(&[i; 32]).unwrap();
        PathHop {
            node_id: PublicKey::from_secret_key(&secp, &sk),
            short_channel_id: u64::from(i),
            fee_base_msat: base,
            fee_proportional_millionths: prop,
            cltv_expiry_delta: delta,
        }
    }

    #[test]
    fn three_hop_amounts_and_cltvs_pass_every_forward_check() {
        let path = [
            hop(1, 9, 9, 9),
            hop(2, 1000, 100, 40),
            hop(3, 500, 2000, 144),
        ];
        let pd = PaymentData {
            payment_secret: PaymentSecret([1; 32]),
            total_msat: 100_000,
        };
        let r = build_route_payloads(&path, 100_000, 700, Some(pd)).unwrap();
        // hop 2 (node 2) charges channel 3's fee: 500 + 100_000*2000/1e6 = 700.
        // node 1 charges channel 2's fee on 100_700: 1000 + 10 = 1010.
        assert_eq!(r.first_amount_msat, 101_710);
        assert_eq!(r.total_fee_msat, 1_710);
        assert_eq!(r.first_cltv_expiry, 700 + 144 + 40);
        assert_eq!(r.hops[2].payload.payment_data, Some(pd));
        // Each forwarding node accepts what arrives.
        let mut incoming = IncomingHtlc {
            amount_msat: r.first_amount_msat,
            cltv_expiry: r.first_cltv_expiry,
        };
        for i in 0..2 {
            let next = &path[i + 1];
            let policy = ForwardingPolicy {
                fee_base_msat: next.fee_base_msat,
                fee_proportional_millionths: next.fee_proportional_millionths,
                cltv_expiry_delta: next.cltv_expiry_delta,
                htlc_minimum_msat: 1,
                htlc_maximum_msat: u64::MAX,
                enabled: true,
                channel_update: vec![],
            };
            let p = &r.hops[i].payload;
            assert_eq!(
                check_forward(&policy, &incoming, p, 500, &CltvLimits::default()),
                Ok(())
            );
            incoming = IncomingHtlc {
                amount_msat: p.amt_to_forward,
                cltv_expiry: p.outgoing_cltv_value,
            };
        }
        assert_eq!(
            build_route_payloads(&[], 1, 1, None),
            Err(RouteError::EmptyPath)
        );
        assert_eq!(
            build_route_payloads(&path, u64::MAX, 1, None),
            Err(RouteError::Overflow)
        );
    }
}
