//! Property tests for every message: random valid encodings built from an independent
//! table of the spec's field layouts must decode, re-encode byte for byte, and decode
//! again to the same value; any cut inside the fixed fields is an error; arbitrary bytes
//! never panic; unknown odd types are kept, unknown even types refused.

use std::sync::OnceLock;

use bitcoin::secp256k1::{ecdsa::Signature, All, PublicKey, Secp256k1, SecretKey};
use fulmen_wire::codec::write_bigsize;
use fulmen_wire::Message;
use proptest::prelude::*;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

#[derive(Clone, Copy, Debug)]
enum F {
    U8,
    U16,
    U32,
    U64,
    B3,
    B32,
    Point,
    Sig,
    /// u16-length-prefixed bytes (features, scripts, data).
    Len,
    SigVec,
    Onion,
}

#[derive(Clone, Copy, Debug)]
enum T {
    Bytes,
    Point,
    Exact(usize),
    Multiple32,
}

use F::*;

/// (type, fixed fields, known TLVs, gossip-style excess instead of TLVs)
type Layout = (u16, Vec<F>, Vec<(u64, T)>, bool);

fn layouts() -> Vec<Layout> {
    let pts6 = [Point, Point, Point, Point, Point, Point];
    let mut open = vec![B32, B32, U64, U64, U64, U64, U64, U64, U32, U16, U16];
    open.extend(pts6);
    open.push(U8);
    let mut accept = vec![B32, U64, U64, U64, U64, U32, U16, U16];
    accept.extend(pts6);
    vec![
        (1, vec![B32, Len], vec![], false),
        (
            16,
            vec![Len, Len],
            vec![(1, T::Multiple32), (3, T::Bytes)],
            false,
        ),
        (17, vec![B32, Len], vec![], false),
        (18, vec![U16, Len], vec![], false),
        (19, vec![Len], vec![], false),
        (32, open, vec![(0, T::Bytes), (1, T::Bytes)], false),
        (33, accept, vec![(0, T::Bytes), (1, T::Bytes)], false),
        (34, vec![B32, B32, U16, Sig], vec![], false),
        (35, vec![B32, Sig], vec![], false),
        (36, vec![B32, Point], vec![(1, T::Exact(8))], false),
        (38, vec![B32, Len], vec![], false),
        (39, vec![B32, U64, Sig], vec![(1, T::Exact(16))], false),
        (
            128,
            vec![B32, U64, U64, B32, U32, Onion],
            vec![(0, T::Point)],
            false,
        ),
        (130, vec![B32, U64, B32], vec![], false),
        (131, vec![B32, U64, Len], vec![], false),
        (132, vec![B32, Sig, SigVec], vec![], false),
        (133, vec![B32, B32, Point], vec![], false),
        (134, vec![B32, U32], vec![], false),
        (135, vec![B32, U64, B32, U16], vec![], false),
        (136, vec![B32, U64, U64, B32, Point], vec![], false),
        (
            256,
            vec![
                Sig, Sig, Sig, Sig, Len, B32, U64, Point, Point, Point, Point,
            ],
            vec![],
            true,
        ),
        (257, vec![Sig, Len, U32, Point, B3, B32, Len], vec![], true),
        (
            258,
            vec![Sig, B32, U64, U32, U8, U8, U16, U64, U32, U32, U64],
            vec![],
            true,
        ),
        (259, vec![B32, U64, Sig, Sig], vec![], false),
        (265, vec![B32, U32, U32], vec![], false),
    ]
}

fn secp() -> &'static Secp256k1<All> {
    static S: OnceLock<Secp256k1<All>> = OnceLock::new();
    S.get_or_init(Secp256k1::new)
}

struct G(ChaCha20Rng);

impl G {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.0.fill_bytes(&mut v);
        v
    }
    fn below(&mut self, n: u32) -> usize {
        (self.0.next_u32() % n) as usize
    }
    fn point(&mut self) -> Vec<u8> {
        loop {
            if let Ok(sk) = SecretKey::from_slice(&self.bytes(32)) {
                return PublicKey::from_secret_key(secp(), &sk).serialize().to_vec();
            }
        }
    }
    fn sig(&mut self) -> Vec<u8> {
        loop {
            let b = self.bytes(64);
            if Signature::from_compact(&b).is_ok() {
                return b;
            }
        }
    }
    fn field(&mut self, f: F, out: &mut Vec<u8>) {
        match f {
            U8 => out.extend(self.bytes(1)),
            U16 => out.extend(self.bytes(2)),
            U32 => out.extend(self.bytes(4)),
            U64 => out.extend(self.bytes(8)),
            B3 => out.extend(self.bytes(3)),
            B32 => out.extend(self.bytes(32)),
            Point => out.extend(self.point()),
            Sig => out.extend(self.sig()),
            Len => {
                let n = self.below(80);
                out.extend((n as u16).to_be_bytes());
                out.extend(self.bytes(n));
            }
            SigVec => {
                let n = self.below(5);
                out.extend((n as u16).to_be_bytes());
                for _ in 0..n {
                    out.extend(self.sig());
                }
            }
            Onion => out.extend(self.bytes(1366)),
        }
    }
    fn tlv_value(&mut self, t: T) -> Vec<u8> {
        match t {
            T::Bytes => {
                let n = self.below(40);
                self.bytes(n)
            }
            T::Point => self.point(),
            T::Exact(n) => self.bytes(n),
            T::Multiple32 => {
                let n = self.below(3);
                self.bytes(32 * n)
            }
        }
    }
}

/// Builds a random valid encoding; returns (bytes, length of type + fixed fields).
fn build(idx: usize, seed: u64) -> (Vec<u8>, usize) {
    let (ty, fields, tlvs, excess) = layouts().swap_remove(idx);
    let mut g = G(ChaCha20Rng::seed_from_u64(seed));
    let mut out = ty.to_be_bytes().to_vec();
    for f in fields {
        g.field(f, &mut out);
    }
    let fixed = out.len();
    if excess {
        let n = g.below(20);
        out.extend(g.bytes(n));
    } else {
        let mut recs: Vec<(u64, Vec<u8>)> = Vec::new();
        for (t, kind) in tlvs {
            if g.below(2) == 1 {
                recs.push((t, g.tlv_value(kind)));
            }
        }
        // Unknown odd records (types >= 5 are unknown for every message here).
        let mut t = 5u64;
        for _ in 0..g.below(3) {
            t += 2 * (g.below(300) as u64 + 1);
            let n = g.below(10);
            recs.push((t, g.bytes(n)));
        }
        for (t, v) in recs {
            write_bigsize(t, &mut out);
            write_bigsize(v.len() as u64, &mut out);
            out.extend(v);
        }
    }
    (out, fixed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips(seed in any::<u64>()) {
        for idx in 0..layouts().len() {
            let (bytes, fixed) = build(idx, seed);
            let m = Message::decode(&bytes).map_err(|e| {
                TestCaseError::fail(format!("type {:?}: {e}", &bytes[..2]))
            })?;
            let known = !matches!(m, Message::Unknown { .. });
            prop_assert!(known, "decoded as unknown");
            prop_assert_eq!(u16::from_be_bytes([bytes[0], bytes[1]]), m.msg_type());
            let re = m.encode();
            prop_assert_eq!(&re, &bytes);
            prop_assert_eq!(Message::decode(&re).unwrap(), m);
            // Any cut inside the fixed fields is refused.
            for cut in [0, 1, 2, fixed / 2, fixed - 1] {
                if cut < fixed {
                    prop_assert!(Message::decode(&bytes[..cut]).is_err());
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(ty in prop::sample::select(vec![1u16, 16, 17, 18, 19, 32, 33, 34, 35, 36, 38, 39, 128, 130, 131, 132, 133, 134, 135, 136, 256, 257, 258, 259, 265, 77, 78]), body in prop::collection::vec(any::<u8>(), 0..2000)) {
        let mut b = ty.to_be_bytes().to_vec();
        b.extend(body);
        if let Ok(m) = Message::decode(&b) {
            // Whatever decodes must re-decode identically.
            prop_assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The signed ranges are exactly the encoding after the signatures (BOLT 7).
    #[test]
    fn gossip_signed_bytes_are_the_encoding_after_the_signatures(seed in any::<u64>()) {
        use fulmen_wire::msgs::{CHANNEL_ANNOUNCEMENT_SIGNED_OFFSET, SINGLE_SIG_SIGNED_OFFSET, gossip_hash};
        for idx in 0..layouts().len() {
            let (bytes, _) = build(idx, seed);
            match Message::decode(&bytes).unwrap() {
                Message::ChannelAnnouncement(m) => {
                    prop_assert_eq!(&m.signed_bytes()[..], &bytes[CHANNEL_ANNOUNCEMENT_SIGNED_OFFSET..]);
                    prop_assert_eq!(m.signature_hash(), gossip_hash(&bytes[CHANNEL_ANNOUNCEMENT_SIGNED_OFFSET..]));
                }
                Message::NodeAnnouncement(m) => {
                    prop_assert_eq!(&m.signed_bytes()[..], &bytes[SINGLE_SIG_SIGNED_OFFSET..]);
                    prop_assert_eq!(m.signature_hash(), gossip_hash(&bytes[SINGLE_SIG_SIGNED_OFFSET..]));
                }
                Message::ChannelUpdate(m) => {
                    prop_assert_eq!(&m.signed_bytes()[..], &bytes[SINGLE_SIG_SIGNED_OFFSET..]);
                    prop_assert_eq!(m.signature_hash(), gossip_hash(&bytes[SINGLE_SIG_SIGNED_OFFSET..]));
                }
                _ => {}
            }
        }
    }
}

/// Double SHA-256 of the signed range, checked against an independent computation.
#[test]
fn gossip_hash_is_double_sha256() {
    use bitcoin::hashes::{sha256, Hash};
    let once = sha256::Hash::hash(b"abc");
    let twice = sha256::Hash::hash(once.as_byte_array());
    assert_eq!(
        fulmen_wire::msgs::gossip_hash(b"abc"),
        twice.to_byte_array()
    );
}

/// Fixed layouts of the two small BOLT 7 messages, written out field by field.
#[test]
fn announcement_signatures_and_timestamp_filter_layouts() {
    let mut b = vec![0x01, 0x03];
    b.extend([7u8; 32]);
    b.extend(0x0000_6400_0001_0002u64.to_be_bytes());
    let sig = G(ChaCha20Rng::seed_from_u64(1)).sig();
    b.extend(&sig);
    b.extend(&sig);
    match Message::decode(&b).unwrap() {
        Message::AnnouncementSignatures(m) => {
            assert_eq!(m.channel_id, [7u8; 32]);
            assert_eq!(m.short_channel_id, 0x0000_6400_0001_0002);
            assert_eq!(m.node_signature.serialize_compact().to_vec(), sig);
            assert_eq!(m.bitcoin_signature, m.node_signature);
            assert_eq!(Message::AnnouncementSignatures(m).encode(), b);
        }
        other => panic!("{other:?}"),
    }
    let mut b = vec![0x01, 0x09];
    b.extend([9u8; 32]);
    b.extend(1_700_000_000u32.to_be_bytes());
    b.extend(u32::MAX.to_be_bytes());
    match Message::decode(&b).unwrap() {
        Message::GossipTimestampFilter(m) => {
            assert_eq!(m.chain_hash, [9u8; 32]);
            assert_eq!(m.first_timestamp, 1_700_000_000);
            assert_eq!(m.timestamp_range, u32::MAX);
            assert_eq!(Message::GossipTimestampFilter(m).encode(), b);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_types() {
    let m = Message::decode(&[0x00, 0x4d, 1, 2, 3]).unwrap();
    assert_eq!(
        m,
        Message::Unknown {
            msg_type: 77,
            payload: vec![1, 2, 3]
        }
    );
    assert_eq!(m.encode(), vec![0x00, 0x4d, 1, 2, 3]);
    assert_eq!(
        Message::decode(&[0x00, 0x4e]),
        Err(fulmen_wire::DecodeError::UnknownEvenMessage(78))
    );
    assert_eq!(
        Message::decode(&[0x00]),
        Err(fulmen_wire::DecodeError::MissingType)
    );
}

#[test]
fn extension_with_unknown_even_tlv_is_refused_for_every_message() {
    for idx in 0..layouts().len() {
        let (ty, _, _, excess) = layouts().swap_remove(idx);
        if excess {
            continue;
        }
        let (mut bytes, fixed) = build(idx, 42);
        bytes.truncate(fixed);
        bytes.extend([0xfd, 0x01, 0x00, 0x00]); // type 256 (even, unknown), length 0
        assert!(Message::decode(&bytes).is_err(), "type {ty}");
    }
}
