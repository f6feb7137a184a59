//! All BOLT 1/2/7 messages and the [`Message`] enum: `u16` type, payload, extension.
//!
//! Owns: dispatch on the type number, the unknown-type rule (odd: ignorable
//! [`Message::Unknown`], even: [`DecodeError::UnknownEvenMessage`]). Must never do I/O or
//! panic on peer bytes.

#[macro_use]
mod macros;
pub mod bolt1;
pub mod bolt2;
pub mod bolt7;

pub use bolt1::*;
pub use bolt2::*;
pub use bolt7::*;

use crate::codec::{DecodeError, Reader};

/// Largest encoded message (type + payload), bounded by the transport's 2-byte length.
pub const MAX_MESSAGE_LEN: usize = 65535;

macro_rules! message_enum {
    ($( $(#[$m:meta])* $v:ident($t:ty) ),* $(,)?) => {
        /// Any message this implementation understands, or an unknown odd one.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Message {
            $( $(#[$m])* $v($t), )*
            /// A message with an unknown odd type: must be ignored by the receiver.
            Unknown {
                /// Its type (always odd).
                msg_type: u16,
                /// Its raw payload.
                payload: Vec<u8>,
            },
        }

        impl Message {
            /// The BOLT type number.
            pub fn msg_type(&self) -> u16 {
                match self {
                    $( Message::$v(_) => <$t>::TYPE, )*
                    Message::Unknown { msg_type, .. } => *msg_type,
                }
            }

            /// Encodes type + payload + extension.
            pub fn encode(&self) -> Vec<u8> {
                let mut w = Vec::with_capacity(64);
                w.extend_from_slice(&self.msg_type().to_be_bytes());
                match self {
                    $( Message::$v(m) => m.encode_payload(&mut w), )*
                    Message::Unknown { payload, .. } => w.extend_from_slice(payload),
                }
                w
            }

            /// Decodes one whole message. Unknown odd types give [`Message::Unknown`];
            /// unknown even types are an error (the peer must be disconnected).
            pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
                let mut r = Reader::new(bytes);
                let ty = r.u16().map_err(|_| DecodeError::MissingType)?;
                Ok(match ty {
                    $( x if x == <$t>::TYPE => Message::$v(<$t>::decode_payload(&mut r)?), )*
                    x if x % 2 == 1 => Message::Unknown { msg_type: x, payload: r.rest().to_vec() },
                    x => return Err(DecodeError::UnknownEvenMessage(x)),
                })
            }
        }
    };
}

message_enum! {
    /// `warning` (1).
    Warning(Warning),
    /// `init` (16).
    Init(Init),
    /// `error` (17).
    Error(Error),
    /// `ping` (18).
    Ping(Ping),
    /// `pong` (19).
    Pong(Pong),
    /// `open_channel` (32).
    OpenChannel(OpenChannel),
    /// `accept_channel` (33).
    AcceptChannel(AcceptChannel),
    /// `funding_created` (34).
    FundingCreated(FundingCreated),
    /// `funding_signed` (35).
    FundingSigned(FundingSigned),
    /// `channel_ready` (36).
    ChannelReady(ChannelReady),
    /// `shutdown` (38).
    Shutdown(Shutdown),
    /// `closing_signed` (39).
    ClosingSigned(ClosingSigned),
    /// `update_add_htlc` (128).
    UpdateAddHtlc(UpdateAddHtlc),
    /// `update_fulfill_htlc` (130).
    UpdateFulfillHtlc(UpdateFulfillHtlc),
    /// `update_fail_htlc` (131).
    UpdateFailHtlc(UpdateFailHtlc),
    /// `commitment_signed` (132).
    CommitmentSigned(CommitmentSigned),
    /// `revoke_and_ack` (133).
    RevokeAndAck(RevokeAndAck),
    /// `update_fee` (134).
    UpdateFee(UpdateFee),
    /// `update_fail_malformed_htlc` (135).
    UpdateFailMalformedHtlc(UpdateFailMalformedHtlc),
    /// `channel_reestablish` (136).
    ChannelReestablish(ChannelReestablish),
    /// `channel_announcement` (256).
    ChannelAnnouncement(ChannelAnnouncement),
    /// `node_announcement` (257).
    NodeAnnouncement(NodeAnnouncement),
    /// `channel_update` (258).
    ChannelUpdate(ChannelUpdate),
    /// `announcement_signatures` (259).
    AnnouncementSignatures(AnnouncementSignatures),
    /// `gossip_timestamp_filter` (265).
    GossipTimestampFilter(GossipTimestampFilter),
}
