//! The checks a gossip message must pass that need no store state: the BOLT 3 funding
//! script an announcement's output must pay to, signature verification over a gossip
//! hash, the size bounds on what a peer can make us store, and the address-descriptor
//! layout of `node_announcement`. Also [`GossipError`], why a message was refused.
//!
//! Owns: those rules and their error reasons. Must never look at the store, do I/O or
//! panic on peer bytes.

use bitcoin::blockdata::opcodes::all::OP_CHECKMULTISIG;
use bitcoin::script::Builder;
use bitcoin::secp256k1::{ecdsa::Signature, Message, PublicKey, Secp256k1, Verification};
use bitcoin::ScriptBuf;
use fulmen_wire::scid::ShortChannelId;

/// Largest `features` field (channel or node) we store, bytes (512 feature bits).
pub const MAX_FEATURES_LEN: usize = 64;
/// Largest `addresses` field of a `node_announcement` we store, bytes (room for a dozen
/// Tor v3 addresses).
pub const MAX_ADDRESSES_LEN: usize = 512;
/// Largest run of unknown trailing bytes (future fields, covered by the signature) a
/// gossip message may carry for us to store and relay it.
pub const MAX_EXCESS_LEN: usize = 512;

/// Which signature of a message failed to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureRole {
    /// `channel_announcement.node_signature_1` (by `node_id_1`).
    Node1,
    /// `channel_announcement.node_signature_2` (by `node_id_2`).
    Node2,
    /// `channel_announcement.bitcoin_signature_1` (by `bitcoin_key_1`).
    Bitcoin1,
    /// `channel_announcement.bitcoin_signature_2` (by `bitcoin_key_2`).
    Bitcoin2,
    /// The single signature of a `channel_update` (by the node of its direction) or a
    /// `node_announcement` (by its node).
    Origin,
}

/// Why a gossip message was refused. [`GossipError::warn_peer`] tells whether the peer
/// that sent it should get a `warning` (it sent something no honest, validating relay
/// would); every other refusal is silently ignored, as BOLT 7 asks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipError {
    /// The message is for another chain.
    #[error("chain hash is not ours")]
    WrongChain,
    /// `node_id_1` is not strictly lower than `node_id_2`.
    #[error("node_id_1 is not lower than node_id_2")]
    NodeIdsNotOrdered,
    /// A signature does not verify.
    #[error("invalid {0:?} signature")]
    InvalidSignature(SignatureRole),
    /// The channel requires a feature we do not know (BOLT 7: do not route through it).
    #[error("unknown required channel feature bit {0}")]
    UnknownRequiredFeature(usize),
    /// A variable-length field is longer than we store.
    #[error("{field} is {len} bytes, more than the {max} we store")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// Our bound.
        max: usize,
    },
    /// The `node_announcement` address descriptors are truncated.
    #[error("address descriptors are truncated")]
    BadAddresses,
    /// We already hold this exact message (or the announcement of this channel).
    #[error("already known")]
    Duplicate,
    /// This channel's announcement is already waiting for its funding output.
    #[error("announcement already waiting for its funding output")]
    AlreadyPending,
    /// Too many announcements already wait for their funding output.
    #[error("{max} announcements already wait for their funding outputs")]
    PendingFull {
        /// The bound.
        max: usize,
    },
    /// The store holds as many channels as it may.
    #[error("the store holds its maximum of {max} channels")]
    TooManyChannels {
        /// The bound.
        max: usize,
    },
    /// One of the channel's nodes has as many channels as a node may have.
    #[error("node {node_id} already has {max} channels")]
    TooManyChannelsForNode {
        /// The node.
        node_id: PublicKey,
        /// The bound.
        max: usize,
    },
    /// The funding output is spent.
    #[error("funding output of {0} is spent")]
    FundingSpent(ShortChannelId),
    /// There is no such output on chain.
    #[error("no funding output at {0}")]
    FundingMissing(ShortChannelId),
    /// The output at the short channel id is not the P2WSH 2-of-2 of the bitcoin keys.
    #[error("output at {0} is not the 2-of-2 of the announced bitcoin keys")]
    FundingScriptMismatch(ShortChannelId),
    /// The `channel_update` / `node_announcement` is for a channel or node we do not know.
    #[error("unknown channel {0}")]
    UnknownChannel(ShortChannelId),
    /// A `node_announcement` for a node without a known channel.
    #[error("node {0} has no known channel")]
    UnknownNode(PublicKey),
    /// Not newer than what we hold.
    #[error("timestamp {got} is not newer than the {held} we hold")]
    Outdated {
        /// The timestamp held.
        held: u32,
        /// The message's timestamp.
        got: u32,
    },
    /// The timestamp is more than a day ahead of our clock.
    #[error("timestamp {timestamp} is too far in the future")]
    TooFarInFuture {
        /// The message's timestamp.
        timestamp: u32,
    },
    /// The `channel_update` is older than the two-week staleness limit.
    #[error("timestamp {timestamp} is older than two weeks")]
    TooOld {
        /// The message's timestamp.
        timestamp: u32,
    },
    /// `message_flags` bit 0 is clear: `htlc_maximum_msat` is required by BOLT 7.
    #[error("channel_update without htlc_maximum_msat")]
    MissingHtlcMaximum,
    /// `htlc_minimum_msat` > `htlc_maximum_msat`, or the maximum exceeds the capacity.
    #[error("htlc limits {min}..={max} msat do not fit the channel")]
    BadHtlcLimits {
        /// `htlc_minimum_msat`.
        min: u64,
        /// `htlc_maximum_msat`.
        max: u64,
    },
    /// `announcement_signatures` for another channel than the one being announced.
    #[error("announcement_signatures for another short channel id")]
    ShortChannelIdMismatch,
    /// Our node id is neither end of the announcement being combined.
    #[error("our node id is not an end of this channel")]
    NotOurChannel,
    /// A message that is not gossip was handed to the store.
    #[error("message type {0} is not gossip")]
    NotGossip(u16),
}

impl GossipError {
    /// Whether the peer that sent the message should be sent a `warning`: it relayed
    /// something no validating node would (bad signature, bad funding script, malformed
    /// fields). Other refusals (unknown, outdated, over our bounds) are silent.
    pub fn warn_peer(&self) -> bool {
        matches!(
            self,
            GossipError::InvalidSignature(_)
                | GossipError::NodeIdsNotOrdered
                | GossipError::BadAddresses
                | GossipError::FundingScriptMismatch(_)
                | GossipError::ShortChannelIdMismatch
        )
    }
}

/// The funding output's script_pubkey: P2WSH of `2 <k1> <k2> 2 OP_CHECKMULTISIG` with the
/// two keys sorted as compressed bytes (BOLT 3's funding script).
pub fn funding_script_pubkey(bitcoin_key_1: &PublicKey, bitcoin_key_2: &PublicKey) -> ScriptBuf {
    let (a, b) = if bitcoin_key_1.serialize() <= bitcoin_key_2.serialize() {
        (bitcoin_key_1, bitcoin_key_2)
    } else {
        (bitcoin_key_2, bitcoin_key_1)
    };
    let witness_script = Builder::new()
        .push_int(2)
        .push_key(&bitcoin::PublicKey::new(*a))
        .push_key(&bitcoin::PublicKey::new(*b))
        .push_int(2)
        .push_opcode(OP_CHECKMULTISIG)
        .into_script();
    ScriptBuf::new_p2wsh(&witness_script.wscript_hash())
}

/// Does `sig` sign the gossip hash `hash` with `key`?
pub(crate) fn verify<C: Verification>(
    secp: &Secp256k1<C>,
    hash: [u8; 32],
    sig: &Signature,
    key: &PublicKey,
) -> bool {
    secp.verify_ecdsa(&Message::from_digest(hash), sig, key)
        .is_ok()
}

/// Refuses a field longer than `max`.
pub(crate) fn bounded(field: &'static str, len: usize, max: usize) -> Result<(), GossipError> {
    if len > max {
        Err(GossipError::FieldTooLong { field, len, max })
    } else {
        Ok(())
    }
}

/// Checks the BOLT 7 address descriptors: known types (1 IPv4, 2 IPv6, 3 Tor v2, 4 Tor v3,
/// 5 DNS hostname) must be complete; parsing stops at the first unknown type, whose bytes
/// are kept as they are (BOLT 7: ignore what follows an unknown type).
pub(crate) fn check_addresses(mut b: &[u8]) -> Result<(), GossipError> {
    while let Some((&ty, rest)) = b.split_first() {
        let len = match ty {
            1 => 4 + 2,
            2 => 16 + 2,
            3 => 10 + 2,
            4 => 35 + 2,
            5 => 1 + usize::from(*rest.first().ok_or(GossipError::BadAddresses)?) + 2,
            _ => return Ok(()),
        };
        b = rest.get(len..).ok_or(GossipError::BadAddresses)?;
    }
    Ok(())
}
