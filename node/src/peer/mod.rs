//! Peer connections (tokio): listener and dialer over TCP with `TCP_NODELAY`, the Noise
//! handshake from `fulmen-wire` under a timeout, the BOLT 1 `init` exchange with feature
//! negotiation, ping/pong keepalive with a pong timeout, per-peer limits (inbound message
//! size, messages per second, outbound buffered bytes), disconnects that tell the peer why
//! (a `warning`, or an `error` for incompatible features), and reconnect with backoff.
//!
//! Owns: sockets and timers for one peer at a time. Must never: interpret channel or
//! gossip messages (they are handed to the caller as [`PeerEvent::Messages`]), block the
//! runtime, or buffer without bound (the Noise receiver holds at most one frame, the event
//! queue is bounded, outbound bytes are capped by [`PeerConfig::max_buffered_bytes`]).

mod backoff;
mod conn;
#[cfg(test)]
pub(crate) mod tests;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use fulmen_wire::msgs::{Init, Warning};
use fulmen_wire::transport::{NoiseIdentity, TransportError};
use fulmen_wire::{Features, Message};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use backoff::{connect_with_backoff, Backoff};

/// Per-peer settings.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Time allowed for TCP connect + Noise handshake + `init` exchange.
    pub handshake_timeout: Duration,
    /// How often we send `ping`.
    pub ping_interval: Duration,
    /// How long we wait for the matching `pong` before disconnecting.
    pub pong_timeout: Duration,
    /// Largest inbound message accepted (≤ 65535); larger frames are refused from their
    /// header, before the body is read.
    pub max_message_len: usize,
    /// Inbound messages per second read (token bucket, burst of the same size): a faster
    /// peer is read at this rate.
    pub max_msgs_per_sec: u32,
    /// A peer that keeps the bucket empty this long without a pause is flooding and is
    /// disconnected ([`DisconnectReason::RateLimited`]).
    pub max_throttled: Duration,
    /// Cap on encoded outbound bytes queued but not yet written to the socket. A peer that
    /// stops reading hits it and is disconnected.
    pub max_buffered_bytes: usize,
    /// Features we advertise in `init`.
    pub features: Features,
    /// Our chain, sent in `init`'s `networks`; a peer whose `networks` excludes it is
    /// refused.
    pub chain_hash: Option<[u8; 32]>,
    /// Capacity of the inbound event queue, in events of at most
    /// [`MAX_MESSAGES_PER_EVENT`] messages each (reading pauses when the caller lags).
    pub event_queue: usize,
    /// Whether we answer `ping` (always true in production; tests turn it off to
    /// exercise the pong timeout).
    pub answer_pings: bool,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(10),
            max_message_len: fulmen_wire::transport::MAX_BODY_LEN,
            max_msgs_per_sec: 2000,
            max_throttled: Duration::from_secs(60),
            max_buffered_bytes: 4 << 20,
            features: Features::ours(),
            chain_hash: None,
            // 64 events of at most 16 messages: 1,024 messages, as when an event was one.
            event_queue: 64,
            answer_pings: true,
        }
    }
}

/// Why a connection ended (or could not be set up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectReason {
    /// Socket error.
    #[error("i/o error: {0}")]
    Io(String),
    /// Noise failure (bad MAC, wrong node id, oversize or truncated frame...).
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// Connect + handshake + `init` did not finish in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The peer sent something the protocol forbids; we sent a `warning` saying so.
    #[error("protocol violation: {0}")]
    ProtocolViolation(String),
    /// Feature negotiation failed; we sent an `error` saying so.
    #[error("incompatible peer: {0}")]
    Incompatible(String),
    /// No `pong` within the timeout.
    #[error("no pong within {0:?}")]
    PongTimeout(Duration),
    /// The peer sent more messages per second than allowed.
    #[error("rate limit of {0} messages/s exceeded")]
    RateLimited(u32),
    /// Too many outbound bytes queued: the peer is not reading.
    #[error("outbound buffer over {0} bytes")]
    SendBufferFull(usize),
    /// The peer closed the connection.
    #[error("peer closed the connection")]
    RemoteClosed,
    /// We closed it (the caller asked, or dropped the [`Peer`]).
    #[error("closed locally: {0}")]
    Local(String),
}

/// Most messages of one [`PeerEvent::Messages`]: a read that brings more (a gossip sync) is
/// handed on in pieces, so the event queue bounds the messages it holds.
pub const MAX_MESSAGES_PER_EVENT: usize = 16;

/// What a connected peer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// The messages of one read from the socket, in order, for the caller (everything but
    /// `init`, `ping`, `pong` and unknown odd types, which the peer layer handles itself).
    /// Never empty, at most [`MAX_MESSAGES_PER_EVENT`]; messages the peer sent in one write
    /// usually arrive in one event.
    Messages(Vec<Message>),
    /// The connection is gone; no more events follow.
    Disconnected(DisconnectReason),
}

/// Counters for one connection.
#[derive(Debug, Default)]
pub struct PeerStats {
    /// Pings we sent.
    pub pings_sent: AtomicU64,
    /// Pongs we received that matched a ping.
    pub pongs_received: AtomicU64,
    /// Pings we answered.
    pub pings_answered: AtomicU64,
    /// Messages received (all types).
    pub messages_in: AtomicU64,
    /// Messages written to the socket (all types).
    pub messages_out: AtomicU64,
    /// Round-trip time of the last ping, in microseconds.
    pub last_rtt_micros: AtomicU64,
}

/// Frames for the writer task.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// An encoded message.
    Msg(Vec<u8>),
    /// Encoded messages written together (one socket write when they fit).
    Msgs(Vec<Vec<u8>>),
    /// Flush what is queued, then close the socket.
    Close,
}

/// A cloneable handle that queues messages to a peer.
#[derive(Debug, Clone)]
pub struct PeerSender {
    tx: mpsc::UnboundedSender<Outbound>,
    queued: Arc<AtomicUsize>,
    max_buffered: usize,
}

impl PeerSender {
    /// Queues a message. Fails if it is too large, the connection is gone, or the
    /// outbound buffer limit is hit (the connection is then closed with a warning).
    pub fn send(&self, msg: &Message) -> Result<(), DisconnectReason> {
        self.send_encoded(msg.encode())
    }

    /// Queues messages to go out together: the writer puts them in one socket write (when
    /// they fit in one), so the peer reads them in one piece — an `update_add_htlc` and the
    /// `commitment_signed` that covers it reach the peer's node task in the same turn
    /// instead of the add waking it alone (a turn and a durable write more on the path).
    /// Fails as [`PeerSender::send`] does; then none is queued.
    pub fn send_all(&self, msgs: &[Message]) -> Result<(), DisconnectReason> {
        self.enqueue(msgs.iter().map(Message::encode).collect())
    }

    /// Queues an already encoded message (type + payload).
    pub fn send_encoded(&self, bytes: Vec<u8>) -> Result<(), DisconnectReason> {
        self.enqueue(vec![bytes])
    }

    /// Queues encoded messages as one piece for the writer, all or none: refused if one is
    /// too large; the connection is closed if they would pass the outbound buffer limit.
    fn enqueue(&self, encoded: Vec<Vec<u8>>) -> Result<(), DisconnectReason> {
        if let Some(big) = encoded
            .iter()
            .find(|b| b.len() > fulmen_wire::transport::MAX_BODY_LEN)
        {
            return Err(TransportError::MessageTooLarge(big.len()).into());
        }
        let n = encoded.iter().map(Vec::len).sum();
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        if before + n > self.max_buffered {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.disconnect("outbound buffer full: peer is not reading");
            return Err(DisconnectReason::SendBufferFull(self.max_buffered));
        }
        let out = match <[Vec<u8>; 1]>::try_from(encoded) {
            Ok([one]) => Outbound::Msg(one),
            Err(many) => Outbound::Msgs(many),
        };
        self.tx
            .send(out)
            .map_err(|_| DisconnectReason::Local("connection closed".into()))
    }

    /// Sends a `warning` with `reason`, then closes the connection.
    pub fn disconnect(&self, reason: &str) {
        let w = Warning::text([0; 32], reason);
        let _ = self.tx.send(Outbound::Msg(Message::Warning(w).encode()));
        let _ = self.tx.send(Outbound::Close);
    }

    /// Bytes queued and not yet written.
    pub fn buffered_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

/// A connected, initialised peer.
#[derive(Debug)]
pub struct Peer {
    /// The node id the peer proved in the handshake.
    pub remote_node_id: PublicKey,
    /// The socket address of the other end.
    pub remote_addr: SocketAddr,
    /// The peer's `init`.
    pub remote_init: Init,
    /// Features both sides support (odd form).
    pub negotiated: Features,
    sender: PeerSender,
    events: mpsc::Receiver<PeerEvent>,
    stats: Arc<PeerStats>,
    tasks: Vec<JoinHandle<()>>,
}

impl Peer {
    /// Next event; `None` after [`PeerEvent::Disconnected`] has been delivered.
    pub async fn recv(&mut self) -> Option<PeerEvent> {
        self.events.recv().await
    }

    /// A handle for sending from other tasks.
    pub fn sender(&self) -> PeerSender {
        self.sender.clone()
    }

    /// Queues a message (see [`PeerSender::send`]).
    pub fn send(&self, msg: &Message) -> Result<(), DisconnectReason> {
        self.sender.send(msg)
    }

    /// Connection counters.
    pub fn stats(&self) -> &PeerStats {
        &self.stats
    }

    /// Sends a `warning` with `reason`, closes, and waits for the connection tasks.
    pub async fn close(mut self, reason: &str) {
        self.sender.disconnect(reason);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Dials `node_id` at `addr` and completes handshake and `init`.
pub async fn connect(
    identity: Arc<NoiseIdentity>,
    node_id: PublicKey,
    addr: SocketAddr,
    cfg: PeerConfig,
) -> Result<Peer, DisconnectReason> {
    let deadline = tokio::time::Instant::now() + cfg.handshake_timeout;
    let stream = tokio::time::timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| DisconnectReason::HandshakeTimeout)?
        .map_err(|e| DisconnectReason::Io(e.to_string()))?;
    conn::setup(stream, identity, Some(node_id), cfg, deadline).await
}

/// Completes handshake and `init` on an accepted TCP stream.
pub async fn accept_stream(
    stream: TcpStream,
    identity: Arc<NoiseIdentity>,
    cfg: PeerConfig,
) -> Result<Peer, DisconnectReason> {
    let deadline = tokio::time::Instant::now() + cfg.handshake_timeout;
    conn::setup(stream, identity, None, cfg, deadline).await
}

/// A TCP listener for inbound peers.
#[derive(Debug)]
pub struct PeerListener {
    inner: TcpListener,
    identity: Arc<NoiseIdentity>,
    cfg: PeerConfig,
}

impl PeerListener {
    /// Binds `addr` (use port 0 for an ephemeral port).
    pub async fn bind(
        addr: SocketAddr,
        identity: Arc<NoiseIdentity>,
        cfg: PeerConfig,
    ) -> std::io::Result<Self> {
        Ok(PeerListener {
            inner: TcpListener::bind(addr).await?,
            identity,
            cfg,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Accepts one TCP connection (cheap; do the handshake with [`accept_stream`] in a
    /// spawned task so one slow peer does not hold up others).
    pub async fn accept_tcp(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        self.inner.accept().await
    }

    /// Accepts one connection and completes its handshake and `init` in place.
    pub async fn accept(&self) -> Result<Peer, DisconnectReason> {
        let (stream, _) = self
            .accept_tcp()
            .await
            .map_err(|e| DisconnectReason::Io(e.to_string()))?;
        accept_stream(stream, self.identity.clone(), self.cfg.clone()).await
    }
}

/// A peer address `<node_id hex>@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddress {
    /// The node id to expect.
    pub node_id: PublicKey,
    /// `host:port`.
    pub host_port: String,
}

impl FromStr for PeerAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (id, hp) = s
            .split_once('@')
            .ok_or_else(|| format!("expected <node_id>@host:port, got {s:?}"))?;
        let node_id = PublicKey::from_str(id).map_err(|e| format!("bad node id {id:?}: {e}"))?;
        if !hp.contains(':') {
            return Err(format!("missing port in {hp:?}"));
        }
        Ok(PeerAddress {
            node_id,
            host_port: hp.to_string(),
        })
    }
}

impl std::fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.node_id, self.host_port)
    }
}
