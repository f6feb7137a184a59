//! Noise transport as a sans-IO state machine: `Noise_XX_25519_ChaChaPoly_SHA256` (via
//! `snow`) with secp256k1 node identities, and BOLT 8-style framing.
//!
//! Handshake (XX, prologue [`PROLOGUE`]), fixed sizes so no extra framing is needed:
//! * act 1, initiator → responder: `e` ([`ACT1_LEN`] bytes, empty payload);
//! * act 2, responder → initiator: `e, ee, s, es` + encrypted identity payload ([`ACT2_LEN`]);
//! * act 3, initiator → responder: `s, se` + encrypted identity payload ([`ACT3_LEN`]).
//!
//! The identity payload is `node_id (33-byte compressed secp256k1) || sig (64-byte compact
//! ECDSA)`, where `sig` is the node key's signature over
//! `SHA256("fulmen-noise-static-key" || noise_static_public_key)` (a libp2p-noise-style
//! binding of the node id to the Noise static key). The initiator aborts unless the
//! responder proves the node id it dialled; the responder learns the initiator's node id.
//!
//! Transport frames (as BOLT 8): `enc(len: u16 BE) + 16-byte MAC`, then `enc(body) +
//! 16-byte MAC`, body ≤ 65535 bytes, ChaCha20-Poly1305 with a 64-bit counter nonce
//! incremented per encryption. After every [`REKEY_INTERVAL`] messages in a direction, that
//! direction's key is replaced by Noise `REKEY(k)` (ChaCha20-Poly1305 encryption of 32 zero
//! bytes under nonce 2^64-1, first 32 bytes) and its nonce reset to 0; both sides count the
//! same messages so they agree. Keys come from the handshake's `Split()` (snow's
//! `risky-raw-split`) because snow's own transport caps ciphertexts at 65535 bytes, which
//! would limit bodies to 65519.
//!
//! Entropy: the Noise ephemeral key is drawn from a ChaCha20 RNG seeded by 32 bytes the
//! caller passes in; this crate never touches the OS RNG or the clock.
//!
//! Owns: crypto state and framing. Must never do I/O, never panic on peer bytes and never
//! buffer more than one frame of unprocessed input. After any error the session is dead.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{
    ecdsa::Signature, All, Message as SecpMessage, PublicKey, Secp256k1, SecretKey,
};
use rand_chacha::rand_core::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash as NoiseHash, Random};

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_SHA256";
/// Prologue mixed into the handshake hash.
pub const PROLOGUE: &[u8] = b"fulmen-noise-v1";
/// Domain tag hashed before the Noise static key when signing it with the node key.
pub const STATIC_KEY_TAG: &[u8] = b"fulmen-noise-static-key";
/// Identity payload size: node id + compact signature.
pub const IDENTITY_PAYLOAD_LEN: usize = 33 + 64;
/// Poly1305 tag length.
pub const MAC_LEN: usize = 16;
/// Act 1 size: ephemeral key.
pub const ACT1_LEN: usize = 32;
/// Act 2 size: ephemeral key, encrypted static key, encrypted identity payload.
pub const ACT2_LEN: usize = 32 + 32 + MAC_LEN + IDENTITY_PAYLOAD_LEN + MAC_LEN;
/// Act 3 size: encrypted static key, encrypted identity payload.
pub const ACT3_LEN: usize = 32 + MAC_LEN + IDENTITY_PAYLOAD_LEN + MAC_LEN;
/// Encrypted length header size.
pub const HEADER_LEN: usize = 2 + MAC_LEN;
/// Largest message body a frame can carry.
pub const MAX_BODY_LEN: usize = 65535;
/// Messages per direction between key rotations.
pub const REKEY_INTERVAL: u32 = 1000;

/// Why the transport failed. The connection must be closed after any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The Noise library refused an operation (bad act, MAC failure in the handshake).
    #[error("noise handshake failed: {0}")]
    Noise(String),
    /// A frame's MAC did not verify (tampering or desynchronised keys).
    #[error("frame authentication failed")]
    BadMac,
    /// The peer's identity payload was malformed or its signature did not verify.
    #[error("peer identity proof invalid: {0}")]
    BadIdentity(&'static str),
    /// The responder is not the node we dialled.
    #[error("responder is node {got}, expected {expected}")]
    WrongNodeId {
        /// The node id we dialled.
        expected: Box<PublicKey>,
        /// The node id it proved.
        got: Box<PublicKey>,
    },
    /// An outgoing message is larger than a frame can carry.
    #[error("message of {0} bytes exceeds the 65535-byte frame limit")]
    MessageTooLarge(usize),
    /// An incoming frame announced a body larger than our configured limit.
    #[error("incoming frame of {len} bytes exceeds limit {limit}")]
    FrameTooLarge {
        /// Announced length.
        len: usize,
        /// Our limit.
        limit: usize,
    },
    /// The stream ended in the middle of a frame or handshake act.
    #[error("connection closed inside a frame ({0} bytes pending)")]
    Truncated(usize),
    /// Encryption requested before the handshake completed.
    #[error("handshake not complete")]
    NotReady,
    /// The session already failed.
    #[error("session closed after an earlier error")]
    Dead,
}

fn noise_err(e: snow::Error) -> TransportError {
    TransportError::Noise(e.to_string())
}

/// RNG seeded from caller entropy, handed to snow through [`SeededResolver`].
struct SeededRng(ChaCha20Rng);

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_chacha::rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}
impl CryptoRng for SeededRng {}
impl Random for SeededRng {}

/// A snow resolver that uses snow's default primitives but a caller-seeded RNG.
struct SeededResolver {
    seed: [u8; 32],
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRng(ChaCha20Rng::from_seed(self.seed))))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn NoiseHash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

fn static_key_digest(static_pub: &[u8]) -> SecpMessage {
    let mut data = Vec::with_capacity(STATIC_KEY_TAG.len() + static_pub.len());
    data.extend_from_slice(STATIC_KEY_TAG);
    data.extend_from_slice(static_pub);
    SecpMessage::from_digest(sha256::Hash::hash(&data).to_byte_array())
}

/// This node's long-term identity: secp256k1 node key, X25519 Noise static key, and the
/// precomputed proof binding them. Build once and share between connections.
#[derive(Clone)]
pub struct NoiseIdentity {
    node_id: PublicKey,
    static_secret: [u8; 32],
    static_public: [u8; 32],
    payload: [u8; IDENTITY_PAYLOAD_LEN],
}

impl std::fmt::Debug for NoiseIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseIdentity")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl NoiseIdentity {
    /// Builds the identity from the node secret key and a 32-byte X25519 static secret
    /// (both from the caller's key storage).
    pub fn new(
        secp: &Secp256k1<All>,
        node_secret: &SecretKey,
        noise_static_secret: [u8; 32],
    ) -> Self {
        let mut dh = DefaultResolver
            .resolve_dh(&DHChoice::Curve25519)
            .unwrap_or_else(|| unreachable!("snow's default resolver always has Curve25519"));
        dh.set(&noise_static_secret);
        let mut static_public = [0u8; 32];
        static_public.copy_from_slice(dh.pubkey());
        let node_id = PublicKey::from_secret_key(secp, node_secret);
        let sig = secp.sign_ecdsa(&static_key_digest(&static_public), node_secret);
        let mut payload = [0u8; IDENTITY_PAYLOAD_LEN];
        payload[..33].copy_from_slice(&node_id.serialize());
        payload[33..].copy_from_slice(&sig.serialize_compact());
        NoiseIdentity {
            node_id,
            static_secret: noise_static_secret,
            static_public,
            payload,
        }
    }

    /// The secp256k1 node id.
    pub fn node_id(&self) -> PublicKey {
        self.node_id
    }

    /// The X25519 Noise static public key.
    pub fn static_public(&self) -> [u8; 32] {
        self.static_public
    }
}

/// Checks a peer's identity payload against its Noise static key; returns its node id.
fn verify_identity(
    payload: &[u8],
    remote_static: Option<&[u8]>,
) -> Result<PublicKey, TransportError> {
    if payload.len() != IDENTITY_PAYLOAD_LEN {
        return Err(TransportError::BadIdentity("payload length"));
    }
    let rs = remote_static.ok_or(TransportError::BadIdentity("no remote static key"))?;
    let node_id = PublicKey::from_slice(&payload[..33])
        .map_err(|_| TransportError::BadIdentity("node id"))?;
    let sig = Signature::from_compact(&payload[33..])
        .map_err(|_| TransportError::BadIdentity("signature encoding"))?;
    let secp = Secp256k1::verification_only();
    secp.verify_ecdsa(&static_key_digest(rs), &sig, &node_id)
        .map_err(|_| TransportError::BadIdentity("signature does not verify"))?;
    Ok(node_id)
}

/// One direction's cipher: key, nonce and message count since the last rekey.
struct Direction {
    cipher: Box<dyn Cipher>,
    nonce: u64,
    messages: u32,
}

impl Direction {
    fn new(key: &[u8; 32]) -> Self {
        let mut cipher = DefaultResolver
            .resolve_cipher(&CipherChoice::ChaChaPoly)
            .unwrap_or_else(|| unreachable!("snow's default resolver always has ChaChaPoly"));
        cipher.set(key);
        Direction {
            cipher,
            nonce: 0,
            messages: 0,
        }
    }

    fn next_nonce(&mut self) -> u64 {
        let n = self.nonce;
        self.nonce += 1;
        n
    }

    /// Counts a finished message and rotates the key at the interval.
    fn message_done(&mut self) {
        self.messages += 1;
        if self.messages == REKEY_INTERVAL {
            self.cipher.rekey();
            self.nonce = 0;
            self.messages = 0;
        }
    }
}

enum Phase {
    /// Initiator waiting for act 2.
    InitiatorAwaitAct2 {
        hs: Box<snow::HandshakeState>,
        expected: PublicKey,
    },
    /// Responder waiting for act 1.
    ResponderAwaitAct1 { hs: Box<snow::HandshakeState> },
    /// Responder waiting for act 3.
    ResponderAwaitAct3 { hs: Box<snow::HandshakeState> },
    /// Transport mode.
    Ready {
        /// `None` once moved out by [`NoiseSession::into_split`].
        send: Option<Direction>,
        recv: Direction,
        /// Body length announced by a header already decrypted, if any.
        pending_body: Option<usize>,
    },
    /// Failed; every call errors.
    Dead,
}

/// What [`NoiseSession::feed`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportEvent {
    /// Bytes to write to the peer (handshake acts).
    Send(Vec<u8>),
    /// The handshake completed; the peer proved this node id.
    Connected {
        /// The peer's node id.
        remote_node_id: PublicKey,
    },
    /// A decrypted message body (decode it with [`crate::Message::decode`]).
    Message(Vec<u8>),
}

/// A Noise connection, either handshaking or in transport mode. Feed it the bytes read
/// from the socket; write out what it returns.
pub struct NoiseSession {
    phase: Phase,
    inbuf: Vec<u8>,
    max_inbound_body: usize,
    remote_node_id: Option<PublicKey>,
    identity_payload: [u8; IDENTITY_PAYLOAD_LEN],
}

impl std::fmt::Debug for NoiseSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseSession")
            .field("remote_node_id", &self.remote_node_id)
            .field("buffered", &self.inbuf.len())
            .finish_non_exhaustive()
    }
}

fn builder(seed: [u8; 32]) -> Result<snow::Builder<'static>, TransportError> {
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse().map_err(noise_err)?;
    Ok(snow::Builder::with_resolver(params, Box::new(SeededResolver { seed })).prologue(PROLOGUE))
}

impl NoiseSession {
    /// Starts an outbound handshake to `expected_remote`; returns the session and act 1 to
    /// send. `entropy` seeds the ephemeral key and must be fresh and secret.
    pub fn initiator(
        identity: &NoiseIdentity,
        expected_remote: PublicKey,
        entropy: [u8; 32],
    ) -> Result<(Self, Vec<u8>), TransportError> {
        let mut hs = builder(entropy)?
            .local_private_key(&identity.static_secret)
            .build_initiator()
            .map_err(noise_err)?;
        let mut act1 = vec![0u8; ACT1_LEN + MAC_LEN];
        let n = hs.write_message(&[], &mut act1).map_err(noise_err)?;
        act1.truncate(n);
        let s = NoiseSession {
            phase: Phase::InitiatorAwaitAct2 {
                hs: Box::new(hs),
                expected: expected_remote,
            },
            inbuf: Vec::new(),
            max_inbound_body: MAX_BODY_LEN,
            remote_node_id: None,
            identity_payload: identity.payload,
        };
        Ok((s, act1))
    }

    /// Starts an inbound handshake. `entropy` seeds the ephemeral key.
    pub fn responder(identity: &NoiseIdentity, entropy: [u8; 32]) -> Result<Self, TransportError> {
        let hs = builder(entropy)?
            .local_private_key(&identity.static_secret)
            .build_responder()
            .map_err(noise_err)?;
        Ok(NoiseSession {
            phase: Phase::ResponderAwaitAct1 { hs: Box::new(hs) },
            inbuf: Vec::new(),
            max_inbound_body: MAX_BODY_LEN,
            remote_node_id: None,
            identity_payload: identity.payload,
        })
    }

    /// Sets the largest inbound message body accepted (at most 65535). A frame announcing
    /// more is refused before its body is buffered.
    pub fn set_max_inbound_body(&mut self, limit: usize) {
        self.max_inbound_body = limit.min(MAX_BODY_LEN);
    }

    /// True once the handshake has completed (and no error occurred).
    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready { .. })
    }

    /// The peer's proven node id, once known.
    pub fn remote_node_id(&self) -> Option<PublicKey> {
        self.remote_node_id
    }

    /// Unprocessed input bytes (less than one frame or act).
    pub fn buffered(&self) -> usize {
        self.inbuf.len()
    }

    /// Call at end of stream: errors if a frame or act was cut short.
    pub fn finish(&self) -> Result<(), TransportError> {
        if self.inbuf.is_empty()
            && !matches!(
                self.phase,
                Phase::Ready {
                    pending_body: Some(_),
                    ..
                }
            )
        {
            Ok(())
        } else {
            Err(TransportError::Truncated(self.inbuf.len()))
        }
    }

    /// Encrypts one message into a frame appended to `out`.
    pub fn encrypt_into(&mut self, msg: &[u8], out: &mut Vec<u8>) -> Result<(), TransportError> {
        match &mut self.phase {
            Phase::Ready {
                send: Some(send), ..
            } => encrypt_frame(send, msg, out),
            Phase::Dead => Err(TransportError::Dead),
            _ => Err(TransportError::NotReady),
        }
    }

    /// Splits a ready session into independent sending and receiving halves (for a
    /// reader task and a writer task). Errors if the handshake is not complete.
    pub fn into_split(mut self) -> Result<(NoiseSender, NoiseReceiver), TransportError> {
        let send = match &mut self.phase {
            Phase::Ready { send, .. } => send.take().ok_or(TransportError::NotReady)?,
            Phase::Dead => return Err(TransportError::Dead),
            _ => return Err(TransportError::NotReady),
        };
        Ok((NoiseSender { send }, NoiseReceiver { session: self }))
    }

    /// Encrypts one message into a new frame.
    pub fn encrypt(&mut self, msg: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut out = Vec::with_capacity(HEADER_LEN + msg.len() + MAC_LEN);
        self.encrypt_into(msg, &mut out)?;
        Ok(out)
    }

    /// Feeds bytes read from the peer; returns what they produced, in order. On error the
    /// session is dead and the connection must be closed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<TransportEvent>, TransportError> {
        let mut events = Vec::new();
        match self.feed_inner(bytes, &mut events) {
            Ok(()) => Ok(events),
            Err(e) => {
                self.phase = Phase::Dead;
                self.inbuf = Vec::new();
                Err(e)
            }
        }
    }

    fn feed_inner(
        &mut self,
        mut bytes: &[u8],
        events: &mut Vec<TransportEvent>,
    ) -> Result<(), TransportError> {
        loop {
            let need = match &self.phase {
                Phase::Dead => return Err(TransportError::Dead),
                Phase::ResponderAwaitAct1 { .. } => ACT1_LEN,
                Phase::InitiatorAwaitAct2 { .. } => ACT2_LEN,
                Phase::ResponderAwaitAct3 { .. } => ACT3_LEN,
                Phase::Ready {
                    pending_body: None, ..
                } => HEADER_LEN,
                Phase::Ready {
                    pending_body: Some(n),
                    ..
                } => n + MAC_LEN,
            };
            // Fast path: a whole unit available in `bytes` with nothing buffered.
            let unit: Vec<u8>;
            let unit_ref: &[u8] = if self.inbuf.is_empty() && bytes.len() >= need {
                let (a, b) = bytes.split_at(need);
                bytes = b;
                a
            } else {
                let want = need - self.inbuf.len();
                let take = want.min(bytes.len());
                self.inbuf.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.inbuf.len() < need {
                    return Ok(());
                }
                unit = std::mem::take(&mut self.inbuf);
                &unit
            };
            self.process_unit(unit_ref, events)?;
        }
    }

    fn process_unit(
        &mut self,
        unit: &[u8],
        events: &mut Vec<TransportEvent>,
    ) -> Result<(), TransportError> {
        let phase = std::mem::replace(&mut self.phase, Phase::Dead);
        self.phase = match phase {
            Phase::Dead => return Err(TransportError::Dead),
            Phase::ResponderAwaitAct1 { mut hs } => {
                let mut scratch = [0u8; 64];
                let n = hs.read_message(unit, &mut scratch).map_err(noise_err)?;
                if n != 0 {
                    return Err(TransportError::BadIdentity("unexpected act 1 payload"));
                }
                let mut act2 = vec![0u8; ACT2_LEN + MAC_LEN];
                let n = hs
                    .write_message(&self.identity_payload, &mut act2)
                    .map_err(noise_err)?;
                act2.truncate(n);
                events.push(TransportEvent::Send(act2));
                Phase::ResponderAwaitAct3 { hs }
            }
            Phase::InitiatorAwaitAct2 { mut hs, expected } => {
                let mut payload = [0u8; ACT2_LEN];
                let n = hs.read_message(unit, &mut payload).map_err(noise_err)?;
                let got = verify_identity(&payload[..n], hs.get_remote_static())?;
                if got != expected {
                    return Err(TransportError::WrongNodeId {
                        expected: Box::new(expected),
                        got: Box::new(got),
                    });
                }
                let mut act3 = vec![0u8; ACT3_LEN + MAC_LEN];
                let n = hs
                    .write_message(&self.identity_payload, &mut act3)
                    .map_err(noise_err)?;
                act3.truncate(n);
                events.push(TransportEvent::Send(act3));
                self.remote_node_id = Some(got);
                events.push(TransportEvent::Connected {
                    remote_node_id: got,
                });
                let (k_i2r, k_r2i) = split(hs)?;
                Phase::Ready {
                    send: Some(Direction::new(&k_i2r)),
                    recv: Direction::new(&k_r2i),
                    pending_body: None,
                }
            }
            Phase::ResponderAwaitAct3 { mut hs } => {
                let mut payload = [0u8; ACT3_LEN];
                let n = hs.read_message(unit, &mut payload).map_err(noise_err)?;
                let got = verify_identity(&payload[..n], hs.get_remote_static())?;
                self.remote_node_id = Some(got);
                events.push(TransportEvent::Connected {
                    remote_node_id: got,
                });
                let (k_i2r, k_r2i) = split(hs)?;
                Phase::Ready {
                    send: Some(Direction::new(&k_r2i)),
                    recv: Direction::new(&k_i2r),
                    pending_body: None,
                }
            }
            Phase::Ready {
                send,
                mut recv,
                pending_body: None,
            } => {
                let mut len = [0u8; 2];
                let nonce = recv.next_nonce();
                recv.cipher
                    .decrypt(nonce, &[], unit, &mut len)
                    .map_err(|_| TransportError::BadMac)?;
                let len = usize::from(u16::from_be_bytes(len));
                if len > self.max_inbound_body {
                    return Err(TransportError::FrameTooLarge {
                        len,
                        limit: self.max_inbound_body,
                    });
                }
                Phase::Ready {
                    send,
                    recv,
                    pending_body: Some(len),
                }
            }
            Phase::Ready {
                send,
                mut recv,
                pending_body: Some(len),
            } => {
                let mut body = vec![0u8; len];
                let nonce = recv.next_nonce();
                recv.cipher
                    .decrypt(nonce, &[], unit, &mut body)
                    .map_err(|_| TransportError::BadMac)?;
                recv.message_done();
                events.push(TransportEvent::Message(body));
                Phase::Ready {
                    send,
                    recv,
                    pending_body: None,
                }
            }
        };
        Ok(())
    }
}

fn encrypt_frame(
    send: &mut Direction,
    msg: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), TransportError> {
    if msg.len() > MAX_BODY_LEN {
        return Err(TransportError::MessageTooLarge(msg.len()));
    }
    let start = out.len();
    out.resize(start + HEADER_LEN + msg.len() + MAC_LEN, 0);
    let len = (msg.len() as u16).to_be_bytes();
    let n1 = send.next_nonce();
    send.cipher
        .encrypt(n1, &[], &len, &mut out[start..start + HEADER_LEN]);
    let n2 = send.next_nonce();
    send.cipher
        .encrypt(n2, &[], msg, &mut out[start + HEADER_LEN..]);
    send.message_done();
    Ok(())
}

/// The sending half of a split session.
pub struct NoiseSender {
    send: Direction,
}

impl std::fmt::Debug for NoiseSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseSender").finish_non_exhaustive()
    }
}

impl NoiseSender {
    /// Encrypts one message into a frame appended to `out`.
    pub fn encrypt_into(&mut self, msg: &[u8], out: &mut Vec<u8>) -> Result<(), TransportError> {
        encrypt_frame(&mut self.send, msg, out)
    }
}

/// The receiving half of a split session.
#[derive(Debug)]
pub struct NoiseReceiver {
    session: NoiseSession,
}

impl NoiseReceiver {
    /// Feeds bytes read from the peer; yields only [`TransportEvent::Message`]s.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<TransportEvent>, TransportError> {
        self.session.feed(bytes)
    }

    /// See [`NoiseSession::set_max_inbound_body`].
    pub fn set_max_inbound_body(&mut self, limit: usize) {
        self.session.set_max_inbound_body(limit)
    }

    /// See [`NoiseSession::finish`].
    pub fn finish(&self) -> Result<(), TransportError> {
        self.session.finish()
    }

    /// See [`NoiseSession::buffered`].
    pub fn buffered(&self) -> usize {
        self.session.buffered()
    }
}

fn split(mut hs: Box<snow::HandshakeState>) -> Result<([u8; 32], [u8; 32]), TransportError> {
    if !hs.is_handshake_finished() {
        return Err(TransportError::Noise("handshake not finished".into()));
    }
    Ok(hs.dangerously_get_raw_split())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_rotates_key_and_resets_nonce_at_interval() {
        let key = [5u8; 32];
        let mut d = Direction::new(&key);
        for _ in 0..REKEY_INTERVAL {
            d.next_nonce();
            d.next_nonce();
            d.message_done();
        }
        assert_eq!((d.nonce, d.messages), (0, 0));
        // The rotated key is REKEY(k): equal to a fresh cipher rekeyed once, and different
        // from the original key.
        let mut manual = Direction::new(&key);
        manual.cipher.rekey();
        let plain = Direction::new(&key);
        let (mut a, mut b, mut c) = ([0u8; 20], [0u8; 20], [0u8; 20]);
        d.cipher.encrypt(0, &[], b"abcd", &mut a);
        manual.cipher.encrypt(0, &[], b"abcd", &mut b);
        plain.cipher.encrypt(0, &[], b"abcd", &mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
