//! Fuzz target: the Noise transport's inbound path, past the MACs.
//!
//! The harness plays the initiator itself (snow, fixed keys: node key `[1; 32]`, Noise
//! static `[3; 32]`) and completes a real handshake with the product's responder
//! ([`NoiseSession`], node key `[2; 32]`). From the split keys it encrypts frames whose
//! *plaintext* comes from the fuzz input, so the frame-length check, body buffering and
//! body delivery see hostile plaintext that passes authentication. The input is a script:
//!
//! * byte 0: chunk size for feeding the ciphertext (partial reads);
//! * byte 1: inbound body limit, in units of 256 bytes;
//! * then records, each an op byte and its data:
//!   * `op % 4 == 0`: a well-formed frame; body length from the next byte (× 4 plus 0..3
//!     from the op), body bytes from the input;
//!   * `op % 4 == 1`: a hostile frame: a length header with the next 2 bytes as plaintext
//!     (any value), then a body of the length the next byte gives, encrypted with the
//!     next nonce (so announced and real length may disagree);
//!   * `op % 4 == 2`: the next byte's count of raw (unencrypted) input bytes;
//!   * `op % 4 == 3`: flip a bit in the ciphertext produced so far.
//!
//! Oracle: the messages the session delivers are exactly the bodies of the well-formed
//! frames, in order, up to the first frame that is tampered with, mis-sized or over the
//! limit; after an error nothing more is delivered. The first byte's chunking also drives
//! a fresh responder with the raw input (act 1 parsing). Must never panic.
#![no_main]

use std::sync::OnceLock;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Message as SecpMessage, PublicKey, Secp256k1, SecretKey};
use fulmen_wire::transport::{
    NoiseIdentity, NoiseSession, TransportEvent, ACT2_LEN, NOISE_PARAMS, PROLOGUE, REKEY_INTERVAL,
    STATIC_KEY_TAG,
};
use libfuzzer_sys::fuzz_target;
use snow::params::CipherChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::Cipher;

const INITIATOR_NODE_KEY: [u8; 32] = [1; 32];
const INITIATOR_STATIC: [u8; 32] = [3; 32];
const INITIATOR_EPHEMERAL: [u8; 32] = [5; 32];
const RESPONDER_NODE_KEY: [u8; 32] = [2; 32];
const RESPONDER_STATIC: [u8; 32] = [4; 32];
const MAC_LEN: usize = 16;

/// The initiator's sending half, as the harness drives it: cipher, nonce, message count.
struct Sender {
    cipher: Box<dyn Cipher>,
    nonce: u64,
    messages: u32,
}

impl Sender {
    fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + plain.len() + MAC_LEN, 0);
        self.cipher
            .encrypt(self.nonce, &[], plain, &mut out[start..]);
        self.nonce += 1;
    }

    /// Counts one frame (header + body) and rotates the key as the transport does.
    fn frame_done(&mut self) {
        self.messages += 1;
        if self.messages == REKEY_INTERVAL {
            self.cipher.rekey();
            self.nonce = 0;
            self.messages = 0;
        }
    }
}

/// Fixed identities and the initiator's proof, computed once: the responder's identity,
/// the initiator's node id and its identity payload.
fn fixed() -> &'static (NoiseIdentity, PublicKey, Vec<u8>) {
    static FIXED: OnceLock<(NoiseIdentity, PublicKey, Vec<u8>)> = OnceLock::new();
    FIXED.get_or_init(|| {
        let secp = Secp256k1::new();
        let responder_id = NoiseIdentity::new(
            &secp,
            &SecretKey::from_slice(&RESPONDER_NODE_KEY).expect("valid key"),
            RESPONDER_STATIC,
        );
        let initiator_id = NoiseIdentity::new(
            &secp,
            &SecretKey::from_slice(&INITIATOR_NODE_KEY).expect("valid key"),
            INITIATOR_STATIC,
        );
        let payload = initiator_payload(&secp, &initiator_id.static_public());
        (responder_id, initiator_id.node_id(), payload)
    })
}

/// The identity payload the initiator proves: node id || sig(SHA256(tag || static)).
fn initiator_payload(secp: &Secp256k1<bitcoin::secp256k1::All>, static_pub: &[u8]) -> Vec<u8> {
    let sk = SecretKey::from_slice(&INITIATOR_NODE_KEY).expect("valid key");
    let mut data = STATIC_KEY_TAG.to_vec();
    data.extend_from_slice(static_pub);
    let digest = SecpMessage::from_digest(sha256::Hash::hash(&data).to_byte_array());
    let mut payload = PublicKey::from_secret_key(secp, &sk).serialize().to_vec();
    payload.extend_from_slice(&secp.sign_ecdsa(&digest, &sk).serialize_compact());
    payload
}

/// Runs the handshake: the product's responder against the harness's snow initiator.
fn connect() -> (NoiseSession, Sender) {
    let (responder_id, initiator_node_id, initiator_proof) = fixed();
    let mut r = NoiseSession::responder(responder_id, [6; 32]).expect("responder");
    let mut hs = snow::Builder::new(NOISE_PARAMS.parse().expect("params"))
        .prologue(PROLOGUE)
        .local_private_key(&INITIATOR_STATIC)
        .fixed_ephemeral_key_for_testing_only(&INITIATOR_EPHEMERAL)
        .build_initiator()
        .expect("initiator");
    let mut buf = vec![0u8; 1024];
    let n = hs.write_message(&[], &mut buf).expect("act 1");
    let act2 = match &r.feed(&buf[..n]).expect("act 1 accepted")[..] {
        [TransportEvent::Send(a)] => a.clone(),
        other => panic!("unexpected {other:?}"),
    };
    let mut payload = [0u8; ACT2_LEN];
    hs.read_message(&act2, &mut payload).expect("act 2");
    let n = hs.write_message(initiator_proof, &mut buf).expect("act 3");
    let evs = r.feed(&buf[..n]).expect("act 3 accepted");
    assert!(
        matches!(&evs[..], [TransportEvent::Connected { remote_node_id }] if remote_node_id == initiator_node_id),
        "handshake did not complete: {evs:?}"
    );
    let (k_i2r, _k_r2i) = hs.dangerously_get_raw_split();
    let mut cipher = DefaultResolver
        .resolve_cipher(&CipherChoice::ChaChaPoly)
        .expect("chachapoly");
    cipher.set(&k_i2r);
    (
        r,
        Sender {
            cipher,
            nonce: 0,
            messages: 0,
        },
    )
}

/// Reads `n` bytes from the script (fewer at its end).
fn take<'a>(script: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (a, b) = script.split_at(n.min(script.len()));
    *script = b;
    a
}

fn take_byte(script: &mut &[u8]) -> u8 {
    take(script, 1).first().copied().unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let limit = usize::from(data.get(1).copied().unwrap_or(0xff)) * 256;

    // Act 1 parsing: the raw input straight into a fresh responder.
    {
        let mut fresh = NoiseSession::responder(&fixed().0, [7; 32]).expect("responder");
        for c in data.chunks(chunk) {
            if fresh.feed(c).is_err() {
                break;
            }
        }
    }

    // Build the encrypted stream and the messages it must deliver.
    let (mut r, mut tx) = connect();
    r.set_max_inbound_body(limit);
    let mut script = data.get(2..).unwrap_or(&[]);
    // The stream as sent, each element's end offset in it with its body if it is a
    // well-formed frame within the limit (`None`: breaks the stream), and the bit flips.
    let mut stream = Vec::new();
    let mut segments: Vec<(usize, Option<Vec<u8>>)> = Vec::new();
    let mut flips: Vec<(usize, u8)> = Vec::new();
    while !script.is_empty() {
        let op = take_byte(&mut script);
        match op % 4 {
            0 => {
                let len = usize::from(take_byte(&mut script)) * 4 + usize::from(op >> 6);
                let body = take(&mut script, len);
                tx.seal(&(body.len() as u16).to_be_bytes(), &mut stream);
                tx.seal(body, &mut stream);
                tx.frame_done();
                let ok = body.len() <= limit;
                segments.push((stream.len(), ok.then(|| body.to_vec())));
            }
            1 => {
                let announced =
                    u16::from_be_bytes([take_byte(&mut script), take_byte(&mut script)]);
                let real = take_byte(&mut script);
                let body = take(&mut script, usize::from(real));
                tx.seal(&announced.to_be_bytes(), &mut stream);
                tx.seal(body, &mut stream);
                tx.frame_done();
                let ok = usize::from(announced) == body.len() && body.len() <= limit;
                segments.push((stream.len(), ok.then(|| body.to_vec())));
            }
            2 => {
                let n = usize::from(take_byte(&mut script));
                let raw = take(&mut script, n);
                stream.extend_from_slice(raw);
                // Unencrypted bytes break framing from here on.
                if !raw.is_empty() {
                    segments.push((stream.len(), None));
                }
            }
            _ => {
                let pos =
                    usize::from(take_byte(&mut script)) | usize::from(take_byte(&mut script)) << 8;
                if !stream.is_empty() {
                    flips.push((pos % stream.len(), 1 << (op >> 5)));
                }
            }
        }
    }
    let pristine = stream.clone();
    for (i, bit) in flips {
        stream[i] ^= bit;
    }
    // The first altered byte (flips may cancel out); frames ending before it are intact.
    let first_diff = stream
        .iter()
        .zip(&pristine)
        .position(|(a, b)| a != b)
        .unwrap_or(stream.len());
    let mut expected: Vec<Vec<u8>> = Vec::new();
    let mut intact = first_diff == stream.len();
    for (end, body) in segments {
        match body {
            Some(b) if end <= first_diff => expected.push(b),
            _ => {
                intact = false;
                break;
            }
        }
    }

    let mut delivered = Vec::new();
    let mut failed = false;
    for c in stream.chunks(chunk) {
        match r.feed(c) {
            Ok(evs) => {
                for e in evs {
                    match e {
                        TransportEvent::Message(m) => delivered.push(m),
                        other => panic!("unexpected event after handshake: {other:?}"),
                    }
                }
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if intact {
        // Nothing was tampered with: exactly the well-formed frames arrive, and a clean
        // stream never errors.
        assert!(!failed, "intact stream refused");
        assert_eq!(
            delivered, expected,
            "intact stream delivered other messages"
        );
    } else {
        // Broken somewhere: what arrived is a prefix of the well-formed frames before the
        // break (a shorter one if the failing `feed` call also held good frames: their
        // events are dropped with the error, and the connection is closed anyway).
        assert!(
            delivered.len() <= expected.len(),
            "delivered a frame after the break"
        );
        assert_eq!(
            delivered[..],
            expected[..delivered.len()],
            "delivered frames out of order or altered"
        );
    }
});
