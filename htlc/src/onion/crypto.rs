//! Sphinx key schedule (BOLT 4): per-hop shared secrets and ephemeral-key blinding along a
//! route, the `rho`/`mu`/`um`/`ammag`/`pad` keys, and the ChaCha20 stream.
//!
//! Pure functions of their arguments; the session key (entropy) is always passed in. Must
//! never generate randomness or compare MACs in variable time.

use bitcoin::hashes::{hmac, sha256, Hash, HashEngine};
use bitcoin::secp256k1::{ecdh::SharedSecret, PublicKey, Scalar, Secp256k1, SecretKey, Signing};
use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::ChaCha20;

use super::OnionError;

/// Per-hop 32-byte shared secret (`SHA256` of the compressed ECDH point).
pub type SharedSecretBytes = [u8; 32];

/// `HMAC-SHA256(key = name, msg = secret)`: the BOLT 4 key generator.
pub fn generate_key(name: &[u8], secret: &[u8; 32]) -> [u8; 32] {
    hmac_sha256(name, &[secret])
}

/// `HMAC-SHA256(key, concat(parts))`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut engine = hmac::HmacEngine::<sha256::Hash>::new(key);
    for p in parts {
        engine.input(p);
    }
    hmac::Hmac::<sha256::Hash>::from_engine(engine).to_byte_array()
}

/// XORs `buf` in place with the ChaCha20 stream for `key` (zero nonce, counter 0).
pub fn xor_stream(key: &[u8; 32], buf: &mut [u8]) {
    let mut cipher = ChaCha20::new(key.into(), &[0u8; 12].into());
    cipher.apply_keystream(buf);
}

/// The ChaCha20 stream for `key`, `len` bytes long.
pub fn cipher_stream(key: &[u8; 32], len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    xor_stream(key, &mut v);
    v
}

/// ECDH shared secret between our secret key and their public point.
pub fn shared_secret(point: &PublicKey, secret: &SecretKey) -> SharedSecretBytes {
    SharedSecret::new(point, secret).secret_bytes()
}

/// Blinding factor `SHA256(ephemeral_pubkey || shared_secret)`.
pub fn blinding_factor(
    ephemeral: &PublicKey,
    ss: &SharedSecretBytes,
) -> Result<Scalar, OnionError> {
    let mut engine = sha256::Hash::engine();
    engine.input(&ephemeral.serialize());
    engine.input(ss);
    let digest = sha256::Hash::from_engine(engine).to_byte_array();
    Scalar::from_be_bytes(digest).map_err(|_| OnionError::InvalidKey)
}

/// Walks the route from the sender's side: for each hop, returns `(ephemeral pubkey given
/// to that hop, shared secret with that hop)`.
pub fn route_shared_secrets<C: Signing>(
    secp: &Secp256k1<C>,
    session_key: &SecretKey,
    hops: &[PublicKey],
) -> Result<Vec<(PublicKey, SharedSecretBytes)>, OnionError> {
    let mut out = Vec::with_capacity(hops.len());
    let mut eph_secret = *session_key;
    for hop in hops {
        let eph_pub = PublicKey::from_secret_key(secp, &eph_secret);
        let ss = shared_secret(hop, &eph_secret);
        let b = blinding_factor(&eph_pub, &ss)?;
        out.push((eph_pub, ss));
        eph_secret = eph_secret
            .mul_tweak(&b)
            .map_err(|_| OnionError::InvalidKey)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chacha_stream_is_rfc_block_zero() {
        // ChaCha20 with an all-zero key and nonce (RFC 7539 test vector, block counter 0).
        let s = cipher_stream(&[0u8; 32], 16);
        assert_eq!(
            s,
            [
                0x76, 0xb8, 0xe0, 0xad, 0xa0, 0xf1, 0x3d, 0x90, 0x40, 0x5d, 0x6a, 0xe5, 0x53, 0x86,
                0xbd, 0x28
            ]
        );
    }
}
