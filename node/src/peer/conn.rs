//! One connection's life: Noise handshake and `init` under a deadline, then a reader task
//! (decrypt, decode, limits, ping/pong) and a writer task (encrypt, batch, write).
//!
//! Owns: the socket halves and the Noise halves. Must never block on the caller: inbound
//! events go through a bounded queue (reading pauses when it is full) and outbound
//! messages are capped by bytes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use fulmen_wire::codec::LenBytes;
use fulmen_wire::msgs::{Error as ErrorMsg, Init, Ping, Pong, Warning};
use fulmen_wire::transport::{
    NoiseIdentity, NoiseReceiver, NoiseSender, NoiseSession, TransportError, TransportEvent,
};
use fulmen_wire::{DecodeError, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{DisconnectReason, Outbound, Peer, PeerConfig, PeerEvent, PeerSender, PeerStats};

const READ_CHUNK: usize = 64 * 1024;

fn io_err(e: std::io::Error) -> DisconnectReason {
    DisconnectReason::Io(e.to_string())
}

/// Handshake, `init`, then spawn the connection tasks.
pub(super) async fn setup(
    mut stream: TcpStream,
    identity: Arc<NoiseIdentity>,
    expected: Option<PublicKey>,
    cfg: PeerConfig,
    deadline: Instant,
) -> Result<Peer, DisconnectReason> {
    stream.set_nodelay(true).map_err(io_err)?;
    let remote_addr = stream.peer_addr().map_err(io_err)?;
    let fut = handshake_and_init(&mut stream, &identity, expected, &cfg);
    let (session, remote_init, negotiated, early) =
        match tokio::time::timeout_at(deadline, fut).await {
            Ok(r) => r?,
            Err(_) => {
                tracing::debug!(%remote_addr, "handshake timed out");
                return Err(DisconnectReason::HandshakeTimeout);
            }
        };
    let remote_node_id = session
        .remote_node_id()
        .ok_or(DisconnectReason::Transport(TransportError::NotReady))?;
    let (send_half, mut recv_half) = session.into_split()?;
    recv_half.set_max_inbound_body(cfg.max_message_len);
    let (rd, wr) = stream.into_split();

    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::channel(cfg.event_queue.max(1));
    let (wdead_tx, wdead_rx) = oneshot::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let stats = Arc::new(PeerStats::default());
    let sender = PeerSender {
        tx: out_tx,
        queued: queued.clone(),
        max_buffered: cfg.max_buffered_bytes,
    };
    let writer = tokio::spawn(writer_task(
        wr,
        send_half,
        out_rx,
        queued,
        stats.clone(),
        wdead_tx,
    ));
    let reader = Reader {
        rd,
        recv: recv_half,
        out: sender.clone(),
        events: ev_tx,
        stats: stats.clone(),
        cfg: cfg.clone(),
        tokens: f64::from(cfg.max_msgs_per_sec),
        last_refill: Instant::now(),
        throttled_since: None,
        awaiting_pong: None,
        batch: Vec::new(),
    };
    let reader = tokio::spawn(reader.run(early, wdead_rx));
    tracing::info!(%remote_node_id, %remote_addr, "peer connected");
    Ok(Peer {
        remote_node_id,
        remote_addr,
        remote_init,
        negotiated,
        sender,
        events: ev_rx,
        stats,
        tasks: vec![reader, writer],
    })
}

type Setup = (NoiseSession, Init, fulmen_wire::Features, Vec<Vec<u8>>);

async fn handshake_and_init(
    stream: &mut TcpStream,
    identity: &NoiseIdentity,
    expected: Option<PublicKey>,
    cfg: &PeerConfig,
) -> Result<Setup, DisconnectReason> {
    let entropy: [u8; 32] = rand::random();
    let mut session = match expected {
        Some(node_id) => {
            let (s, act1) = NoiseSession::initiator(identity, node_id, entropy)?;
            stream.write_all(&act1).await.map_err(io_err)?;
            s
        }
        None => NoiseSession::responder(identity, entropy)?,
    };
    let mut buf = vec![0u8; 4096];
    let mut messages: Vec<Vec<u8>> = Vec::new();
    let mut sent_init = false;
    loop {
        let n = stream.read(&mut buf).await.map_err(io_err)?;
        if n == 0 {
            session.finish()?;
            return Err(DisconnectReason::RemoteClosed);
        }
        for ev in session.feed(&buf[..n])? {
            match ev {
                TransportEvent::Send(b) => stream.write_all(&b).await.map_err(io_err)?,
                TransportEvent::Connected { remote_node_id } => {
                    tracing::debug!(%remote_node_id, "noise handshake complete");
                }
                TransportEvent::Message(m) => messages.push(m),
            }
        }
        if session.is_ready() && !sent_init {
            let init = Init {
                global_features: fulmen_wire::Features::empty(),
                features: cfg.features.clone(),
                networks: cfg.chain_hash.map(|h| vec![h]),
                remote_addr: None,
                extra_tlvs: Default::default(),
            };
            let frame = session.encrypt(&Message::Init(init).encode())?;
            stream.write_all(&frame).await.map_err(io_err)?;
            sent_init = true;
        }
        if !messages.is_empty() {
            break;
        }
    }
    // The first message must be `init`.
    let first = messages.remove(0);
    let init = match Message::decode(&first) {
        Ok(Message::Init(i)) => i,
        Ok(other) => {
            let why = format!("first message must be init, got type {}", other.msg_type());
            return Err(fail_setup(stream, &mut session, &why, false).await);
        }
        Err(e) => {
            let why = format!("malformed init: {e}");
            return Err(fail_setup(stream, &mut session, &why, false).await);
        }
    };
    let negotiated = match cfg.features.negotiate(&init.combined_features()) {
        Ok(f) => f,
        Err(e) => {
            let why = format!("incompatible features: {e}");
            return Err(fail_setup(stream, &mut session, &why, true).await);
        }
    };
    if let (Some(ours), Some(theirs)) = (cfg.chain_hash, init.networks.as_ref()) {
        if !theirs.contains(&ours) {
            let why = "no common network".to_string();
            return Err(fail_setup(stream, &mut session, &why, true).await);
        }
    }
    Ok((session, init, negotiated, messages))
}

/// Tells the peer why (best effort) and returns the matching reason.
async fn fail_setup(
    stream: &mut TcpStream,
    session: &mut NoiseSession,
    why: &str,
    incompatible: bool,
) -> DisconnectReason {
    tracing::warn!(reason = why, "refusing peer during init");
    let msg = if incompatible {
        Message::Error(ErrorMsg::text([0; 32], why))
    } else {
        Message::Warning(Warning::text([0; 32], why))
    };
    if let Ok(frame) = session.encrypt(&msg.encode()) {
        let _ = stream.write_all(&frame).await;
        let _ = stream.shutdown().await;
    }
    if incompatible {
        DisconnectReason::Incompatible(why.to_string())
    } else {
        DisconnectReason::ProtocolViolation(why.to_string())
    }
}

async fn writer_task(
    mut wr: OwnedWriteHalf,
    mut send: NoiseSender,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    queued: Arc<AtomicUsize>,
    stats: Arc<PeerStats>,
    dead: oneshot::Sender<DisconnectReason>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let reason = 'outer: loop {
        let Some(first) = rx.recv().await else {
            break DisconnectReason::Local("peer handle dropped".into());
        };
        let mut next = Some(first);
        let mut close = false;
        // Batch whatever is already queued, up to ~64 KiB, into one write.
        // Encrypts one message into `buf` and counts it out of the queue.
        let mut put = |m: &[u8], buf: &mut Vec<u8>| {
            send.encrypt_into(m, buf)?;
            queued.fetch_sub(m.len(), Ordering::AcqRel);
            stats.messages_out.fetch_add(1, Ordering::Relaxed);
            Ok::<(), TransportError>(())
        };
        while let Some(item) = next.take() {
            match item {
                Outbound::Msg(m) => {
                    if let Err(e) = put(&m, &mut buf) {
                        break 'outer DisconnectReason::Transport(e);
                    }
                }
                Outbound::Msgs(ms) => {
                    for m in ms {
                        if let Err(e) = put(&m, &mut buf) {
                            break 'outer DisconnectReason::Transport(e);
                        }
                        // A long group (a gossip sync) goes out in ~64 KiB writes, so the
                        // encrypted copy never holds more than that.
                        if buf.len() >= READ_CHUNK {
                            if let Err(e) = wr.write_all(&buf).await {
                                break 'outer io_err(e);
                            }
                            buf.clear();
                        }
                    }
                }
                Outbound::Close => {
                    close = true;
                    break;
                }
            }
            if buf.len() < READ_CHUNK {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = wr.write_all(&buf).await {
            break io_err(e);
        }
        buf.clear();
        if close {
            let _ = wr.shutdown().await;
            break DisconnectReason::Local("closed".into());
        }
    };
    let _ = dead.send(reason);
}

struct Reader {
    rd: OwnedReadHalf,
    recv: NoiseReceiver,
    out: PeerSender,
    events: mpsc::Sender<PeerEvent>,
    stats: Arc<PeerStats>,
    cfg: PeerConfig,
    tokens: f64,
    last_refill: Instant,
    /// Since when every message had to wait for a token (cleared by one that did not).
    throttled_since: Option<Instant>,
    /// When the outstanding ping was sent.
    awaiting_pong: Option<Instant>,
    /// The current read's messages for the caller, handed on together once it is decoded.
    batch: Vec<Message>,
}

/// Outcome of handling one inbound message.
enum Step {
    Continue,
    Stop(DisconnectReason),
}

impl Reader {
    async fn run(
        mut self,
        early: Vec<Vec<u8>>,
        mut writer_dead: oneshot::Receiver<DisconnectReason>,
    ) {
        let reason = self.run_inner(early, &mut writer_dead).await;
        tracing::info!(%reason, "peer disconnected");
        let _ = self.events.send(PeerEvent::Disconnected(reason)).await;
    }

    async fn run_inner(
        &mut self,
        early: Vec<Vec<u8>>,
        writer_dead: &mut oneshot::Receiver<DisconnectReason>,
    ) -> DisconnectReason {
        for m in early {
            if let Step::Stop(r) = self.on_message(m).await {
                return r;
            }
        }
        if let Step::Stop(r) = self.hand_on().await {
            return r;
        }
        let mut buf = vec![0u8; READ_CHUNK];
        let mut ping = tokio::time::interval_at(
            Instant::now() + self.cfg.ping_interval,
            self.cfg.ping_interval,
        );
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let pong_deadline = self.awaiting_pong.map(|t| t + self.cfg.pong_timeout);
            tokio::select! {
                r = self.rd.read(&mut buf) => {
                    let n = match r {
                        Ok(0) => {
                            return match self.recv.finish() {
                                Ok(()) => DisconnectReason::RemoteClosed,
                                Err(e) => e.into(),
                            };
                        }
                        Ok(n) => n,
                        Err(e) => return io_err(e),
                    };
                    let evs = match self.recv.feed(&buf[..n]) {
                        Ok(evs) => evs,
                        Err(e) => return self.violation_transport(e),
                    };
                    for ev in evs {
                        if let TransportEvent::Message(m) = ev {
                            if let Step::Stop(r) = self.on_message(m).await {
                                return r;
                            }
                        }
                    }
                    if let Step::Stop(r) = self.hand_on().await {
                        return r;
                    }
                }
                _ = ping.tick() => {
                    if self.awaiting_pong.is_none() {
                        let p = Ping { num_pong_bytes: 8, ignored: LenBytes::default(), extra_tlvs: Default::default() };
                        if self.out.send(&Message::Ping(p)).is_err() {
                            return DisconnectReason::Local("connection closed".into());
                        }
                        self.stats.pings_sent.fetch_add(1, Ordering::Relaxed);
                        self.awaiting_pong = Some(Instant::now());
                    }
                }
                _ = sleep_until_opt(pong_deadline) => {
                    let r = DisconnectReason::PongTimeout(self.cfg.pong_timeout);
                    self.out.disconnect(&r.to_string());
                    return r;
                }
                r = &mut *writer_dead => {
                    return r.unwrap_or_else(|_| DisconnectReason::Local("writer ended".into()));
                }
            }
        }
    }

    fn violation_transport(&self, e: TransportError) -> DisconnectReason {
        // A frame we cannot authenticate means the stream is unusable: we cannot even
        // send a meaningful warning on a desynchronised peer, but the write key is still
        // fine, so we try.
        self.out.disconnect(&format!("transport error: {e}"));
        DisconnectReason::Transport(e)
    }

    fn violation(&self, why: String) -> Step {
        tracing::warn!(reason = %why, "disconnecting peer");
        self.out.disconnect(&why);
        Step::Stop(DisconnectReason::ProtocolViolation(why))
    }

    /// Takes a token of the bucket, waiting for one if it is empty: a peer faster than
    /// `max_msgs_per_sec` is read at that rate (TCP pushes back on it), so a burst such as
    /// a gossip sync of a large graph arrives whole. False once the peer has kept us
    /// waiting for `max_throttled` without a pause: a flood, not a burst (or once nobody
    /// takes the messages read before the wait).
    async fn take_token(&mut self) -> bool {
        let rate = f64::from(self.cfg.max_msgs_per_sec.max(1));
        let refill = |r: &mut Self| {
            let now = Instant::now();
            let elapsed = now.duration_since(r.last_refill).as_secs_f64();
            r.last_refill = now;
            r.tokens = (r.tokens + elapsed * rate).min(rate);
        };
        refill(self);
        if self.tokens >= 1.0 {
            self.throttled_since = None;
        } else {
            let since = *self.throttled_since.get_or_insert_with(Instant::now);
            if since.elapsed() > self.cfg.max_throttled {
                return false;
            }
            let wait = (1.0 - self.tokens) / rate;
            // What this read brought before the wait goes on now, not after it.
            if let Step::Stop(_) = self.hand_on().await {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_secs_f64(wait)).await;
            refill(self);
        }
        self.tokens = (self.tokens - 1.0).max(0.0);
        true
    }

    async fn on_message(&mut self, bytes: Vec<u8>) -> Step {
        self.stats.messages_in.fetch_add(1, Ordering::Relaxed);
        if !self.take_token().await {
            let r = DisconnectReason::RateLimited(self.cfg.max_msgs_per_sec);
            self.out.disconnect(&r.to_string());
            return Step::Stop(r);
        }
        let msg = match Message::decode(&bytes) {
            Ok(m) => m,
            Err(DecodeError::UnknownEvenMessage(t)) => {
                return self.violation(format!("unknown even message type {t}"));
            }
            Err(e) => return self.violation(format!("malformed message: {e}")),
        };
        match msg {
            Message::Ping(p) => {
                if self.cfg.answer_pings && p.num_pong_bytes < 65532 {
                    let pong = Pong {
                        ignored: LenBytes(vec![0; usize::from(p.num_pong_bytes)]),
                        extra_tlvs: Default::default(),
                    };
                    if self.out.send(&Message::Pong(pong)).is_err() {
                        return Step::Stop(DisconnectReason::Local("connection closed".into()));
                    }
                    self.stats.pings_answered.fetch_add(1, Ordering::Relaxed);
                }
                Step::Continue
            }
            Message::Pong(_) => {
                if let Some(sent) = self.awaiting_pong.take() {
                    let rtt = Instant::now().duration_since(sent);
                    self.stats.last_rtt_micros.store(
                        u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX),
                        Ordering::Relaxed,
                    );
                    self.stats.pongs_received.fetch_add(1, Ordering::Relaxed);
                }
                Step::Continue
            }
            Message::Init(_) => self.violation("duplicate init".into()),
            Message::Unknown { msg_type, .. }
                if !fulmen_watchtower::wire::is_tower_type(msg_type) =>
            {
                tracing::debug!(msg_type, "ignoring unknown odd message");
                Step::Continue
            }
            other => {
                self.batch.push(other);
                if self.batch.len() >= super::MAX_MESSAGES_PER_EVENT {
                    return self.hand_on().await;
                }
                Step::Continue
            }
        }
    }

    /// Hands the read's messages on as one event: a message and the `commitment_signed`
    /// sent with it in one write reach the node together, not in two turns.
    async fn hand_on(&mut self) -> Step {
        if self.batch.is_empty() {
            return Step::Continue;
        }
        let mut batch = std::mem::take(&mut self.batch);
        // Queued events hold no spare capacity (a `Message` is hundreds of bytes).
        batch.shrink_to_fit();
        if self.events.send(PeerEvent::Messages(batch)).await.is_err() {
            return Step::Stop(DisconnectReason::Local("peer handle dropped".into()));
        }
        Step::Continue
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending::<()>().await,
    }
}
