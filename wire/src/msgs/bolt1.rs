//! BOLT 1 setup and control messages: `init`, `error`, `warning`, `ping`, `pong`.
//!
//! Owns: their layouts. Must never do I/O or panic on peer bytes.

use crate::codec::LenBytes;
use crate::features::Features;

/// A 32-byte channel id (all zeros means "all channels" in `error`/`warning`).
pub type ChannelId = [u8; 32];

wire_message! {
    /// `init` (16): first message on a connection, advertising features.
    Init = 16 {
        /// Legacy global features (readers OR them into `features`).
        global_features: Features,
        /// Connection features.
        features: Features,
    }
    tlvs {
        /// `networks`: chain hashes the sender is interested in.
        1 => networks: Vec<[u8; 32]>,
        /// `remote_addr`: the address the sender sees us at (raw address descriptor).
        3 => remote_addr: Vec<u8>,
    }
}

impl Init {
    /// The effective feature set: `global_features | features` (BOLT 1).
    pub fn combined_features(&self) -> Features {
        self.features.or(&self.global_features)
    }
}

wire_message! {
    /// `error` (17): the sender is failing the channel (or all channels if id is zero).
    Error = 17 {
        /// Affected channel, or all zeros for all.
        channel_id: ChannelId,
        /// Diagnostic data (usually ASCII text).
        data: LenBytes,
    }
    tlvs {}
}

wire_message! {
    /// `warning` (1): a complaint that does not fail channels.
    Warning = 1 {
        /// Affected channel, or all zeros for all.
        channel_id: ChannelId,
        /// Diagnostic data (usually ASCII text).
        data: LenBytes,
    }
    tlvs {}
}

wire_message! {
    /// `ping` (18): keepalive; asks for `num_pong_bytes` bytes back.
    Ping = 18 {
        /// Size of the `pong` ignored bytes requested (>= 65532 means "no pong").
        num_pong_bytes: u16,
        /// Padding, ignored.
        ignored: LenBytes,
    }
    tlvs {}
}

wire_message! {
    /// `pong` (19): reply to `ping`.
    Pong = 19 {
        /// Padding of the requested length, ignored.
        ignored: LenBytes,
    }
    tlvs {}
}

impl Warning {
    /// A warning with a text reason.
    pub fn text(channel_id: ChannelId, reason: &str) -> Self {
        Warning {
            channel_id,
            data: LenBytes(reason.as_bytes().iter().take(1024).copied().collect()),
            extra_tlvs: Default::default(),
        }
    }
}

impl Error {
    /// An error with a text reason.
    pub fn text(channel_id: ChannelId, reason: &str) -> Self {
        Error {
            channel_id,
            data: LenBytes(reason.as_bytes().iter().take(1024).copied().collect()),
            extra_tlvs: Default::default(),
        }
    }
}
