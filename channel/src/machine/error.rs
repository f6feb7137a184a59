//! The state machine's error type: who is to blame for a refused input — the peer
//! ([`ChannelError::Protocol`]), ourselves ([`ChannelError::Internal`]) or the caller
//! ([`ChannelError::Command`]) — plus unreplayable records and a closed channel.
//!
//! Must never: carry secrets in its text.

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The peer broke the protocol (or sent an `error`). Returned by
    /// [`super::Channel::handle_message`] (and by [`super::Channel::handle_funding_confirmed`]
    /// for an acceptor whose opener named an output that is not the funding): the channel
    /// has failed (see [`super::CloseReason`] for what was queued and broadcast).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// Our own failure: building or signing a transaction, deriving a key, a commitment
    /// number exhausted, state that does not hold together. From a command or a chain
    /// input nothing changed; from [`super::Channel::handle_message`] the channel has
    /// failed (the peer waits for an answer we cannot give), with
    /// [`super::CloseReason::Internal`].
    #[error("internal failure: {0}")]
    Internal(String),
    /// A caller command (or a call out of order) was refused; nothing changed.
    #[error("command refused: {0}")]
    Command(String),
    /// Records given to [`super::Channel::restore`] do not replay.
    #[error("records do not replay: {0}")]
    Records(String),
    /// The channel is closed: no further input is accepted.
    #[error("channel is closed")]
    Closed,
}

/// Shorthand for [`ChannelError::Internal`] with the text of `e`.
pub(crate) fn internal(e: impl std::fmt::Display) -> ChannelError {
    ChannelError::Internal(e.to_string())
}
