//! The client ↔ tower messages: custom message types (odd, ≥ 32768) carried over the node's
//! Noise transport, and their byte layouts.
//!
//! Owns the type numbers, the payload layouts and their bounded encode/decode. Must never do
//! I/O, never panic and never allocate more than the input on bytes from a peer.
//!
//! Every message is `type (u16 BE) ‖ payload`, with integers big-endian and byte strings
//! prefixed by a u16 BE length, as in BOLT 1. The types are odd, so a peer that does not speak
//! the tower protocol ignores them. Bytes after the last known field are ignored (room for a
//! TLV extension, as BOLT 1 allows).
//!
//! | type | message | payload |
//! | ---: | --- | --- |
//! | 32769 | [`CreateSession`] | `quota: u32` |
//! | 32771 | [`SessionAck`] | `quota: u32, stored: u32` |
//! | 32773 | [`StoreBlob`] | `hint: [u8; 16], blob: u16 len ‖ bytes` |
//! | 32775 | [`StoreAck`] | `hint: [u8; 16]` |
//! | 32777 | [`StoreRefused`] | `hint: [u8; 16], reason_code: u16, text: u16 len ‖ UTF-8` |

use crate::blob::{Hint, HINT_LEN};
pub use crate::codec::DecodeError;
use crate::codec::{put_bytes16, Reader};

/// Message type of [`CreateSession`].
pub const CREATE_SESSION_TYPE: u16 = 32769;
/// Message type of [`SessionAck`].
pub const SESSION_ACK_TYPE: u16 = 32771;
/// Message type of [`StoreBlob`].
pub const STORE_BLOB_TYPE: u16 = 32773;
/// Message type of [`StoreAck`].
pub const STORE_ACK_TYPE: u16 = 32775;
/// Message type of [`StoreRefused`].
pub const STORE_REFUSED_TYPE: u16 = 32777;
/// Longest refusal text sent; longer texts are cut (at a character boundary) when encoding.
pub const MAX_REFUSAL_TEXT: usize = 256;

/// Client → tower: open (or re-open) a session able to hold up to `quota` backups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSession {
    /// Backups the client asks room for.
    pub quota: u32,
}

/// Tower → client: the session exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAck {
    /// Backups the tower granted (may be less than asked).
    pub quota: u32,
    /// Backups the tower already holds for this client (after a reconnect).
    pub stored: u32,
}

/// Client → tower: store one encrypted justice blob under its hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreBlob {
    /// First 16 bytes of the revoked commitment's txid.
    pub hint: Hint,
    /// The sealed blob (see [`crate::blob`]).
    pub blob: Vec<u8>,
}

/// Tower → client: the blob under `hint` is durably stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreAck {
    /// Hint of the stored blob.
    pub hint: Hint,
}

/// Tower → client: the blob under `hint` was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRefused {
    /// Hint of the refused blob.
    pub hint: Hint,
    /// Why, as a [`RefusalReason`] code (unknown codes are kept as they are).
    pub reason_code: u16,
    /// Human-readable detail, at most [`MAX_REFUSAL_TEXT`] bytes on the wire.
    pub text: String,
}

/// Reason codes of [`StoreRefused`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum RefusalReason {
    /// The blob is not a well-formed blob (wrong version, bad length).
    Garbage = 1,
    /// The blob is larger than the tower's maximum.
    Oversize = 2,
    /// A different blob is already stored under this hint for this client.
    DuplicateHint = 3,
    /// The session's quota is used up.
    OverQuota = 4,
    /// The client has no session: send [`CreateSession`] first.
    UnknownSession = 5,
}

impl RefusalReason {
    /// The code on the wire.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The reason for a wire code, if known.
    pub fn from_code(code: u16) -> Option<RefusalReason> {
        Some(match code {
            1 => RefusalReason::Garbage,
            2 => RefusalReason::Oversize,
            3 => RefusalReason::DuplicateHint,
            4 => RefusalReason::OverQuota,
            5 => RefusalReason::UnknownSession,
            _ => return None,
        })
    }
}

/// One tower-protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TowerMessage {
    /// See [`CreateSession`].
    CreateSession(CreateSession),
    /// See [`SessionAck`].
    SessionAck(SessionAck),
    /// See [`StoreBlob`].
    StoreBlob(StoreBlob),
    /// See [`StoreAck`].
    StoreAck(StoreAck),
    /// See [`StoreRefused`].
    StoreRefused(StoreRefused),
}

/// Whether `msg_type` is one of this protocol's message types (so the transport can route
/// the message here).
pub fn is_tower_type(msg_type: u16) -> bool {
    matches!(
        msg_type,
        CREATE_SESSION_TYPE
            | SESSION_ACK_TYPE
            | STORE_BLOB_TYPE
            | STORE_ACK_TYPE
            | STORE_REFUSED_TYPE
    )
}

fn truncate_text(text: &str) -> &str {
    if text.len() <= MAX_REFUSAL_TEXT {
        return text;
    }
    let mut end = MAX_REFUSAL_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl TowerMessage {
    /// The message's type number.
    pub fn msg_type(&self) -> u16 {
        match self {
            TowerMessage::CreateSession(_) => CREATE_SESSION_TYPE,
            TowerMessage::SessionAck(_) => SESSION_ACK_TYPE,
            TowerMessage::StoreBlob(_) => STORE_BLOB_TYPE,
            TowerMessage::StoreAck(_) => STORE_ACK_TYPE,
            TowerMessage::StoreRefused(_) => STORE_REFUSED_TYPE,
        }
    }

    /// Encodes the message, type included. A blob longer than 65535 bytes (never produced by
    /// this crate: blobs are at most [`crate::blob::MAX_BLOB_LEN`]) is cut to fit; a refusal
    /// text is cut to [`MAX_REFUSAL_TEXT`] bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        out.extend_from_slice(&self.msg_type().to_be_bytes());
        match self {
            TowerMessage::CreateSession(m) => out.extend_from_slice(&m.quota.to_be_bytes()),
            TowerMessage::SessionAck(m) => {
                out.extend_from_slice(&m.quota.to_be_bytes());
                out.extend_from_slice(&m.stored.to_be_bytes());
            }
            TowerMessage::StoreBlob(m) => {
                out.extend_from_slice(m.hint.as_bytes());
                put_bytes16(&mut out, &m.blob);
            }
            TowerMessage::StoreAck(m) => out.extend_from_slice(m.hint.as_bytes()),
            TowerMessage::StoreRefused(m) => {
                out.extend_from_slice(m.hint.as_bytes());
                out.extend_from_slice(&m.reason_code.to_be_bytes());
                put_bytes16(&mut out, truncate_text(&m.text).as_bytes());
            }
        }
        out
    }

    /// Decodes a message, type included. Fails on an unknown type, a truncated payload or a
    /// refusal text that is not UTF-8; ignores trailing bytes. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<TowerMessage, DecodeError> {
        let mut r = Reader::new(bytes);
        let msg_type = r.u16("type")?;
        let msg = match msg_type {
            CREATE_SESSION_TYPE => TowerMessage::CreateSession(CreateSession {
                quota: r.u32("quota")?,
            }),
            SESSION_ACK_TYPE => TowerMessage::SessionAck(SessionAck {
                quota: r.u32("quota")?,
                stored: r.u32("stored")?,
            }),
            STORE_BLOB_TYPE => TowerMessage::StoreBlob(StoreBlob {
                hint: Hint(r.array::<HINT_LEN>("hint")?),
                blob: r.bytes16("blob")?.to_vec(),
            }),
            STORE_ACK_TYPE => TowerMessage::StoreAck(StoreAck {
                hint: Hint(r.array::<HINT_LEN>("hint")?),
            }),
            STORE_REFUSED_TYPE => {
                let hint = Hint(r.array::<HINT_LEN>("hint")?);
                let reason_code = r.u16("reason_code")?;
                let text = std::str::from_utf8(r.bytes16("text")?)
                    .map_err(|_| DecodeError::Invalid("refusal text is not UTF-8"))?
                    .to_owned();
                TowerMessage::StoreRefused(StoreRefused {
                    hint,
                    reason_code,
                    text,
                })
            }
            other => return Err(DecodeError::UnknownType(other)),
        };
        let _extension = r.remaining();
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hint() -> impl Strategy<Value = Hint> {
        any::<[u8; 16]>().prop_map(Hint)
    }

    fn message() -> impl Strategy<Value = TowerMessage> {
        prop_oneof![
            any::<u32>().prop_map(|quota| TowerMessage::CreateSession(CreateSession { quota })),
            (any::<u32>(), any::<u32>())
                .prop_map(|(quota, stored)| TowerMessage::SessionAck(SessionAck { quota, stored })),
            (hint(), proptest::collection::vec(any::<u8>(), 0..2048))
                .prop_map(|(hint, blob)| TowerMessage::StoreBlob(StoreBlob { hint, blob })),
            hint().prop_map(|hint| TowerMessage::StoreAck(StoreAck { hint })),
            (hint(), any::<u16>(), "\\PC{0,64}").prop_map(|(hint, reason_code, text)| {
                TowerMessage::StoreRefused(StoreRefused {
                    hint,
                    reason_code,
                    text,
                })
            }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(msg in message()) {
            let bytes = msg.encode();
            prop_assert!(is_tower_type(u16::from_be_bytes([bytes[0], bytes[1]])));
            prop_assert_eq!(TowerMessage::decode(&bytes)?, msg);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = TowerMessage::decode(&bytes);
        }

        #[test]
        fn tower_types_with_arbitrary_payload_never_panic(
            t in prop_oneof![
                Just(CREATE_SESSION_TYPE), Just(SESSION_ACK_TYPE), Just(STORE_BLOB_TYPE),
                Just(STORE_ACK_TYPE), Just(STORE_REFUSED_TYPE)
            ],
            payload in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut bytes = t.to_be_bytes().to_vec();
            bytes.extend_from_slice(&payload);
            if let Ok(msg) = TowerMessage::decode(&bytes) {
                prop_assert_eq!(msg.msg_type(), t);
            }
        }

        #[test]
        fn truncations_fail_cleanly(msg in message()) {
            let bytes = msg.encode();
            for cut in 0..bytes.len() {
                // Either an error or (for none of these layouts) a shorter valid message.
                prop_assert!(TowerMessage::decode(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn type_numbers_are_odd_and_custom() {
        for t in [
            CREATE_SESSION_TYPE,
            SESSION_ACK_TYPE,
            STORE_BLOB_TYPE,
            STORE_ACK_TYPE,
            STORE_REFUSED_TYPE,
        ] {
            assert!(t >= 32768 && t % 2 == 1);
        }
        assert_eq!(
            TowerMessage::decode(&[0x80, 0x00]),
            Err(DecodeError::UnknownType(32768))
        );
    }

    #[test]
    fn long_refusal_text_is_cut_at_a_char_boundary() {
        let msg = TowerMessage::StoreRefused(StoreRefused {
            hint: Hint([7; 16]),
            reason_code: RefusalReason::OverQuota.code(),
            text: "é".repeat(300),
        });
        let TowerMessage::StoreRefused(back) = TowerMessage::decode(&msg.encode()).unwrap() else {
            panic!("wrong type");
        };
        assert!(back.text.len() <= MAX_REFUSAL_TEXT);
        assert!(back.text.chars().all(|c| c == 'é'));
    }

    #[test]
    fn reason_codes_round_trip() {
        for code in 0..10u16 {
            if let Some(r) = RefusalReason::from_code(code) {
                assert_eq!(r.code(), code);
            }
        }
        assert_eq!(RefusalReason::from_code(99), None);
    }
}
