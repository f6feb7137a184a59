//! Criterion benchmark of the peer transport over loopback between two tokio peers:
//! handshakes per second (TCP connect + Noise XX + `init`), and encrypted messages per
//! second and MB/s for small (`update_fee`, 38 B), HTLC-sized (`update_add_htlc`, 1452 B)
//! and large (60 kB `warning`) messages, with a window of 256 messages in flight.
//!
//! Owns: measurement only; asserts nothing about speed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fulmen_node::peer::{connect, Peer, PeerConfig, PeerEvent, PeerListener};
use fulmen_wire::msgs::{OnionPacket, UpdateAddHtlc, UpdateFee, Warning, ONION_PACKET_LEN};
use fulmen_wire::transport::NoiseIdentity;
use fulmen_wire::Message;
use tokio::runtime::Runtime;

fn ident(n: u8) -> Arc<NoiseIdentity> {
    let secp = Secp256k1::new();
    let sk = SecretKey::from_slice(&[n; 32]).expect("valid key");
    Arc::new(NoiseIdentity::new(&secp, &sk, [n ^ 0x5a; 32]))
}

fn cfg() -> PeerConfig {
    PeerConfig {
        max_msgs_per_sec: u32::MAX,
        max_buffered_bytes: 1 << 30,
        ping_interval: Duration::from_secs(3600),
        ..PeerConfig::default()
    }
}

/// A listener that accepts and handshakes forever, keeping peers until the runtime ends.
async fn serve(id: Arc<NoiseIdentity>) -> SocketAddr {
    let l = PeerListener::bind("127.0.0.1:0".parse().expect("addr"), id.clone(), cfg())
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept_tcp().await else {
                return;
            };
            let id = id.clone();
            tokio::spawn(async move {
                if let Ok(mut p) = fulmen_node::peer::accept_stream(s, id, cfg()).await {
                    while let Some(PeerEvent::Messages(_)) = p.recv().await {}
                }
            });
        }
    });
    addr
}

async fn pair(a: Arc<NoiseIdentity>, b: Arc<NoiseIdentity>) -> (Peer, Peer) {
    let l = PeerListener::bind("127.0.0.1:0".parse().expect("addr"), b.clone(), cfg())
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let (d, acc) = tokio::join!(connect(a, b.node_id(), addr, cfg()), l.accept());
    (d.expect("dial"), acc.expect("accept"))
}

/// Sends `n` copies of `msg` from `tx` to `rx` with at most 256 in flight.
async fn pump(tx: &Peer, rx: &mut Peer, msg: &Message, n: u64) -> Duration {
    let bytes = msg.encode();
    let sender = tx.sender();
    let start = Instant::now();
    let (mut sent, mut got) = (0u64, 0u64);
    while got < n {
        while sent < n && sent - got < 256 {
            sender.send_encoded(bytes.clone()).expect("send");
            sent += 1;
        }
        match rx.recv().await {
            Some(PeerEvent::Messages(ms)) => got += ms.len() as u64,
            other => panic!("unexpected {other:?}"),
        }
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let (a, b) = (ident(1), ident(2));
    let b_id: PublicKey = b.node_id();

    let addr = rt.block_on(serve(b.clone()));
    let mut g = c.benchmark_group("handshake");
    g.throughput(Throughput::Elements(1));
    g.bench_function("connect_noise_xx_init", |bch| {
        bch.iter(|| {
            rt.block_on(async {
                let p = connect(a.clone(), b_id, addr, cfg())
                    .await
                    .expect("connect");
                drop(p);
            })
        })
    });
    g.finish();

    let (d, mut l) = rt.block_on(pair(a.clone(), b.clone()));
    let fee = Message::UpdateFee(UpdateFee {
        channel_id: [1; 32],
        feerate_per_kw: 253,
        extra_tlvs: Default::default(),
    });
    let add = Message::UpdateAddHtlc(UpdateAddHtlc {
        channel_id: [1; 32],
        id: 7,
        amount_msat: 1_000_000,
        payment_hash: [2; 32],
        cltv_expiry: 500,
        onion_routing_packet: OnionPacket(Box::new([3; ONION_PACKET_LEN])),
        path_key: None,
        extra_tlvs: Default::default(),
    });
    let big = Message::Warning(Warning::text([0; 32], "x"));
    let big = match big {
        Message::Warning(mut w) => {
            w.data.0 = vec![b'x'; 60_000];
            Message::Warning(w)
        }
        other => other,
    };
    for (name, msg) in [
        ("update_fee_38B", &fee),
        ("update_add_htlc_1452B", &add),
        ("warning_60kB", &big),
    ] {
        let len = msg.encode().len() as u64;
        let mut g = c.benchmark_group(format!("messages/{name}"));
        g.throughput(Throughput::Elements(1));
        g.bench_function("msgs", |bch| {
            bch.iter_custom(|iters| rt.block_on(pump(&d, &mut l, msg, iters)))
        });
        g.throughput(Throughput::Bytes(len));
        g.bench_function("bytes", |bch| {
            bch.iter_custom(|iters| rt.block_on(pump(&d, &mut l, msg, iters)))
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
