//! What spent the funding output: [`SpendKind`] and the monitor's classification of a
//! spending transaction (cooperative close, our commitment, the peer's current or next
//! commitment, a revoked commitment of the peer's, one of our own old commitments, or
//! something that cannot be).
//!
//! Must never: call a transaction the peer's current commitment without rebuilding it and
//! comparing txids, or a revoked one without holding its per-commitment secret.

use std::fmt;

use bitcoin::{CompressedPublicKey, ScriptBuf, Transaction};

use super::ChannelMonitor;
use crate::commitment::{commitment_number_of, obscuring_factor};

/// What spent the funding output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpendKind {
    /// A cooperative closing transaction (no commitment markers).
    Cooperative,
    /// Our latest commitment (a force close by us).
    Local {
        /// Its number.
        number: u64,
    },
    /// One of our own revoked commitments (only a `--dev` node broadcasts one): the peer
    /// may take every output of ours.
    LocalRevoked {
        /// Its number.
        number: u64,
    },
    /// The peer's current commitment (a force close by the peer).
    RemoteCurrent {
        /// Its number.
        number: u64,
    },
    /// The peer's next commitment (signed by us, not yet revoked by the peer's previous).
    RemoteNext {
        /// Its number.
        number: u64,
    },
    /// A commitment the peer had revoked: a breach, punished with a justice transaction.
    Revoked {
        /// Its number.
        number: u64,
    },
    /// Something that cannot be (logged as an error; the channel is marked so).
    Unknown(String),
}

impl fmt::Display for SpendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpendKind::Cooperative => f.write_str("cooperative"),
            SpendKind::Local { number } => write!(f, "local_commitment({number})"),
            SpendKind::LocalRevoked { number } => write!(f, "our_revoked_commitment({number})"),
            SpendKind::RemoteCurrent { number } => write!(f, "remote_commitment({number})"),
            SpendKind::RemoteNext { number } => write!(f, "remote_next_commitment({number})"),
            SpendKind::Revoked { number } => write!(f, "revoked_remote_commitment({number})"),
            SpendKind::Unknown(why) => write!(f, "unknown({why})"),
        }
    }
}

impl ChannelMonitor {
    /// The 48-bit obscuring factor of this channel's commitment numbers.
    pub(crate) fn obscuring(&self) -> u64 {
        let Some(remote) = self.setup.channel.remote.as_ref() else {
            return 0;
        };
        let (opener, acceptor) = if self.setup.channel.is_opener {
            (&self.local_bp, &remote.basepoints)
        } else {
            (&remote.basepoints, &self.local_bp)
        };
        obscuring_factor(&opener.payment_basepoint, &acceptor.payment_basepoint)
    }

    /// P2WPKH of a payment basepoint (`to_remote` under `option_static_remotekey`).
    pub(crate) fn p2wpkh(key: &bitcoin::secp256k1::PublicKey) -> ScriptBuf {
        ScriptBuf::new_p2wpkh(&CompressedPublicKey(*key).wpubkey_hash())
    }

    /// Classify a transaction spending the funding output.
    pub(crate) fn classify(&self, tx: &Transaction) -> SpendKind {
        let txid = tx.compute_txid();
        let Some(n) = commitment_number_of(tx, self.obscuring()) else {
            return SpendKind::Cooperative;
        };
        if let Some(l) = &self.local {
            if l.number == n && self.build_local(l).is_ok_and(|b| b.tx.txid() == txid) {
                return SpendKind::Local { number: n };
            }
        }
        if self
            .old_local_full
            .get(&n)
            .is_some_and(|c| self.build_local(c).is_ok_and(|b| b.tx.txid() == txid))
        {
            return SpendKind::LocalRevoked { number: n };
        }
        let lowest = self.counterparty.keys().next().copied();
        if let Some(c) = self.counterparty.get(&n) {
            if self.build_remote(n, c).is_ok_and(|b| b.tx.txid() == txid) {
                return if Some(n) == lowest {
                    SpendKind::RemoteCurrent { number: n }
                } else {
                    SpendKind::RemoteNext { number: n }
                };
            }
        }
        if self.their_secret(n).is_some() {
            return SpendKind::Revoked { number: n };
        }
        // One of our own old commitments (its to_remote pays the peer's static key).
        if let (Some(l), Some(remote)) = (&self.local, &self.setup.channel.remote) {
            let theirs = Self::p2wpkh(&remote.basepoints.payment_basepoint);
            if n < l.number && tx.output.iter().any(|o| o.script_pubkey == theirs) {
                return SpendKind::LocalRevoked { number: n };
            }
        }
        SpendKind::Unknown(format!(
            "transaction {txid} carries commitment number {n}, which matches no commitment we know"
        ))
    }

    /// The peer's per-commitment secret for commitment `n`, if revealed.
    pub(crate) fn their_secret(&self, n: u64) -> Option<[u8; 32]> {
        let idx = crate::shachain::MAX_INDEX.checked_sub(n)?;
        self.their_secrets.get(idx)
    }
}
