//! What a [`super::ChannelMonitor`] persists: [`MonitorRecord`]s, their bytes
//! ([`MonitorRecord::encode`] / [`MonitorRecord::decode`]) and the compact shapes they carry
//! ([`MonitorSetup`], [`MonitorHtlc`], [`CommitmentSummary`]).
//!
//! Format: a binary envelope (`crate::envelope`: the version byte, then postcard over the
//! serde derives; transactions in consensus bytes, keys uncompressed, signatures DER).
//! Versions: **4** (current) is that binary form of version 3's records; **3** adds a
//! snapshot's `archived_through` (the revoked HTLC sets it no longer carries are in the
//! revocation archive: an older build must not read it as "no HTLCs"); **2** adds
//! [`MonitorRecord::Snapshot`]; **1** is the same without it. Versions 1–3 are one UTF-8 JSON
//! object `{"v":3,"record":<record>}` (serde, externally tagged; transactions as consensus
//! hex, keys and signatures as hex, payment hashes and preimages as arrays of numbers), all
//! read as they are. Any other version is refused. The binary form names nothing: adding,
//! removing or reordering a field or variant of these types changes it (bump the version and
//! keep reading the old; `#[serde(default)]` does not help there).
//!
//! Must never: panic on garbage bytes (a stored file may be corrupt), or hold a field a
//! justice transaction or a claim does not need.

use bitcoin::consensus::encode;
use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::secp256k1::PublicKey;
use bitcoin::{OutPoint, ScriptBuf, Transaction};
use fulmen_htlc::{PaymentHash, PaymentPreimage};
use serde::{Deserialize, Serialize};

use crate::envelope::{self, Read};
use crate::machine::state::{HtlcInfo, Setup, Spec};

/// Current version of the monitor record format (binary).
pub const MONITOR_FORMAT_VERSION: u32 = 4;
/// The last version written as JSON.
const LAST_JSON_MONITOR_VERSION: u32 = 3;
/// The oldest version [`MonitorRecord::decode`] still reads.
pub const OLDEST_READABLE_MONITOR_VERSION: u32 = 1;

/// Everything about a channel that never changes and that the monitor needs: the channel's
/// setup (both sides' parameters), where the funding output is, and where claims pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorSetup {
    /// The channel's setup, with the peer's parameters filled in.
    pub channel: Setup,
    /// The funding outpoint.
    pub funding_outpoint: OutPoint,
    /// Every claim and justice transaction pays here (an address of our wallet).
    pub sweep_script: ScriptBuf,
    /// Feerate of claims and justice transactions (sat per 1000 weight).
    pub claim_feerate_per_kw: u32,
    /// Dev mode: keep our own old commitments (with the peer's signatures, from the
    /// `LocalCommitment` records) so that a test can broadcast a revoked one (never on a
    /// real node).
    pub keep_old_commitments: bool,
}

/// One HTLC of a commitment, as the monitor keeps it (45 bytes of payload: id, amount,
/// expiry, hash, direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorHtlc {
    /// HTLC id (per direction).
    pub id: u64,
    /// True if we offered it.
    pub offered_by_us: bool,
    /// Amount, msat.
    pub amount_msat: u64,
    /// Absolute expiry height.
    pub cltv_expiry: u32,
    /// Payment hash.
    pub payment_hash: PaymentHash,
}

/// A commitment's content from our point of view (balances, feerate, HTLCs): enough to
/// rebuild the transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitmentSummary {
    /// Our balance, msat.
    pub to_us_msat: u64,
    /// Their balance, msat.
    pub to_them_msat: u64,
    /// Feerate (sat per 1000 weight).
    pub feerate_per_kw: u32,
    /// Every HTLC, both directions.
    pub htlcs: Vec<MonitorHtlc>,
}

impl CommitmentSummary {
    /// The summary of a channel [`Spec`].
    pub fn of(spec: &Spec) -> CommitmentSummary {
        let mk = |offered_by_us: bool, (id, h): (&u64, &HtlcInfo)| MonitorHtlc {
            id: *id,
            offered_by_us,
            amount_msat: h.amount_msat,
            cltv_expiry: h.cltv_expiry,
            payment_hash: h.payment_hash,
        };
        CommitmentSummary {
            to_us_msat: spec.to_us_msat,
            to_them_msat: spec.to_them_msat,
            feerate_per_kw: spec.feerate_per_kw,
            htlcs: spec
                .offered_by_us
                .iter()
                .map(|e| mk(true, e))
                .chain(spec.offered_by_them.iter().map(|e| mk(false, e)))
                .collect(),
        }
    }

    /// The channel [`Spec`] this summary came from.
    pub fn spec(&self) -> Spec {
        let mut s = Spec {
            to_us_msat: self.to_us_msat,
            to_them_msat: self.to_them_msat,
            feerate_per_kw: self.feerate_per_kw,
            ..Spec::default()
        };
        for h in &self.htlcs {
            let info = HtlcInfo {
                amount_msat: h.amount_msat,
                payment_hash: h.payment_hash,
                cltv_expiry: h.cltv_expiry,
            };
            if h.offered_by_us {
                s.offered_by_us.insert(h.id, info);
            } else {
                s.offered_by_them.insert(h.id, info);
            }
        }
        s
    }
}

/// One increment of a monitor's state. Persist in order; rebuild with
/// [`super::ChannelMonitor::restore`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MonitorRecord {
    /// The first record.
    Setup(Box<MonitorSetup>),
    /// A commitment of the peer's that we signed (its current or its next).
    CounterpartyCommitment {
        /// Its number.
        number: u64,
        /// The peer's per-commitment point for it.
        #[serde(with = "crate::machine::codec::key_hex")]
        point: PublicKey,
        /// Its content.
        summary: CommitmentSummary,
    },
    /// The peer revoked commitment `number`: its secret. The monitor then keeps only that
    /// commitment's HTLC hashes, expiries and directions.
    Revoked {
        /// The revoked commitment's number.
        number: u64,
        /// Its per-commitment secret.
        secret: [u8; 32],
    },
    /// Our latest commitment, with the peer's signatures.
    LocalCommitment {
        /// Its number.
        number: u64,
        /// Its content.
        summary: CommitmentSummary,
        /// The peer's signature of the funding input.
        remote_sig: Signature,
        /// The peer's signatures of our second-stage HTLC transactions, in output order.
        htlc_sigs: Vec<Signature>,
    },
    /// A payment preimage we know (learned off chain, on chain or from an invoice).
    Preimage(PaymentPreimage),
    /// We broadcast our latest commitment (a force close): keep broadcasting it until the
    /// funding output is spent.
    ForceClosed,
    /// A transaction that concerns the channel (spends the funding output, an output of the
    /// commitment that did, or of a second-stage transaction) confirmed at `height`.
    Confirmed {
        /// The block height.
        height: u32,
        /// The transaction.
        #[serde(with = "tx_hex")]
        tx: Transaction,
    },
    /// Every block above `fork_height` left the best chain.
    Disconnected {
        /// The last height still on the best chain.
        fork_height: u32,
    },
    /// The monitor's whole persistent state (see [`super::ChannelMonitor::set_snapshot_every`]):
    /// replay starts at the latest one, and the store drops the records before it.
    Snapshot(Box<MonitorSnapshot>),
}

/// A monitor's whole persistent state at one moment: what replaying its records up to there
/// rebuilds (the setup, the unrevoked counterparty commitments, what justice needs of the
/// revoked ones, the peer's secrets, our latest commitment, preimages, what confirmed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorSnapshot {
    pub(crate) setup: MonitorSetup,
    pub(crate) counterparty: Vec<(u64, super::CounterpartyCommitment)>,
    pub(crate) revoked: Vec<(u64, Vec<super::RevokedHtlc>)>,
    /// Since version 3: the HTLC sets of every commitment up to this number are archived.
    #[serde(default)]
    pub(crate) archived_through: Option<u64>,
    pub(crate) their_secrets: crate::shachain::SecretStore,
    pub(crate) local: Option<super::LocalCommitment>,
    /// Dev mode only (`keep_old_commitments`): our revoked commitments.
    pub(crate) old_local: Vec<super::LocalCommitment>,
    pub(crate) preimages: Vec<PaymentPreimage>,
    pub(crate) force_closed: bool,
    pub(crate) confirmed: Vec<ConfirmedTx>,
    pub(crate) height: u32,
}

impl MonitorSnapshot {
    /// Whether it holds our commitment `number` with the peer's signatures (the latest, or
    /// an old one a dev node keeps).
    pub fn holds_local_commitment(&self, number: u64) -> bool {
        self.local
            .iter()
            .chain(&self.old_local)
            .any(|c| c.number == number)
    }
}

/// A transaction that confirmed at `height` (in a [`MonitorSnapshot`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConfirmedTx {
    pub height: u32,
    #[serde(with = "tx_hex")]
    pub tx: Transaction,
}

/// Why stored monitor record bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonitorCodecError {
    /// Not a well-formed record document.
    #[error("malformed monitor record: {0}")]
    Malformed(String),
    /// Written by an unknown version of the format.
    #[error("unsupported monitor record format version {0}")]
    UnsupportedVersion(u32),
}

impl MonitorRecord {
    /// The record's bytes (see the module doc).
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail (see `Record::encode`).
        envelope::write(MONITOR_FORMAT_VERSION as u8, self).unwrap_or_default()
    }

    /// Decode bytes written by [`MonitorRecord::encode`] of this or an older version (one
    /// pass: older records are read as they are).
    pub fn decode(bytes: &[u8]) -> Result<MonitorRecord, MonitorCodecError> {
        let binary = !envelope::is_json(bytes);
        let read = if binary {
            envelope::read_binary::<MonitorRecord>(bytes)
        } else {
            envelope::read_json::<MonitorRecord>(bytes)
        }
        .map_err(MonitorCodecError::Malformed)?;
        let v = read.version();
        let known = if binary {
            v == MONITOR_FORMAT_VERSION
        } else {
            (OLDEST_READABLE_MONITOR_VERSION..=LAST_JSON_MONITOR_VERSION).contains(&v)
        };
        if !known {
            return Err(MonitorCodecError::UnsupportedVersion(v));
        }
        match read {
            Read::Parsed(v, MonitorRecord::Snapshot(_)) if v < 2 => Err(
                MonitorCodecError::Malformed("a snapshot in a version 1 record".into()),
            ),
            Read::Parsed(_, record) => Ok(record),
            Read::Unparsed(_, e) => Err(MonitorCodecError::Malformed(e)),
        }
    }
}

/// Transactions in consensus encoding: hex strings in JSON, raw bytes in the binary form.
pub(crate) mod tx_hex {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tx: &Transaction, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&encode::serialize_hex(tx))
        } else {
            s.serialize_bytes(&encode::serialize(tx))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Transaction, D::Error> {
        if !d.is_human_readable() {
            return crate::machine::codec::bytes_with(d, "a transaction", |b| {
                encode::deserialize(b).ok()
            });
        }
        let s = String::deserialize(d)?;
        encode::deserialize_hex(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        for bytes in [
            &b""[..],
            b"{",
            b"{\"v\":1}",
            b"{\"v\":4,\"record\":\"ForceClosed\"}",
            b"{\"v\":0,\"record\":\"ForceClosed\"}",
            b"{\"v\":1,\"record\":{\"Confirmed\":{\"height\":1,\"tx\":\"zz\"}}}",
        ] {
            assert!(MonitorRecord::decode(bytes).is_err());
        }
        let r = MonitorRecord::Disconnected { fork_height: 7 };
        let bytes = r.encode();
        assert_eq!(bytes, [4, 7, 7], "version 4, variant 7, the height");
        assert_eq!(MonitorRecord::decode(&bytes), Ok(r.clone()));
        // Binary: another version, or a byte left over, is refused.
        for v in [0u8, 1, 3, 5, 0xff] {
            assert_eq!(
                MonitorRecord::decode(&[v, 7, 7]),
                Err(MonitorCodecError::UnsupportedVersion(u32::from(v)))
            );
        }
        assert!(matches!(
            MonitorRecord::decode(&[4, 7, 7, 0]),
            Err(MonitorCodecError::Malformed(_))
        ));
        assert!(matches!(
            MonitorRecord::decode(&[4, 7]),
            Err(MonitorCodecError::Malformed(_))
        ));
        // JSON: version 3 (the last JSON one) is read; 4 never was JSON.
        assert_eq!(
            MonitorRecord::decode(b"{\"v\":3,\"record\":{\"Disconnected\":{\"fork_height\":7}}}"),
            Ok(r.clone())
        );
        assert_eq!(
            MonitorRecord::decode(b"{\"v\":4,\"record\":\"ForceClosed\"}"),
            Err(MonitorCodecError::UnsupportedVersion(4))
        );
        // Version 1 records (written before snapshots existed) still decode.
        assert_eq!(
            MonitorRecord::decode(b"{\"v\":1,\"record\":{\"Disconnected\":{\"fork_height\":7}}}"),
            Ok(r)
        );
        assert_eq!(
            MonitorRecord::decode(b"{\"v\":1,\"record\":\"ForceClosed\"}"),
            Ok(MonitorRecord::ForceClosed)
        );
    }

    /// The bytes ARCHITECTURE.md states per state: a revocation record (37), and a
    /// counterparty commitment record with 0 and with 1 HTLC (84, 125).
    #[test]
    fn record_sizes_are_as_documented() {
        use bitcoin::secp256k1::{Secp256k1, SecretKey};
        let secp = Secp256k1::new();
        let point = PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[7; 32]).unwrap());
        let revoked = MonitorRecord::Revoked {
            number: 123_456,
            secret: [0xab; 32],
        };
        let htlc = MonitorHtlc {
            id: 12,
            offered_by_us: true,
            amount_msat: 20_000_000,
            cltv_expiry: 500_000,
            payment_hash: PaymentHash([0xcd; 32]),
        };
        let cc = |htlcs: Vec<MonitorHtlc>| MonitorRecord::CounterpartyCommitment {
            number: 123_456,
            point,
            summary: CommitmentSummary {
                to_us_msat: 500_000_000,
                to_them_msat: 480_000_000,
                feerate_per_kw: 500,
                htlcs,
            },
        };
        let sizes = (
            revoked.encode().len(),
            cc(vec![]).encode().len(),
            cc(vec![htlc]).encode().len(),
        );
        assert!(sizes.0 <= 40, "{sizes:?}");
        assert!(sizes.1 <= 90, "{sizes:?}");
        assert!(sizes.2 - sizes.1 <= 45, "{sizes:?}");
        assert_eq!(std::mem::size_of::<crate::monitor::RevokedHtlc>(), 48);
    }

    proptest::proptest! {
        /// Garbage and cut or mutated records are refused (or decode to a record that
        /// re-encodes to itself), never a panic.
        #[test]
        fn bad_bytes_never_panic(
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            cut in 0usize..400,
            pos in proptest::prelude::any::<usize>(),
            byte in proptest::prelude::any::<u8>(),
        ) {
            let _ = MonitorRecord::decode(&garbage);
            let r = MonitorRecord::LocalCommitment {
                number: 9,
                summary: CommitmentSummary {
                    to_us_msat: 1,
                    to_them_msat: 2,
                    feerate_per_kw: 253,
                    htlcs: vec![MonitorHtlc {
                        id: 1,
                        offered_by_us: false,
                        amount_msat: 3_000_000,
                        cltv_expiry: 144,
                        payment_hash: PaymentHash([9; 32]),
                    }],
                },
                remote_sig: sample_sig(),
                htlc_sigs: vec![sample_sig()],
            };
            let bytes = r.encode();
            proptest::prop_assert!(MonitorRecord::decode(&bytes[..cut % bytes.len()]).is_err());
            let mut m = bytes.clone();
            let p = pos % m.len();
            m[p] = byte;
            if let Ok(d) = MonitorRecord::decode(&m) {
                proptest::prop_assert_eq!(MonitorRecord::decode(&d.encode()), Ok(d));
            }
        }
    }

    fn sample_sig() -> Signature {
        use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
        let sk = SecretKey::from_slice(&[3; 32]).unwrap();
        Secp256k1::new().sign_ecdsa(&Message::from_digest([4; 32]), &sk)
    }
}
