//! The state machine's error type.
//!
//! Must never: carry secrets in its text.

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The peer broke the protocol: the channel fails (an `error` goes out and the latest
    /// commitment is handed over for broadcast).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A caller command was refused; nothing changed.
    #[error("command refused: {0}")]
    Command(String),
    /// Records given to [`super::Channel::restore`] do not replay.
    #[error("records do not replay: {0}")]
    Records(String),
    /// The channel is closed: no further input is accepted.
    #[error("channel is closed")]
    Closed,
}
