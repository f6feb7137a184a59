//! The BOLT 4 onion packet: 1366 bytes = version, ephemeral key, 1300-byte `hop_payloads`,
//! HMAC. Construction (sender, with filler) and peeling (each hop).
//!
//! Peeling checks version, key and HMAC (constant time) before reading anything, and
//! never panics or allocates beyond fixed buffers on hostile bytes.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey, Signing, Verification};
use subtle::ConstantTimeEq;

use super::codec::{bigsize_len, read_bigsize};
use super::crypto::{
    blinding_factor, cipher_stream, generate_key, hmac_sha256, route_shared_secrets, shared_secret,
    xor_stream, SharedSecretBytes,
};
use super::OnionError;

/// Size of the `hop_payloads` field.
pub const HOP_PAYLOADS_LEN: usize = 1300;
/// Size of a serialized onion packet.
pub const ONION_PACKET_LEN: usize = 1 + 33 + HOP_PAYLOADS_LEN + 32;
/// The only onion version defined.
pub const ONION_VERSION: u8 = 0;
/// HMAC length.
pub const HMAC_LEN: usize = 32;

/// A parsed `onion_routing_packet` (the structure, not yet authenticated).
#[derive(Clone, PartialEq, Eq)]
pub struct OnionPacket {
    /// Version byte (0).
    pub version: u8,
    /// The ephemeral public key for this hop, as 33 raw bytes (validated when peeling, so a
    /// bad key yields `invalid_onion_key` rather than a parse failure).
    pub public_key: [u8; 33],
    /// Encrypted `hop_payloads`.
    pub hop_payloads: [u8; HOP_PAYLOADS_LEN],
    /// HMAC over `hop_payloads || associated_data`.
    pub hmac: [u8; 32],
}

impl core::fmt::Debug for OnionPacket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OnionPacket")
            .field("version", &self.version)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl OnionPacket {
    /// Serializes to the 1366-byte wire form.
    pub fn to_bytes(&self) -> [u8; ONION_PACKET_LEN] {
        let mut out = [0u8; ONION_PACKET_LEN];
        out[0] = self.version;
        out[1..34].copy_from_slice(&self.public_key);
        out[34..34 + HOP_PAYLOADS_LEN].copy_from_slice(&self.hop_payloads);
        out[34 + HOP_PAYLOADS_LEN..].copy_from_slice(&self.hmac);
        out
    }

    /// Parses the fixed layout; fails only on a wrong length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OnionError> {
        if bytes.len() != ONION_PACKET_LEN {
            return Err(OnionError::WrongLength(bytes.len()));
        }
        let mut public_key = [0u8; 33];
        public_key.copy_from_slice(&bytes[1..34]);
        let mut hop_payloads = [0u8; HOP_PAYLOADS_LEN];
        hop_payloads.copy_from_slice(&bytes[34..34 + HOP_PAYLOADS_LEN]);
        let mut hmac = [0u8; 32];
        hmac.copy_from_slice(&bytes[34 + HOP_PAYLOADS_LEN..]);
        Ok(OnionPacket {
            version: bytes[0],
            public_key,
            hop_payloads,
            hmac,
        })
    }

    /// `SHA256` of the serialized packet (`sha256_of_onion` in BADONION failures).
    pub fn sha256(&self) -> [u8; 32] {
        sha256::Hash::hash(&self.to_bytes()).to_byte_array()
    }
}

/// Builds an onion from already-serialized hop payloads (each one starting with its
/// BigSize length, exactly as carried in `hop_payloads`).
///
/// Returns the packet and the per-hop shared secrets (the sender keeps them to decrypt a
/// returned error). `session_key` is fresh entropy from the caller.
pub fn construct_onion_raw<C: Signing>(
    secp: &Secp256k1<C>,
    session_key: &SecretKey,
    hops: &[PublicKey],
    payloads: &[Vec<u8>],
    associated_data: &[u8],
) -> Result<(OnionPacket, Vec<SharedSecretBytes>), OnionError> {
    if hops.is_empty() || hops.len() != payloads.len() {
        return Err(OnionError::RouteShape);
    }
    let total: usize = payloads.iter().map(|p| p.len() + HMAC_LEN).sum();
    if total > HOP_PAYLOADS_LEN {
        return Err(OnionError::PayloadsTooLarge(total));
    }
    let route = route_shared_secrets(secp, session_key, hops)?;
    let secrets: Vec<SharedSecretBytes> = route.iter().map(|(_, ss)| *ss).collect();

    let filler = generate_filler(&secrets, payloads);

    let pad_key = generate_key(b"pad", &session_key.secret_bytes());
    let mut mix = [0u8; HOP_PAYLOADS_LEN];
    xor_stream(&pad_key, &mut mix);

    let mut next_hmac = [0u8; 32];
    for i in (0..hops.len()).rev() {
        let payload = &payloads[i];
        let shift = payload.len() + HMAC_LEN;
        mix.copy_within(0..HOP_PAYLOADS_LEN - shift, shift);
        mix[..payload.len()].copy_from_slice(payload);
        mix[payload.len()..shift].copy_from_slice(&next_hmac);
        let rho = generate_key(b"rho", &secrets[i]);
        xor_stream(&rho, &mut mix);
        if i == hops.len() - 1 {
            mix[HOP_PAYLOADS_LEN - filler.len()..].copy_from_slice(&filler);
        }
        let mu = generate_key(b"mu", &secrets[i]);
        next_hmac = hmac_sha256(&mu, &[&mix, associated_data]);
    }
    let packet = OnionPacket {
        version: ONION_VERSION,
        public_key: route[0].0.serialize(),
        hop_payloads: mix,
        hmac: next_hmac,
    };
    Ok((packet, secrets))
}

/// The filler: what the earlier hops' decryption pushes in at the end of `hop_payloads`,
/// precomputed so the final HMACs match.
fn generate_filler(secrets: &[SharedSecretBytes], payloads: &[Vec<u8>]) -> Vec<u8> {
    let n = payloads.len();
    let filler_len: usize = payloads[..n - 1].iter().map(|p| p.len() + HMAC_LEN).sum();
    let mut filler = vec![0u8; filler_len];
    let mut used = 0usize;
    for i in 0..n - 1 {
        let len_i = payloads[i].len() + HMAC_LEN;
        used += len_i;
        let rho = generate_key(b"rho", &secrets[i]);
        let stream = cipher_stream(&rho, 2 * HOP_PAYLOADS_LEN);
        let end = HOP_PAYLOADS_LEN + len_i;
        let start = end - used;
        for (f, s) in filler[..used].iter_mut().zip(&stream[start..end]) {
            *f ^= s;
        }
    }
    filler
}

/// What one hop learns by peeling its layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeeledHop {
    /// The raw TLV hop payload (without its length prefix).
    pub payload: Vec<u8>,
    /// The shared secret with the sender (used to wrap an error on the way back).
    pub shared_secret: SharedSecretBytes,
    /// The packet to forward, or `None` if this hop is the final recipient (next HMAC zero).
    pub next: Option<OnionPacket>,
}

/// Peels one layer with this node's secret key.
///
/// Errors map to BOLT 4 BADONION failures: [`OnionError::BadVersion`]
/// (`invalid_onion_version`), [`OnionError::InvalidKey`] (`invalid_onion_key`),
/// [`OnionError::BadHmac`] (`invalid_onion_hmac`); a malformed payload length after a good
/// HMAC is [`OnionError::BadPayloadLength`] (`invalid_onion_payload`).
pub fn peel_onion<C: Signing + Verification>(
    secp: &Secp256k1<C>,
    node_secret: &SecretKey,
    packet: &OnionPacket,
    associated_data: &[u8],
) -> Result<PeeledHop, OnionError> {
    if packet.version != ONION_VERSION {
        return Err(OnionError::BadVersion(packet.version));
    }
    let eph = PublicKey::from_slice(&packet.public_key).map_err(|_| OnionError::InvalidKey)?;
    let ss = shared_secret(&eph, node_secret);
    let mu = generate_key(b"mu", &ss);
    let expected = hmac_sha256(&mu, &[&packet.hop_payloads, associated_data]);
    if !bool::from(expected.ct_eq(&packet.hmac)) {
        return Err(OnionError::BadHmac);
    }
    let rho = generate_key(b"rho", &ss);
    let mut bytes = [0u8; 2 * HOP_PAYLOADS_LEN];
    bytes[..HOP_PAYLOADS_LEN].copy_from_slice(&packet.hop_payloads);
    xor_stream(&rho, &mut bytes);

    let (len, prefix) = read_bigsize(&bytes).map_err(|_| OnionError::BadPayloadLength)?;
    if len == 0 {
        // A leading 0x00 was the removed legacy (realm 0) format.
        return Err(OnionError::BadPayloadLength);
    }
    let len = usize::try_from(len).map_err(|_| OnionError::BadPayloadLength)?;
    if len > HOP_PAYLOADS_LEN - HMAC_LEN - prefix {
        return Err(OnionError::BadPayloadLength);
    }
    debug_assert_eq!(prefix, bigsize_len(len as u64));
    let payload = bytes[prefix..prefix + len].to_vec();
    let mut next_hmac = [0u8; 32];
    next_hmac.copy_from_slice(&bytes[prefix + len..prefix + len + HMAC_LEN]);
    let consumed = prefix + len + HMAC_LEN;

    let next = if next_hmac == [0u8; 32] {
        None
    } else {
        let b = blinding_factor(&eph, &ss)?;
        let next_eph = eph
            .mul_tweak(secp, &b)
            .map_err(|_| OnionError::InvalidKey)?;
        let mut hop_payloads = [0u8; HOP_PAYLOADS_LEN];
        hop_payloads.copy_from_slice(&bytes[consumed..consumed + HOP_PAYLOADS_LEN]);
        Some(OnionPacket {
            version: ONION_VERSION,
            public_key: next_eph.serialize(),
            hop_payloads,
            hmac: next_hmac,
        })
    };
    Ok(PeeledHop {
        payload,
        shared_secret: ss,
        next,
    })
}
