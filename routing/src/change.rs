//! [`GraphChange`]: what validated gossip (or the node's own channels) tells the routing
//! graph, and the per-direction [`DirectedPolicy`] it carries.
//!
//! Owns: the contract between the gossip store (which checks signatures and the chain) and
//! the graph (which only stores and searches). Must never hold unvalidated peer data: a
//! change is built only after its message passed every check.

use bitcoin::secp256k1::PublicKey;
use fulmen_wire::scid::ShortChannelId;

/// A direction of a channel, as bit 0 of a `channel_update`'s `channel_flags`:
/// `FromNode1` is the policy node 1 (the lesser node id) charges to forward toward node 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelDirection {
    /// From `node_id_1` toward `node_id_2` (`channel_flags` bit 0 clear).
    FromNode1,
    /// From `node_id_2` toward `node_id_1` (`channel_flags` bit 0 set).
    FromNode2,
}

impl ChannelDirection {
    /// The direction named by a `channel_update`'s `channel_flags`.
    pub fn from_channel_flags(flags: u8) -> ChannelDirection {
        if flags & 1 == 0 {
            ChannelDirection::FromNode1
        } else {
            ChannelDirection::FromNode2
        }
    }

    /// The other direction.
    pub fn reverse(self) -> ChannelDirection {
        match self {
            ChannelDirection::FromNode1 => ChannelDirection::FromNode2,
            ChannelDirection::FromNode2 => ChannelDirection::FromNode1,
        }
    }
}

/// What one side of a channel charges and accepts to forward over it (a validated
/// `channel_update`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectedPolicy {
    /// Base fee, msat.
    pub fee_base_msat: u32,
    /// Proportional fee, millionths of the forwarded amount.
    pub fee_proportional_millionths: u32,
    /// CLTV delta this hop requires between incoming and outgoing expiry.
    pub cltv_expiry_delta: u16,
    /// Smallest HTLC forwarded, msat.
    pub htlc_minimum_msat: u64,
    /// Largest HTLC forwarded, msat.
    pub htlc_maximum_msat: u64,
    /// False when the `channel_update` set the disable bit.
    pub enabled: bool,
    /// The `channel_update` timestamp (unix seconds) this policy came from.
    pub timestamp: u32,
}

/// One change to the routing graph, produced only from validated gossip or from the
/// node's own channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphChange {
    /// A channel whose announcement (or, for our own channels, funding) was verified.
    /// `node_1` is the lesser node id.
    ChannelAdded {
        /// Where the funding output is.
        short_channel_id: ShortChannelId,
        /// The lesser node id.
        node_1: PublicKey,
        /// The greater node id.
        node_2: PublicKey,
        /// The funding output's value, sat.
        capacity_sat: u64,
    },
    /// A newer policy for one direction of a known channel.
    PolicyUpdated {
        /// The channel.
        short_channel_id: ShortChannelId,
        /// Which side's policy.
        direction: ChannelDirection,
        /// The policy.
        policy: DirectedPolicy,
    },
    /// The channel is gone (funding spent, or both updates stale).
    ChannelRemoved {
        /// The channel.
        short_channel_id: ShortChannelId,
    },
    /// A node's newer `node_announcement`.
    NodeAnnounced {
        /// The node.
        node_id: PublicKey,
        /// Its alias (UTF-8, zero padded).
        alias: [u8; 32],
        /// The announcement's timestamp.
        timestamp: u32,
    },
}
