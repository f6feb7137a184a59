//! Fuzz target: the Noise transport's inbound path. The input is split into chunks that
//! are fed to (a) a responder expecting act 1, and (b) a session whose handshake has
//! completed, so both handshake parsing and frame decryption/length handling see hostile
//! bytes. Every tenth input is instead a genuine frame with a byte flipped, which must be
//! refused. Must never panic.
#![no_main]

use std::sync::OnceLock;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use fulmen_wire::transport::{NoiseIdentity, NoiseSession, TransportEvent};
use libfuzzer_sys::fuzz_target;

fn identities() -> &'static (NoiseIdentity, NoiseIdentity) {
    static IDS: OnceLock<(NoiseIdentity, NoiseIdentity)> = OnceLock::new();
    IDS.get_or_init(|| {
        let secp = Secp256k1::new();
        let a = NoiseIdentity::new(&secp, &SecretKey::from_slice(&[1; 32]).unwrap(), [3; 32]);
        let b = NoiseIdentity::new(&secp, &SecretKey::from_slice(&[2; 32]).unwrap(), [4; 32]);
        (a, b)
    })
}

fn connected() -> (NoiseSession, NoiseSession) {
    let (a, b) = identities();
    let (mut i, act1) = NoiseSession::initiator(a, b.node_id(), [5; 32]).unwrap();
    let mut r = NoiseSession::responder(b, [6; 32]).unwrap();
    let act2 = match &r.feed(&act1).unwrap()[..] {
        [TransportEvent::Send(x)] => x.clone(),
        _ => unreachable!(),
    };
    let act3 = match &i.feed(&act2).unwrap()[..] {
        [TransportEvent::Send(x), _] => x.clone(),
        _ => unreachable!(),
    };
    r.feed(&act3).unwrap();
    (i, r)
}

fuzz_target!(|data: &[u8]| {
    let (_, b) = identities();
    // Chunk sizes come from the first byte so the fuzzer explores partial reads.
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);

    let mut fresh = NoiseSession::responder(b, [7; 32]).unwrap();
    for c in data.chunks(chunk) {
        if fresh.feed(c).is_err() {
            break;
        }
    }

    let (mut i, mut r) = connected();
    if data.len() > 2 && data[1] % 10 == 0 {
        // Tamper with a genuine frame: must be refused, never delivered.
        let body = &data[2..];
        let mut f = i.encrypt(body).unwrap();
        let pos = usize::from(data[0]) % f.len();
        f[pos] ^= 1 << (data[1] % 8);
        let res = r.feed(&f);
        assert!(res.is_err(), "tampered frame accepted");
    } else {
        r.set_max_inbound_body(usize::from(data.get(1).copied().unwrap_or(0)) * 256);
        for c in data.chunks(chunk) {
            match r.feed(c) {
                Ok(evs) => assert!(evs.iter().all(|e| matches!(e, TransportEvent::Message(_)))),
                Err(_) => break,
            }
        }
    }
});
