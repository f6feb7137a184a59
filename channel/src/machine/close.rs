//! How a channel ends and what it hands over for broadcast: [`CloseReason`] (persisted in
//! `Record::Closed`, reported in `Event::Closed`, displayed in RPC output) and
//! [`Broadcast`] (a transaction from `Channel::poll_broadcast` with what it is).
//!
//! Must never: hold a peer's text without a bound (an `error` message can carry 64 KiB; the
//! reason is persisted and shown to users), or call a force-close commitment a closing
//! transaction.

use std::fmt;

use bitcoin::Transaction;
use serde::{Deserialize, Serialize};

use crate::funding::FundingMismatch;

/// Longest peer-supplied text (bytes) a [`CloseReason`] keeps; longer text is cut at a
/// character boundary and marked with `…`.
pub const MAX_REASON_TEXT: usize = 256;

/// `text` cut to at most [`MAX_REASON_TEXT`] bytes (plus the `…` marker) at a character
/// boundary.
pub(crate) fn bounded(text: &str) -> String {
    if text.len() <= MAX_REASON_TEXT {
        return text.to_string();
    }
    let mut end = MAX_REASON_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Why a channel closed.
///
/// Persisted inside `Record::Closed` (serde, externally tagged: `{"MutualClose":{"fee_sat":
/// 1263}}`), so renaming a variant or a field changes the record format. Records of format
/// version 1 stored free text; they decode as [`CloseReason::Legacy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    /// The peer broke the protocol (we detected it); our latest commitment was offered for
    /// broadcast and an `error` sent.
    ProtocolViolation(String),
    /// The peer sent an `error` (its text, bounded); our latest commitment was offered for
    /// broadcast.
    PeerError(String),
    /// Our own failure while answering a peer's message; our latest commitment was offered
    /// for broadcast and an `error` sent.
    Internal(String),
    /// The funding did not confirm within `FUNDING_TIMEOUT_BLOCKS` of the channel's
    /// creation; the channel is forgotten (the acceptor has nothing at stake; the opener
    /// takes its funding coins back).
    FundingTimeout {
        /// Height the channel was created at.
        created_height: u32,
        /// Height at which it timed out.
        height: u32,
    },
    /// The confirmed funding transaction does not pay the agreed 2-of-2 output; nothing
    /// was broadcast (the channel holds nothing) and an `error` sent.
    FundingMismatch(FundingMismatch),
    /// The peer's `channel_reestablish` proves we lost state: our commitment may be
    /// revoked, so nothing was broadcast; an `error` asks the peer to close.
    LostState {
        /// The peer's `next_commitment_number`.
        their_next_commitment: u64,
        /// The peer's `next_revocation_number`.
        their_next_revocation: u64,
        /// Our current commitment number.
        our_commitment: u64,
        /// The number of the peer's current commitment we hold.
        their_commitment: u64,
    },
    /// Cooperative close: both sides signed the closing transaction at this fee.
    MutualClose {
        /// The agreed fee.
        fee_sat: u64,
    },
    /// The funding output was spent on chain by this transaction while the channel was
    /// still open here (e.g. the peer completed a mutual close whose record we lost in a
    /// crash); nothing is broadcast: the funds already left the channel.
    FundingSpent {
        /// The spending transaction.
        txid: bitcoin::Txid,
    },
    /// We force-closed (`close --force`): our latest commitment was broadcast and an
    /// `error` sent.
    ForceClosed,
    /// An HTLC deadline (BOLT 2/5) passed: an HTLC we offered is past its expiry plus a
    /// grace, or one we can fulfill is about to expire; our latest commitment was broadcast
    /// so the HTLC resolves on chain.
    HtlcDeadline {
        /// The HTLC's expiry.
        cltv_expiry: u32,
        /// The height at which we closed.
        height: u32,
        /// True if we offered it (we time it out), false if we hold its preimage.
        offered: bool,
    },
    /// A reason stored as free text by record format version 1.
    Legacy(String),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::ProtocolViolation(s) => write!(f, "protocol violation by the peer: {s}"),
            CloseReason::PeerError(s) => write!(f, "the peer failed the channel: {s}"),
            CloseReason::Internal(s) => write!(f, "internal failure: {s}"),
            CloseReason::FundingTimeout {
                created_height,
                height,
            } => write!(
                f,
                "funding not confirmed in time (channel created at height {created_height}, \
                 still unconfirmed at {height})"
            ),
            CloseReason::FundingMismatch(m) => write!(f, "funding output mismatch: {m}"),
            CloseReason::LostState {
                their_next_commitment,
                their_next_revocation,
                our_commitment,
                their_commitment,
            } => write!(
                f,
                "we lost state (peer expects revocation {their_next_revocation} / commitment \
                 {their_next_commitment}, we are at {our_commitment}/{their_commitment})"
            ),
            CloseReason::MutualClose { fee_sat } => write!(f, "mutual close, fee {fee_sat} sat"),
            CloseReason::FundingSpent { txid } => {
                write!(f, "the funding output was spent on chain by {txid}")
            }
            CloseReason::ForceClosed => f.write_str("force-closed by us"),
            CloseReason::HtlcDeadline {
                cltv_expiry,
                height,
                offered,
            } => {
                if *offered {
                    write!(f, "an HTLC we offered expired at {cltv_expiry} and the peer did not remove it (height {height}): force-closed")
                } else {
                    write!(f, "an HTLC we can fulfill expires at {cltv_expiry} and the peer did not take the preimage off chain (height {height}): force-closed")
                }
            }
            CloseReason::Legacy(s) => f.write_str(s),
        }
    }
}

/// What a transaction handed out by `Channel::poll_broadcast` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastKind {
    /// The cooperative closing transaction both sides signed.
    Closing,
    /// Our own latest commitment, fully signed, after the channel failed (a force close:
    /// its `to_local` output waits for `to_self_delay`, its HTLCs resolve on chain).
    Commitment {
        /// Its commitment number.
        number: u64,
    },
}

/// A fully signed transaction to broadcast, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    /// What it is.
    pub kind: BroadcastKind,
    /// The transaction.
    pub tx: Transaction,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_text_is_bounded_at_a_char_boundary() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(MAX_REASON_TEXT);
        let b = bounded(&long);
        assert!(b.ends_with('…'));
        assert!(b.len() <= MAX_REASON_TEXT + '…'.len_utf8());
    }

    #[test]
    fn display_is_human_text() {
        assert_eq!(
            CloseReason::MutualClose { fee_sat: 1263 }.to_string(),
            "mutual close, fee 1263 sat"
        );
        assert_eq!(
            CloseReason::Legacy("old text".into()).to_string(),
            "old text"
        );
        let r = CloseReason::FundingMismatch(FundingMismatch::WrongAmount {
            vout: 1,
            expected_sat: 10,
            found_sat: 9,
        });
        assert_eq!(
            r.to_string(),
            "funding output mismatch: output 1 holds 9 sat, not the funding amount 10 sat"
        );
        assert!(CloseReason::LostState {
            their_next_commitment: 5,
            their_next_revocation: 4,
            our_commitment: 2,
            their_commitment: 2,
        }
        .to_string()
        .contains("lost state"));
    }
}
