//! The revocation archive: what justice needs of each revoked counterparty commitment (its
//! HTLCs' hashes, expiries, directions and ids), moved out of the monitor's memory and
//! snapshots into rows the node reads only when a revoked commitment shows up on chain.
//!
//! A monitor keeps the HTLC sets of commitments revoked since its last snapshot; when it
//! writes a snapshot it hands those sets out ([`ChannelMonitor::take_archived`]) to be
//! persisted **in the same batch** as the snapshot, drops them, and remembers the highest
//! commitment number archived. A monitor's memory and its snapshot therefore stay the same
//! size however many payments the channel carried (≈ 2 revoked HTLCs per payment would
//! otherwise be kept forever). When the funding output is spent by a revoked commitment
//! whose HTLC set is archived, the monitor asks for it
//! ([`ChannelMonitor::wanted_revoked_htlcs`]) and resolves nothing until the node answers
//! ([`ChannelMonitor::provide_revoked_htlcs`]); a commitment archived with no HTLCs has no
//! row, and the answer is an empty set.
//!
//! Owns: [`RevokedCommitment`] and its bytes. Must never: drop an HTLC set before it is
//! handed out with the snapshot that stops carrying it, or resolve a revoked commitment
//! without its HTLC set (the HTLC outputs would be left to the cheater).

use super::{ChannelMonitor, RevokedHtlc};
use fulmen_htlc::PaymentHash;

/// Version byte of [`RevokedCommitment::encode`].
const ARCHIVE_FORMAT_VERSION: u8 = 1;
/// Bytes of one HTLC in [`RevokedCommitment::encode`]: id, direction, expiry, hash.
const HTLC_BYTES: usize = 8 + 1 + 4 + 32;
/// At most this many HTLCs in one commitment (483 each way, BOLT 2).
const MAX_HTLCS: usize = 2 * 483;

/// The HTLCs of one revoked counterparty commitment, as archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCommitment {
    /// The commitment's number.
    pub number: u64,
    /// Its HTLCs (never empty in the archive: a commitment without HTLCs has no row).
    pub htlcs: Vec<RevokedHtlc>,
}

/// Why archived bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveCodecError {
    /// The first byte is not a version this build reads.
    #[error("unsupported revocation archive format version {0}")]
    UnsupportedVersion(u8),
    /// Empty, a length that is not a whole number of HTLCs, or too many HTLCs.
    #[error("malformed revocation archive row of {0} bytes")]
    Malformed(usize),
}

impl RevokedCommitment {
    /// The HTLC set's bytes: a version byte, then per HTLC its id (8 bytes, big-endian), 1
    /// if the peer offered it (1 byte), its expiry (4 bytes) and its payment hash — 45 bytes
    /// each (the number is the row's key).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.htlcs.len() * HTLC_BYTES);
        out.push(ARCHIVE_FORMAT_VERSION);
        for h in &self.htlcs {
            out.extend_from_slice(&h.id.to_be_bytes());
            out.push(u8::from(h.offered_by_them));
            out.extend_from_slice(&h.cltv_expiry.to_be_bytes());
            out.extend_from_slice(&h.payment_hash.0);
        }
        out
    }

    /// Decodes [`RevokedCommitment::encode`]'s bytes of commitment `number`.
    pub fn decode(number: u64, bytes: &[u8]) -> Result<RevokedCommitment, ArchiveCodecError> {
        let (version, body) = bytes.split_first().ok_or(ArchiveCodecError::Malformed(0))?;
        if *version != ARCHIVE_FORMAT_VERSION {
            return Err(ArchiveCodecError::UnsupportedVersion(*version));
        }
        if body.len() % HTLC_BYTES != 0 || body.len() / HTLC_BYTES > MAX_HTLCS {
            return Err(ArchiveCodecError::Malformed(bytes.len()));
        }
        let htlcs = body
            .chunks_exact(HTLC_BYTES)
            .map(|c| {
                let (id, rest) = c.split_at(8);
                let (dir, rest) = rest.split_at(1);
                let (expiry, hash) = rest.split_at(4);
                let mut id8 = [0u8; 8];
                id8.copy_from_slice(id);
                let mut exp4 = [0u8; 4];
                exp4.copy_from_slice(expiry);
                let mut h32 = [0u8; 32];
                h32.copy_from_slice(hash);
                match dir {
                    [0] | [1] => Ok(RevokedHtlc {
                        id: u64::from_be_bytes(id8),
                        offered_by_them: dir == [1],
                        cltv_expiry: u32::from_be_bytes(exp4),
                        payment_hash: PaymentHash(h32),
                    }),
                    _ => Err(ArchiveCodecError::Malformed(bytes.len())),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RevokedCommitment { number, htlcs })
    }
}

impl ChannelMonitor {
    /// The HTLC sets archived by the snapshots written since the last call: persist them in
    /// the same batch as this turn's [`ChannelMonitor::take_records`] (the snapshot that
    /// stops carrying them is among those records).
    pub fn take_archived(&mut self) -> Vec<RevokedCommitment> {
        std::mem::take(&mut self.archive_out)
    }

    /// Every revoked commitment up to this number has its HTLC set in the archive (if it had
    /// any), not in the monitor: `None` before the first snapshot that archived.
    pub fn archived_through(&self) -> Option<u64> {
        self.archived_through
    }

    /// The number of the revoked commitment whose archived HTLC set the monitor needs to
    /// resolve the funding spend (it spent the funding output and its set was archived), if
    /// it does not hold it: answer with [`ChannelMonitor::provide_revoked_htlcs`].
    pub fn wanted_revoked_htlcs(&self) -> Option<u64> {
        let (_, spend) = self.funding_spend()?;
        match self.classify(spend) {
            super::SpendKind::Revoked { number } if self.revoked_htlcs_of(number).is_none() => {
                Some(number)
            }
            _ => None,
        }
    }

    /// The node's answer to [`ChannelMonitor::wanted_revoked_htlcs`]: the archived HTLCs of
    /// revoked commitment `number` (empty if the archive has no row for it). Kept in memory
    /// only (the archive holds them); the resolution proceeds.
    pub fn provide_revoked_htlcs(&mut self, number: u64, htlcs: Vec<RevokedHtlc>) {
        if self.archived_through.is_some_and(|a| number <= a) && !self.revoked.contains_key(&number)
        {
            self.fetched.insert(number, htlcs);
            self.refresh();
        }
    }

    /// The HTLCs of revoked commitment `number`, or `None` while they are archived and not
    /// fetched. (A commitment revoked with no HTLCs, not archived: an empty set.)
    pub(crate) fn revoked_htlcs_of(&self, number: u64) -> Option<&[RevokedHtlc]> {
        if let Some(h) = self.revoked.get(&number).or(self.fetched.get(&number)) {
            return Some(h);
        }
        match self.archived_through {
            Some(a) if number <= a => None,
            _ => Some(&[]),
        }
    }

    /// At a snapshot: hand out the HTLC sets revoked since the last one and forget them.
    pub(super) fn archive_revoked(&mut self) {
        let Some(last) = self.their_secrets.last_index() else {
            return;
        };
        let revoked_through = crate::shachain::MAX_INDEX - last;
        for (number, htlcs) in std::mem::take(&mut self.revoked) {
            self.archive_out.push(RevokedCommitment { number, htlcs });
        }
        self.archived_through = Some(revoked_through);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn htlc() -> impl Strategy<Value = RevokedHtlc> {
        (any::<u64>(), any::<bool>(), any::<u32>(), any::<[u8; 32]>()).prop_map(
            |(id, offered_by_them, cltv_expiry, h)| RevokedHtlc {
                id,
                offered_by_them,
                cltv_expiry,
                payment_hash: PaymentHash(h),
            },
        )
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(
            number in any::<u64>(),
            htlcs in proptest::collection::vec(htlc(), 1..20),
        ) {
            let c = RevokedCommitment { number, htlcs };
            let bytes = c.encode();
            prop_assert_eq!(bytes.len(), 1 + 45 * c.htlcs.len());
            prop_assert_eq!(RevokedCommitment::decode(number, &bytes), Ok(c));
        }

        #[test]
        fn any_bytes_decode_or_are_refused(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let _ = RevokedCommitment::decode(1, &bytes);
        }
    }

    #[test]
    fn bad_rows_are_refused() {
        assert_eq!(
            RevokedCommitment::decode(1, &[]),
            Err(ArchiveCodecError::Malformed(0))
        );
        assert_eq!(
            RevokedCommitment::decode(1, &[2]),
            Err(ArchiveCodecError::UnsupportedVersion(2))
        );
        assert_eq!(
            RevokedCommitment::decode(1, &[1, 0, 0]),
            Err(ArchiveCodecError::Malformed(3))
        );
        let mut bad_direction = vec![1u8; 46];
        bad_direction[9] = 2;
        assert_eq!(
            RevokedCommitment::decode(1, &bad_direction),
            Err(ArchiveCodecError::Malformed(46))
        );
        let too_many = vec![0u8; 1 + 45 * (MAX_HTLCS + 1)];
        let mut too_many = too_many;
        too_many[0] = 1;
        assert!(RevokedCommitment::decode(1, &too_many).is_err());
    }
}
