//! Two in-process peers over 127.0.0.1 (port 0): handshake, init, ping/pong, and every
//! way a connection is refused or dropped, each with the reason the other side is told.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use fulmen_wire::msgs::{UpdateFee, Warning};
use fulmen_wire::transport::{NoiseIdentity, TransportError};
use fulmen_wire::Message;

use super::*;

/// A test identity derived from `n`.
pub(crate) fn ident(n: u8) -> Arc<NoiseIdentity> {
    let secp = Secp256k1::new();
    let sk = SecretKey::from_slice(&[n; 32]).unwrap();
    Arc::new(NoiseIdentity::new(&secp, &sk, [n ^ 0x55; 32]))
}

/// Peer settings for tests: short handshake, no pings.
pub(crate) fn cfg() -> PeerConfig {
    PeerConfig {
        handshake_timeout: Duration::from_secs(5),
        ping_interval: Duration::from_secs(3600),
        pong_timeout: Duration::from_secs(5),
        chain_hash: Some([6; 32]),
        ..PeerConfig::default()
    }
}

async fn pair(dial_cfg: PeerConfig, listen_cfg: PeerConfig) -> (Peer, Peer) {
    let (a, b) = (ident(1), ident(2));
    let l = PeerListener::bind("127.0.0.1:0".parse().unwrap(), b.clone(), listen_cfg)
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    let (d, acc) = tokio::join!(connect(a, b.node_id(), addr, dial_cfg), l.accept());
    (d.unwrap(), acc.unwrap())
}

async fn next(p: &mut Peer) -> PeerEvent {
    tokio::time::timeout(Duration::from_secs(10), p.recv())
        .await
        .expect("event in time")
        .expect("event")
}

/// Waits for the disconnect, returning it and the messages seen before it.
async fn until_disconnect(p: &mut Peer) -> (DisconnectReason, Vec<Message>) {
    let mut msgs = Vec::new();
    loop {
        match next(p).await {
            PeerEvent::Messages(ms) => msgs.extend(ms),
            PeerEvent::Disconnected(r) => return (r, msgs),
        }
    }
}

fn warning_text(msgs: &[Message]) -> String {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Warning(w) => Some(String::from_utf8_lossy(&w.data.0).into_owned()),
            Message::Error(e) => Some(String::from_utf8_lossy(&e.data.0).into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn handshake_init_and_ping_pong() {
    let mut c = cfg();
    c.ping_interval = Duration::from_millis(30);
    let (d, mut l) = pair(c.clone(), c).await;
    assert_eq!(d.remote_node_id, ident(2).node_id());
    assert_eq!(l.remote_node_id, ident(1).node_id());
    assert_eq!(d.remote_init.networks, Some(vec![[6; 32]]));
    assert!(d
        .negotiated
        .supports(fulmen_wire::features::STATIC_REMOTEKEY));

    // An application message goes through.
    let fee = Message::UpdateFee(UpdateFee {
        channel_id: [9; 32],
        feerate_per_kw: 253,
        extra_tlvs: Default::default(),
    });
    d.send(&fee).unwrap();
    assert_eq!(next(&mut l).await, PeerEvent::Messages(vec![fee]));

    // Keepalive: both sides see several pongs (event-driven wait with a deadline).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while d.stats().pongs_received.load(Ordering::Relaxed) < 3
        || l.stats().pongs_received.load(Ordering::Relaxed) < 3
    {
        assert!(tokio::time::Instant::now() < deadline, "no pongs");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(d.stats().pings_answered.load(Ordering::Relaxed) >= 3);

    d.close("bye").await;
    let (r, msgs) = until_disconnect(&mut l).await;
    assert_eq!(r, DisconnectReason::RemoteClosed);
    assert_eq!(warning_text(&msgs), "bye");
}

#[tokio::test]
async fn wrong_node_id_is_refused() {
    let (a, b, c) = (ident(1), ident(2), ident(3));
    let l = PeerListener::bind("127.0.0.1:0".parse().unwrap(), b, cfg())
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    let (d, acc) = tokio::join!(connect(a, c.node_id(), addr, cfg()), l.accept());
    match d {
        Err(DisconnectReason::Transport(TransportError::WrongNodeId { expected, .. })) => {
            assert_eq!(*expected, c.node_id())
        }
        other => panic!("expected WrongNodeId, got {other:?}"),
    }
    assert!(acc.is_err());
}

#[tokio::test]
async fn incompatible_features_get_an_error() {
    let mut strict = cfg();
    strict.features.set(100); // required, unknown to everyone
    let (a, b) = (ident(1), ident(2));
    let l = PeerListener::bind("127.0.0.1:0".parse().unwrap(), b.clone(), strict)
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    let (d, acc) = tokio::join!(connect(a, b.node_id(), addr, cfg()), l.accept());
    // Each side refuses the other: the dialer because the listener requires an unknown
    // bit, the listener because the dialer lacks a bit it requires. Both name the bit.
    for r in [d.err(), acc.err()] {
        match r {
            Some(DisconnectReason::Incompatible(why)) => assert!(why.contains("bit 100"), "{why}"),
            other => panic!("expected Incompatible, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn pong_timeout_disconnects_with_warning() {
    let mut quiet = cfg();
    quiet.answer_pings = false;
    let mut pinger = cfg();
    pinger.ping_interval = Duration::from_millis(20);
    pinger.pong_timeout = Duration::from_millis(100);
    let (mut d, mut l) = pair(quiet, pinger).await;
    let (r, _) = until_disconnect(&mut l).await;
    assert_eq!(r, DisconnectReason::PongTimeout(Duration::from_millis(100)));
    let (r, msgs) = until_disconnect(&mut d).await;
    assert_eq!(r, DisconnectReason::RemoteClosed);
    assert!(warning_text(&msgs).contains("no pong"));
}

/// A burst faster than the rate is read at the rate, whole, without a disconnection (a
/// gossip sync of a large graph).
#[tokio::test]
async fn a_burst_over_the_rate_is_slowed_not_cut() {
    let mut limited = cfg();
    limited.max_msgs_per_sec = 100;
    let (d, mut l) = pair(cfg(), limited).await;
    let started = std::time::Instant::now();
    for i in 0..250u32 {
        let m = Message::UpdateFee(UpdateFee {
            channel_id: [0; 32],
            feerate_per_kw: i,
            extra_tlvs: Default::default(),
        });
        d.send(&m).unwrap();
    }
    let mut got = 0;
    while got < 250 {
        match next(&mut l).await {
            PeerEvent::Messages(ms) => {
                got += ms
                    .iter()
                    .filter(|m| matches!(m, Message::UpdateFee(_)))
                    .count()
            }
            other => panic!("after {got} messages: {other:?}"),
        }
    }
    // 100 from the full bucket, 150 more at 100 per second.
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn rate_limit_disconnects_with_warning() {
    let mut limited = cfg();
    limited.max_msgs_per_sec = 5;
    limited.max_throttled = Duration::from_millis(300);
    let (mut d, mut l) = pair(cfg(), limited).await;
    for i in 0..50u32 {
        let m = Message::UpdateFee(UpdateFee {
            channel_id: [0; 32],
            feerate_per_kw: i,
            extra_tlvs: Default::default(),
        });
        if d.send(&m).is_err() {
            break;
        }
    }
    let (r, msgs) = until_disconnect(&mut l).await;
    assert_eq!(r, DisconnectReason::RateLimited(5));
    // The burst, then 5 per second until the flood has lasted 300 ms.
    assert!(msgs.len() <= 5 + 3, "{} delivered", msgs.len());
    let (_, msgs) = until_disconnect(&mut d).await;
    assert!(warning_text(&msgs).contains("rate limit"));
}

#[tokio::test]
async fn oversize_message_is_refused() {
    let mut small = cfg();
    small.max_message_len = 100;
    let (mut d, mut l) = pair(cfg(), small).await;
    d.send(&Message::Warning(Warning::text([0; 32], &"x".repeat(500))))
        .unwrap();
    let (r, msgs) = until_disconnect(&mut l).await;
    assert!(msgs.is_empty());
    assert!(
        matches!(
            r,
            DisconnectReason::Transport(TransportError::FrameTooLarge {
                len: 536,
                limit: 100
            })
        ),
        "{r:?}"
    );
    let (_, msgs) = until_disconnect(&mut d).await;
    assert!(warning_text(&msgs).contains("exceeds limit"));
}

#[tokio::test]
async fn unknown_even_message_is_refused_unknown_odd_ignored() {
    let (mut d, mut l) = pair(cfg(), cfg()).await;
    d.sender().send_encoded(vec![0x00, 0x63, 1, 2]).unwrap(); // 99: odd, ignored
    d.sender().send_encoded(vec![0x00, 0x64]).unwrap(); // 100: even, fatal
    let (r, msgs) = until_disconnect(&mut l).await;
    assert!(msgs.is_empty());
    assert_eq!(
        r,
        DisconnectReason::ProtocolViolation("unknown even message type 100".into())
    );
    let (_, msgs) = until_disconnect(&mut d).await;
    assert_eq!(warning_text(&msgs), "unknown even message type 100");
}

#[tokio::test]
async fn outbound_buffer_cap() {
    let mut c = cfg();
    c.max_buffered_bytes = 1000;
    let (d, _l) = pair(c, cfg()).await;
    let big = Message::Warning(Warning::text([0; 32], &"y".repeat(1000)));
    assert_eq!(d.send(&big), Err(DisconnectReason::SendBufferFull(1000)));
}

#[tokio::test]
async fn handshake_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (s, _) = silent.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    });
    let mut c = cfg();
    c.handshake_timeout = Duration::from_millis(200);
    let r = connect(ident(1), ident(2).node_id(), addr, c).await;
    assert_eq!(r.err(), Some(DisconnectReason::HandshakeTimeout));
    hold.abort();
}

#[tokio::test]
async fn reconnect_with_backoff_until_listener_appears() {
    // Find a free port, release it, and only start listening after the first failures.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let (a, b) = (ident(1), ident(2));
    let b2 = b.clone();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        // Wait until the dialer has failed at least once.
        let _ = started_rx.await;
        let l = PeerListener::bind(addr, b2, cfg()).await.unwrap();
        l.accept().await.unwrap()
    });
    // First attempt fails (nothing listening), deterministically.
    let first = connect(a.clone(), b.node_id(), addr, cfg()).await;
    assert!(matches!(first, Err(DisconnectReason::Io(_))));
    started_tx.send(()).unwrap();
    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(200));
    let p = connect_with_backoff(a, b.node_id(), addr, cfg(), &mut backoff, Some(100))
        .await
        .unwrap();
    assert_eq!(p.remote_node_id, b.node_id());
    assert_eq!(backoff.attempts(), 0, "reset after success");
    server.await.unwrap();
}

#[test]
fn peer_address_parsing() {
    let id = ident(1).node_id();
    let s = format!("{id}@127.0.0.1:9735");
    let a: PeerAddress = s.parse().unwrap();
    assert_eq!(a.node_id, id);
    assert_eq!(a.to_string(), s);
    assert!("nope".parse::<PeerAddress>().is_err());
    assert!(format!("{id}@host").parse::<PeerAddress>().is_err());
}

/// Messages sent back to back arrive in order, in events of at most
/// `MAX_MESSAGES_PER_EVENT`: the event queue bounds the messages it holds, not just reads.
#[tokio::test]
async fn a_long_read_arrives_in_events_of_bounded_size() {
    let (d, mut l) = pair(cfg(), cfg()).await;
    let msgs: Vec<Message> = (0..300u32)
        .map(|i| {
            Message::UpdateFee(UpdateFee {
                channel_id: [0; 32],
                feerate_per_kw: i,
                extra_tlvs: Default::default(),
            })
        })
        .collect();
    for m in &msgs {
        d.send(m).unwrap();
    }
    let mut got = Vec::new();
    let mut largest = 0;
    while got.len() < msgs.len() {
        match next(&mut l).await {
            PeerEvent::Messages(ms) => {
                assert!(!ms.is_empty(), "an empty event");
                largest = largest.max(ms.len());
                got.extend(ms);
            }
            other => panic!("after {} messages: {other:?}", got.len()),
        }
    }
    assert_eq!(got, msgs);
    assert!(largest <= super::MAX_MESSAGES_PER_EVENT, "{largest}");
}
