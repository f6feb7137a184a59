//! BOLT 3 key derivation: per-commitment points, the per-commitment public and private keys
//! (`localpubkey`, `htlcpubkey`, `delayedpubkey`), the revocation public and private keys, and
//! the per-commitment key set both sides use to build one commitment transaction.
//!
//! Must never: do I/O, or panic on a key that came from a peer (a tweak that falls out of the
//! curve order, or sums to infinity, is an error).

use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{PublicKey, Scalar, Secp256k1, SecretKey, Signing, Verification};

std::thread_local! {
    /// One randomized context per thread, cloned for each channel and monitor.
    static CONTEXT: Secp256k1<bitcoin::secp256k1::All> = Secp256k1::new();
}

/// A signing and verification context for a channel or monitor: a copy of this thread's
/// randomized one (a fresh `Secp256k1::new()` re-randomizes, a scalar multiplication;
/// restoring a thousand channels and their monitors made two thousand of them).
pub fn context() -> Secp256k1<bitcoin::secp256k1::All> {
    CONTEXT.with(Clone::clone)
}

/// Errors of key derivation (each has probability ~2^-128 with honest inputs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A SHA256 tweak was not a valid scalar, or a tweak produced an invalid key.
    #[error("key derivation tweak is invalid")]
    InvalidTweak,
}

fn sha256_of(a: &PublicKey, b: &PublicKey) -> [u8; 32] {
    let mut e = sha256::Hash::engine();
    e.input(&a.serialize());
    e.input(&b.serialize());
    sha256::Hash::from_engine(e).to_byte_array()
}

fn scalar(bytes: [u8; 32]) -> Result<Scalar, KeyError> {
    Scalar::from_be_bytes(bytes).map_err(|_| KeyError::InvalidTweak)
}

/// `per_commitment_point = per_commitment_secret * G`.
pub fn per_commitment_point<C: Signing>(
    secp: &Secp256k1<C>,
    per_commitment_secret: &[u8; 32],
) -> Result<PublicKey, KeyError> {
    let sk = SecretKey::from_slice(per_commitment_secret).map_err(|_| KeyError::InvalidTweak)?;
    Ok(PublicKey::from_secret_key(secp, &sk))
}

/// `pubkey = basepoint + SHA256(per_commitment_point || basepoint) * G`.
pub fn derive_pubkey<C: Verification>(
    secp: &Secp256k1<C>,
    basepoint: &PublicKey,
    per_commitment_point: &PublicKey,
) -> Result<PublicKey, KeyError> {
    let tweak = scalar(sha256_of(per_commitment_point, basepoint))?;
    basepoint
        .add_exp_tweak(secp, &tweak)
        .map_err(|_| KeyError::InvalidTweak)
}

/// `privkey = basepoint_secret + SHA256(per_commitment_point || basepoint)`.
pub fn derive_privkey<C: Signing>(
    secp: &Secp256k1<C>,
    basepoint_secret: &SecretKey,
    per_commitment_point: &PublicKey,
) -> Result<SecretKey, KeyError> {
    let basepoint = PublicKey::from_secret_key(secp, basepoint_secret);
    derive_privkey_with_basepoint(basepoint_secret, &basepoint, per_commitment_point)
}

/// [`derive_privkey`] when the caller already holds `basepoint = basepoint_secret * G`
/// (saves one point multiplication). `basepoint` must be the secret's own point.
pub fn derive_privkey_with_basepoint(
    basepoint_secret: &SecretKey,
    basepoint: &PublicKey,
    per_commitment_point: &PublicKey,
) -> Result<SecretKey, KeyError> {
    let tweak = scalar(sha256_of(per_commitment_point, basepoint))?;
    basepoint_secret
        .add_tweak(&tweak)
        .map_err(|_| KeyError::InvalidTweak)
}

/// `revocationpubkey = revocation_basepoint * SHA256(revocation_basepoint || per_commitment_point)
/// + per_commitment_point * SHA256(per_commitment_point || revocation_basepoint)`.
pub fn derive_revocation_pubkey<C: Verification>(
    secp: &Secp256k1<C>,
    revocation_basepoint: &PublicKey,
    per_commitment_point: &PublicKey,
) -> Result<PublicKey, KeyError> {
    let t1 = scalar(sha256_of(revocation_basepoint, per_commitment_point))?;
    let t2 = scalar(sha256_of(per_commitment_point, revocation_basepoint))?;
    let a = revocation_basepoint
        .mul_tweak(secp, &t1)
        .map_err(|_| KeyError::InvalidTweak)?;
    let b = per_commitment_point
        .mul_tweak(secp, &t2)
        .map_err(|_| KeyError::InvalidTweak)?;
    a.combine(&b).map_err(|_| KeyError::InvalidTweak)
}

/// The secret the deriving side knows behind one of the two points of a revocation key:
/// its own revocation basepoint's (the peer's commitments) or its own per-commitment
/// point's (its own commitments).
#[derive(Clone, Copy)]
pub enum KnownRevocationSecret<'a> {
    /// `revocation_basepoint = secret * G`.
    RevocationBasepoint(&'a SecretKey),
    /// `per_commitment_point = secret * G`.
    PerCommitmentPoint(&'a SecretKey),
}

/// [`derive_revocation_pubkey`] with the secret of one of its two points: that term becomes
/// a multiplication of the generator (`(secret * tweak) * G`, precomputed tables) instead of
/// a variable-base one. Same result; `known` must be the secret of the point it names.
pub fn derive_revocation_pubkey_with_secret<C: Signing + Verification>(
    secp: &Secp256k1<C>,
    revocation_basepoint: &PublicKey,
    per_commitment_point: &PublicKey,
    known: KnownRevocationSecret<'_>,
) -> Result<PublicKey, KeyError> {
    let t1 = scalar(sha256_of(revocation_basepoint, per_commitment_point))?;
    let t2 = scalar(sha256_of(per_commitment_point, revocation_basepoint))?;
    let (secret, secret_tweak, point, point_tweak) = match known {
        KnownRevocationSecret::RevocationBasepoint(s) => (s, t1, per_commitment_point, t2),
        KnownRevocationSecret::PerCommitmentPoint(s) => (s, t2, revocation_basepoint, t1),
    };
    let fixed = secret
        .mul_tweak(&secret_tweak)
        .map_err(|_| KeyError::InvalidTweak)?;
    let var = point
        .mul_tweak(secp, &point_tweak)
        .map_err(|_| KeyError::InvalidTweak)?;
    // `var + fixed * G` in one call (cheaper than `from_secret_key` + `combine`).
    var.add_exp_tweak(secp, &Scalar::from(fixed))
        .map_err(|_| KeyError::InvalidTweak)
}

/// `revocationprivkey = revocation_basepoint_secret * SHA256(revocation_basepoint ||
/// per_commitment_point) + per_commitment_secret * SHA256(per_commitment_point ||
/// revocation_basepoint)`.
pub fn derive_revocation_privkey<C: Signing>(
    secp: &Secp256k1<C>,
    revocation_basepoint_secret: &SecretKey,
    per_commitment_secret: &SecretKey,
) -> Result<SecretKey, KeyError> {
    let rb = PublicKey::from_secret_key(secp, revocation_basepoint_secret);
    let pcp = PublicKey::from_secret_key(secp, per_commitment_secret);
    let t1 = scalar(sha256_of(&rb, &pcp))?;
    let t2 = scalar(sha256_of(&pcp, &rb))?;
    let a = revocation_basepoint_secret
        .mul_tweak(&t1)
        .map_err(|_| KeyError::InvalidTweak)?;
    let b = per_commitment_secret
        .mul_tweak(&t2)
        .map_err(|_| KeyError::InvalidTweak)?;
    a.add_tweak(&Scalar::from(b))
        .map_err(|_| KeyError::InvalidTweak)
}

/// The public basepoints one side announces in `open_channel` / `accept_channel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelBasepoints {
    /// Key of the 2-of-2 funding output.
    #[serde(with = "crate::machine::codec::key_hex")]
    pub funding_pubkey: PublicKey,
    /// Revocation basepoint (the *other* side derives revocation keys from it).
    #[serde(with = "crate::machine::codec::key_hex")]
    pub revocation_basepoint: PublicKey,
    /// Payment basepoint; with `option_static_remotekey` it is the `to_remote` key as is.
    #[serde(with = "crate::machine::codec::key_hex")]
    pub payment_basepoint: PublicKey,
    /// Delayed payment basepoint (`to_local` and second-stage outputs).
    #[serde(with = "crate::machine::codec::key_hex")]
    pub delayed_payment_basepoint: PublicKey,
    /// HTLC basepoint.
    #[serde(with = "crate::machine::codec::key_hex")]
    pub htlc_basepoint: PublicKey,
}

/// The keys of one commitment transaction, seen from its broadcaster (the side whose
/// commitment it is, the spec's "local").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitmentKeys {
    /// The broadcaster's per-commitment point of this commitment.
    pub per_commitment_point: PublicKey,
    /// Revocation key: countersignatory's revocation basepoint + this per-commitment point.
    pub revocation_key: PublicKey,
    /// Broadcaster's HTLC key.
    pub broadcaster_htlc_key: PublicKey,
    /// Countersignatory's HTLC key.
    pub countersignatory_htlc_key: PublicKey,
    /// Broadcaster's delayed payment key (`to_local`, second-stage outputs).
    pub broadcaster_delayed_key: PublicKey,
    /// Countersignatory's `to_remote` key: its payment basepoint (`option_static_remotekey`).
    pub countersignatory_payment_key: PublicKey,
}

impl CommitmentKeys {
    /// Derive every key of a commitment from both sides' basepoints and the broadcaster's
    /// per-commitment point.
    pub fn derive<C: Verification>(
        secp: &Secp256k1<C>,
        per_commitment_point: &PublicKey,
        broadcaster: &ChannelBasepoints,
        countersignatory: &ChannelBasepoints,
    ) -> Result<CommitmentKeys, KeyError> {
        Ok(CommitmentKeys {
            per_commitment_point: *per_commitment_point,
            revocation_key: derive_revocation_pubkey(
                secp,
                &countersignatory.revocation_basepoint,
                per_commitment_point,
            )?,
            broadcaster_htlc_key: derive_pubkey(
                secp,
                &broadcaster.htlc_basepoint,
                per_commitment_point,
            )?,
            countersignatory_htlc_key: derive_pubkey(
                secp,
                &countersignatory.htlc_basepoint,
                per_commitment_point,
            )?,
            broadcaster_delayed_key: derive_pubkey(
                secp,
                &broadcaster.delayed_payment_basepoint,
                per_commitment_point,
            )?,
            countersignatory_payment_key: countersignatory.payment_basepoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_privkey_matches_pubkey() {
        let secp = Secp256k1::new();
        let rb = SecretKey::from_slice(&[7u8; 32]).unwrap();
        let pcs = SecretKey::from_slice(&[9u8; 32]).unwrap();
        let priv_ = derive_revocation_privkey(&secp, &rb, &pcs).unwrap();
        let pub_ = derive_revocation_pubkey(
            &secp,
            &PublicKey::from_secret_key(&secp, &rb),
            &PublicKey::from_secret_key(&secp, &pcs),
        )
        .unwrap();
        assert_eq!(PublicKey::from_secret_key(&secp, &priv_), pub_);
    }

    #[test]
    fn revocation_pubkey_with_either_secret_matches() {
        let secp = Secp256k1::new();
        for (a, b) in [(7u8, 9u8), (1, 2), (200, 31)] {
            let rb = SecretKey::from_slice(&[a; 32]).unwrap();
            let pcs = SecretKey::from_slice(&[b; 32]).unwrap();
            let (rbp, pcp) = (
                PublicKey::from_secret_key(&secp, &rb),
                PublicKey::from_secret_key(&secp, &pcs),
            );
            let plain = derive_revocation_pubkey(&secp, &rbp, &pcp).unwrap();
            for known in [
                KnownRevocationSecret::RevocationBasepoint(&rb),
                KnownRevocationSecret::PerCommitmentPoint(&pcs),
            ] {
                assert_eq!(
                    derive_revocation_pubkey_with_secret(&secp, &rbp, &pcp, known).unwrap(),
                    plain
                );
            }
        }
    }

    #[test]
    fn privkey_matches_pubkey() {
        let secp = Secp256k1::new();
        let base = SecretKey::from_slice(&[3u8; 32]).unwrap();
        let pcp = PublicKey::from_secret_key(&secp, &SecretKey::from_slice(&[4u8; 32]).unwrap());
        let sk = derive_privkey(&secp, &base, &pcp).unwrap();
        let basepoint = PublicKey::from_secret_key(&secp, &base);
        let pk = derive_pubkey(&secp, &basepoint, &pcp).unwrap();
        assert_eq!(PublicKey::from_secret_key(&secp, &sk), pk);
        assert_eq!(
            derive_privkey_with_basepoint(&base, &basepoint, &pcp).unwrap(),
            sk
        );
    }
}
