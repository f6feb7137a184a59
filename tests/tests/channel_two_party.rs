//! Two in-memory parties driving `fulmen_channel::machine::Channel`: open, pay in both
//! directions with several updates per commitment, balances conserved to the msat, bad
//! signatures / preimages / secrets refused, BOLT 2 opening checks, funding timeout,
//! persist-before-send, and every party rebuilt from its records (also after they went
//! through the `Record::encode` / `Record::decode` persistence format) equal to the original.
//!
//! Must never: depend on timing or an unseeded RNG.

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Message as SecpMsg, Secp256k1, SecretKey};
use bitcoin::{OutPoint, Txid};
use fulmen_channel::machine::{
    Channel, ChannelConfig, ChannelError, Entropy, Event, FeeEstimator, Phase, Record,
    SeedKeySource,
};
use fulmen_wire::msgs::{Message, OnionPacket, ONION_PACKET_LEN};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

const CHAIN: [u8; 32] = [6u8; 32];
const FUNDING_SAT: u64 = 1_000_000;
const PUSH_MSAT: u64 = 100_000_000;

struct Rng(ChaCha20Rng);
impl Entropy for Rng {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
}

struct Fees(u32);
impl FeeEstimator for Fees {
    fn feerate_per_kw(&self) -> u32 {
        self.0
    }
}

struct Party {
    ch: Channel,
    keys: SeedKeySource,
    log: Vec<Record>,
    events: Vec<Event>,
}

impl Party {
    /// Persist every pending batch (append to the log) and acknowledge it.
    fn persist(&mut self) {
        while let Some(b) = self.ch.poll_persist() {
            self.log.extend(b.records);
            self.ch.persisted(b.id).unwrap();
        }
        while let Some(e) = self.ch.poll_event() {
            self.events.push(e);
        }
    }

    fn outgoing(&mut self) -> Vec<Message> {
        self.persist();
        let mut v = Vec::new();
        while let Some(m) = self.ch.poll_message() {
            // Through the wire codec, as a real transport would.
            v.push(Message::decode(&m.encode()).unwrap());
        }
        v
    }

    fn assert_restores(&mut self) {
        self.persist();
        let r = Channel::restore(&self.keys, ChannelConfig::default(), &self.log).unwrap();
        assert_eq!(r.state(), self.ch.state(), "rebuilt from records differs");
        // Through the persistence format, as the node stores them: every record round-trips
        // and the channel rebuilt from the decoded records is the same.
        let decoded: Vec<Record> = self
            .log
            .iter()
            .map(|rec| {
                let d = Record::decode(&rec.encode()).unwrap();
                assert_eq!(&d, rec, "record changed through encode/decode");
                d
            })
            .collect();
        let r = Channel::restore(&self.keys, ChannelConfig::default(), &decoded).unwrap();
        assert_eq!(
            r.state(),
            self.ch.state(),
            "rebuilt from decoded records differs"
        );
    }
}

/// The variant names of the records in `logs` (from their `Debug` form).
fn record_kinds(logs: &[&[Record]]) -> std::collections::BTreeSet<String> {
    logs.iter()
        .flat_map(|l| l.iter())
        .map(|r| {
            let d = format!("{r:?}");
            d.split(|c: char| !c.is_alphanumeric())
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn onion() -> OnionPacket {
    OnionPacket(Box::new([0u8; ONION_PACKET_LEN]))
}

/// Deliver messages both ways until quiet; each side commits whenever it can.
fn run(a: &mut Party, b: &mut Party) {
    for _ in 0..1000 {
        let mut progressed = false;
        for m in a.outgoing() {
            b.ch.handle_message(&m).unwrap();
            progressed = true;
        }
        for m in b.outgoing() {
            a.ch.handle_message(&m).unwrap();
            progressed = true;
        }
        for p in [&mut *a, &mut *b] {
            if p.ch.can_send_commitment() {
                p.ch.send_commitment().unwrap();
                progressed = true;
            }
        }
        a.assert_restores();
        b.assert_restores();
        if !progressed {
            return;
        }
    }
    panic!("no quiescence");
}

fn open_pair(seed: u64, cfg_b: ChannelConfig) -> Result<(Party, Party), ChannelError> {
    open_pair_with(seed, ChannelConfig::default(), cfg_b)
}

fn open_pair_with(
    seed: u64,
    cfg_a: ChannelConfig,
    cfg_b: ChannelConfig,
) -> Result<(Party, Party), ChannelError> {
    let mut rng = Rng(ChaCha20Rng::seed_from_u64(seed));
    let fees = Fees(1000);
    let ka = SeedKeySource::new([1u8; 32]);
    let kb = SeedKeySource::new([2u8; 32]);
    let cha = Channel::new_outbound(
        &ka,
        &mut rng,
        &fees,
        cfg_a,
        CHAIN,
        FUNDING_SAT,
        PUSH_MSAT,
        100,
    )?;
    let mut a = Party {
        ch: cha,
        keys: ka,
        log: vec![],
        events: vec![],
    };
    let open = a.outgoing().pop().unwrap();
    let Message::OpenChannel(open) = open else {
        panic!("not open_channel")
    };
    let chb = Channel::new_inbound(&kb, &mut rng, &fees, cfg_b, CHAIN, &open, 100)?;
    let mut b = Party {
        ch: chb,
        keys: kb,
        log: vec![],
        events: vec![],
    };
    run(&mut a, &mut b);
    let Some(Event::FundingGenerationReady { value, .. }) = a.events.pop() else {
        panic!("no funding event")
    };
    assert_eq!(value.to_sat(), FUNDING_SAT);
    let outpoint = OutPoint {
        txid: Txid::from_byte_array([9u8; 32]),
        vout: 1,
    };
    a.ch.handle_funding_tx(outpoint).unwrap();
    run(&mut a, &mut b);
    assert!(a.events.contains(&Event::FundingSigned { outpoint }));
    assert_eq!(a.ch.channel_id(), b.ch.channel_id());
    for p in [&mut a, &mut b] {
        p.ch.handle_funding_confirmed(110).unwrap();
        p.ch.handle_block(110).unwrap();
    }
    run(&mut a, &mut b);
    assert_eq!(a.ch.state().phase, Phase::AwaitingReady, "depth 1 < 3");
    for p in [&mut a, &mut b] {
        p.ch.handle_block(112).unwrap();
    }
    run(&mut a, &mut b);
    assert_eq!(a.ch.state().phase, Phase::Normal);
    assert_eq!(b.ch.state().phase, Phase::Normal);
    assert!(a.events.contains(&Event::ChannelReady));
    Ok((a, b))
}

fn preimage(n: u64) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[..8].copy_from_slice(&n.to_be_bytes());
    p[31] = 0xaa;
    p
}

fn hash_of(p: &[u8; 32]) -> [u8; 32] {
    sha256::Hash::hash(p).to_byte_array()
}

/// Payee side: fulfill every received HTLC whose preimage is known.
fn fulfill_received(p: &mut Party) {
    let evs: Vec<Event> = std::mem::take(&mut p.events);
    for e in evs {
        if let Event::HtlcReceived { id, htlc, .. } = e {
            // The payer encoded the preimage index in the cltv (test convention).
            let pre = preimage(u64::from(htlc.cltv_expiry - 500));
            assert_eq!(hash_of(&pre), htlc.payment_hash);
            p.ch.fulfill_htlc(id, pre).unwrap();
        } else {
            p.events.push(e);
        }
    }
}

fn check_mirror(a: &Party, b: &Party) {
    let (a_us, a_them) = a.ch.balances_msat().unwrap();
    let (b_us, b_them) = b.ch.balances_msat().unwrap();
    assert_eq!(a_us, b_them);
    assert_eq!(a_them, b_us);
    assert_eq!(a_us + a_them, FUNDING_SAT * 1000, "no HTLC left when quiet");
    assert!(a.ch.is_quiescent() && b.ch.is_quiescent());
}

#[test]
fn open_pay_both_ways_balances_conserved() {
    let (mut a, mut b) = open_pair(7, ChannelConfig::default()).unwrap();
    let mut expected_a = FUNDING_SAT * 1000 - PUSH_MSAT;
    let mut n = 0u64;
    // Rounds: a pays b k times (one commitment for all), then b pays a.
    for round in 0..4u64 {
        for (payer_is_a, k) in [(true, 1 + round), (false, 2 + round)] {
            let (payer, payee) = if payer_is_a {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
            for _ in 0..k {
                n += 1;
                let amt = 1_000_000 + n * 12_345;
                let pre = preimage(n);
                payer
                    .ch
                    .add_htlc(amt, hash_of(&pre), 500 + n as u32, onion())
                    .unwrap();
                if payer_is_a {
                    expected_a -= amt;
                } else {
                    expected_a += amt;
                }
            }
            run(payer, payee);
            fulfill_received(payee);
            run(payer, payee);
            let fulfilled = payer
                .events
                .iter()
                .filter(|e| matches!(e, Event::HtlcFulfilled { .. }))
                .count();
            assert!(fulfilled as u64 >= k);
            payer.events.clear();
        }
        check_mirror(&a, &b);
        assert_eq!(a.ch.balances_msat().unwrap().0, expected_a);
    }
    // Several adds per commitment really happened: fewer SentCommitment records than adds.
    let adds = a
        .log
        .iter()
        .filter(|r| matches!(r, Record::LocalUpdate(_)))
        .count();
    let commits = a
        .log
        .iter()
        .filter(|r| matches!(r, Record::SentCommitment))
        .count();
    assert!(
        commits < adds,
        "{commits} commitments for {adds} local updates"
    );
    // Both sides agree on both commitments once quiet.
    assert_eq!(
        a.ch.state().local_commit.as_ref().unwrap().number,
        b.ch.state().remote_commit.as_ref().unwrap().number
    );
    // The latest commitment is fully signed and spends the funding outpoint.
    let tx = a.ch.signed_local_commitment().unwrap();
    assert_eq!(tx.input[0].witness.len(), 4);
    // libbitcoinconsensus accepts both funding signatures.
    let st = a.ch.state();
    let funding = fulmen_channel::funding::funding_output(
        &st.setup.local.basepoints.funding_pubkey,
        &st.setup.remote.unwrap().basepoints.funding_pubkey,
        bitcoin::Amount::from_sat(FUNDING_SAT),
    );
    funding
        .script_pubkey
        .verify(0, funding.value, &bitcoin::consensus::serialize(&tx))
        .unwrap();
}

#[test]
fn htlc_failed_returns_the_amount() {
    let (mut a, mut b) = open_pair(8, ChannelConfig::default()).unwrap();
    let before = a.ch.balances_msat().unwrap();
    let id =
        a.ch.add_htlc(5_000_000, hash_of(&preimage(1)), 501, onion())
            .unwrap();
    run(&mut a, &mut b);
    let Some(Event::HtlcReceived { id: bid, .. }) = b.events.pop() else {
        panic!("no htlc received")
    };
    assert_eq!(bid, id);
    b.ch.fail_htlc(bid, vec![1, 2, 3]).unwrap();
    run(&mut a, &mut b);
    assert!(a.events.contains(&Event::HtlcFailed {
        id,
        reason: vec![1, 2, 3]
    }));
    assert_eq!(a.ch.balances_msat().unwrap(), before);
    check_mirror(&a, &b);
}

#[test]
fn messages_wait_for_persistence() {
    let (mut a, mut b) = open_pair(9, ChannelConfig::default()).unwrap();
    a.ch.add_htlc(2_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    a.ch.send_commitment().unwrap();
    assert!(a.ch.poll_message().is_none(), "released before persisted");
    let b1 = a.ch.poll_persist().unwrap();
    let b2 = a.ch.poll_persist().unwrap();
    // Acknowledging the later batch alone releases nothing (order is kept).
    a.ch.persisted(b2.id).unwrap();
    assert!(a.ch.poll_message().is_none());
    a.ch.persisted(b1.id).unwrap();
    assert!(matches!(
        a.ch.poll_message(),
        Some(Message::UpdateAddHtlc(_))
    ));
    assert!(matches!(
        a.ch.poll_message(),
        Some(Message::CommitmentSigned(_))
    ));
    a.log.extend(b1.records);
    a.log.extend(b2.records);
    assert!(a.ch.persisted(99).is_err());
    let _ = &mut b;
}

#[test]
fn bad_commitment_signature_fails_channel_and_offers_commitment() {
    let (mut a, mut b) = open_pair(10, ChannelConfig::default()).unwrap();
    a.ch.add_htlc(3_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    a.ch.send_commitment().unwrap();
    let msgs = a.outgoing();
    let secp = Secp256k1::new();
    let k = SecretKey::from_slice(&[5u8; 32]).unwrap();
    let forged = secp.sign_ecdsa(&SecpMsg::from_digest([1u8; 32]), &k);
    for m in msgs {
        match m {
            Message::CommitmentSigned(mut cs) => {
                cs.signature = forged;
                let err =
                    b.ch.handle_message(&Message::CommitmentSigned(cs))
                        .unwrap_err();
                assert!(matches!(err, ChannelError::Protocol(_)), "{err}");
            }
            other => b.ch.handle_message(&other).unwrap(),
        }
    }
    assert_eq!(b.ch.state().phase, Phase::Closed);
    let out = b.outgoing();
    assert!(matches!(out.last(), Some(Message::Error(_))));
    let tx = b.ch.poll_broadcast().expect("latest commitment offered");
    assert_eq!(
        tx.input[0].previous_output,
        b.ch.state().funding_outpoint.unwrap()
    );
    assert!(b.events.iter().any(|e| matches!(e, Event::Closed { .. })));
    assert!(matches!(b.ch.handle_block(500), Err(ChannelError::Closed)));
    b.assert_restores();
}

#[test]
fn bad_htlc_signature_refused() {
    let (mut a, mut b) = open_pair(11, ChannelConfig::default()).unwrap();
    a.ch.add_htlc(30_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    a.ch.send_commitment().unwrap();
    let mut saw = false;
    for m in a.outgoing() {
        match m {
            Message::CommitmentSigned(mut cs) => {
                assert_eq!(cs.htlc_signatures.len(), 1, "one untrimmed htlc");
                cs.htlc_signatures[0] = cs.signature;
                let err =
                    b.ch.handle_message(&Message::CommitmentSigned(cs))
                        .unwrap_err();
                assert!(err.to_string().contains("htlc signature"), "{err}");
                saw = true;
            }
            other => b.ch.handle_message(&other).unwrap(),
        }
    }
    assert!(saw);
}

#[test]
fn wrong_preimage_refused() {
    let (mut a, mut b) = open_pair(12, ChannelConfig::default()).unwrap();
    let id =
        a.ch.add_htlc(4_000_000, hash_of(&preimage(1)), 501, onion())
            .unwrap();
    run(&mut a, &mut b);
    // The command is refused without changing anything.
    assert!(matches!(
        b.ch.fulfill_htlc(id, preimage(2)),
        Err(ChannelError::Command(_))
    ));
    // A peer sending a wrong preimage fails the channel.
    let m = fulmen_wire::msgs::UpdateFulfillHtlc {
        channel_id: a.ch.channel_id(),
        id,
        payment_preimage: preimage(2),
        extra_tlvs: Default::default(),
    };
    let err =
        a.ch.handle_message(&Message::UpdateFulfillHtlc(m))
            .unwrap_err();
    assert!(err.to_string().contains("wrong preimage"), "{err}");
    assert_eq!(a.ch.state().phase, Phase::Closed);
}

#[test]
fn bad_revocation_secret_refused() {
    let (mut a, mut b) = open_pair(13, ChannelConfig::default()).unwrap();
    a.ch.add_htlc(4_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    a.ch.send_commitment().unwrap();
    for m in a.outgoing() {
        b.ch.handle_message(&m).unwrap();
    }
    let mut saw = false;
    for m in b.outgoing() {
        if let Message::RevokeAndAck(mut r) = m {
            r.per_commitment_secret[0] ^= 1;
            let err = a.ch.handle_message(&Message::RevokeAndAck(r)).unwrap_err();
            assert!(err.to_string().contains("does not match"), "{err}");
            saw = true;
        }
    }
    assert!(saw);
}

#[test]
fn unexpected_and_out_of_order_messages_refused() {
    let (mut a, mut b) = open_pair(14, ChannelConfig::default()).unwrap();
    // HTLC id must be the next one.
    a.ch.add_htlc(4_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    let mut msgs = a.outgoing();
    let Some(Message::UpdateAddHtlc(mut add)) = msgs.pop() else {
        panic!()
    };
    add.id = 5;
    assert!(b.ch.handle_message(&Message::UpdateAddHtlc(add)).is_err());
    // commitment_signed with no updates.
    let (mut c, _d) = open_pair(15, ChannelConfig::default()).unwrap();
    let cs = fulmen_wire::msgs::CommitmentSigned {
        channel_id: c.ch.channel_id(),
        signature: Secp256k1::new().sign_ecdsa(
            &SecpMsg::from_digest([1u8; 32]),
            &SecretKey::from_slice(&[3u8; 32]).unwrap(),
        ),
        htlc_signatures: vec![],
        extra_tlvs: Default::default(),
    };
    assert!(c.ch.handle_message(&Message::CommitmentSigned(cs)).is_err());
    let _ = c.outgoing();
}

#[test]
fn sender_limits_refuse_commands() {
    let cfg_b = ChannelConfig {
        max_accepted_htlcs: 2,
        htlc_minimum_msat: 1000,
        ..ChannelConfig::default()
    };
    let (mut a, mut b) = open_pair(16, cfg_b).unwrap();
    assert!(matches!(
        a.ch.add_htlc(999, hash_of(&preimage(1)), 501, onion()),
        Err(ChannelError::Command(_))
    ));
    assert!(a
        .ch
        .add_htlc(0, hash_of(&preimage(1)), 501, onion())
        .is_err());
    assert!(a
        .ch
        .add_htlc(1000, hash_of(&preimage(1)), 500_000_000, onion())
        .is_err());
    a.ch.add_htlc(1000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    a.ch.add_htlc(1000, hash_of(&preimage(2)), 502, onion())
        .unwrap();
    assert!(a
        .ch
        .add_htlc(1000, hash_of(&preimage(3)), 503, onion())
        .is_err());
    // b has 100_000 sat and must keep a 10_000 sat reserve.
    assert!(b
        .ch
        .add_htlc(90_000_001, hash_of(&preimage(4)), 504, onion())
        .is_err());
    b.ch.add_htlc(90_000_000, hash_of(&preimage(4)), 504, onion())
        .unwrap();
    // A refused command changed nothing: ids continue from 2.
    assert_eq!(a.ch.state().next_local_htlc_id, 2);
    run(&mut a, &mut b);
}

fn open_msg(seed: u64) -> (SeedKeySource, Rng, fulmen_wire::msgs::OpenChannel) {
    let mut rng = Rng(ChaCha20Rng::seed_from_u64(seed));
    let ka = SeedKeySource::new([1u8; 32]);
    let mut a = Channel::new_outbound(
        &ka,
        &mut rng,
        &Fees(1000),
        ChannelConfig::default(),
        CHAIN,
        FUNDING_SAT,
        0,
        1,
    )
    .unwrap();
    let b = a.poll_persist().unwrap();
    a.persisted(b.id).unwrap();
    let Some(Message::OpenChannel(o)) = a.poll_message() else {
        panic!()
    };
    (SeedKeySource::new([2u8; 32]), rng, o)
}

type Mutate = Box<dyn Fn(&mut fulmen_wire::msgs::OpenChannel)>;

#[test]
fn open_channel_parameter_checks() {
    let cases: Vec<(&str, Mutate)> = vec![
        (
            "max_accepted_htlcs",
            Box::new(|o| o.max_accepted_htlcs = 484),
        ),
        ("dust_limit", Box::new(|o| o.dust_limit_satoshis = 353)),
        ("to_self_delay", Box::new(|o| o.to_self_delay = 5000)),
        ("feerate", Box::new(|o| o.feerate_per_kw = 100)),
        ("feerate", Box::new(|o| o.feerate_per_kw = 1_000_000)),
        ("push", Box::new(|o| o.push_msat = FUNDING_SAT * 1000 + 1)),
        ("2^24", Box::new(|o| o.funding_satoshis = 1 << 24)),
        (
            "reserve",
            Box::new(|o| o.channel_reserve_satoshis = 300_000),
        ),
        ("dust_limit", Box::new(|o| o.dust_limit_satoshis = 10_001)),
        ("chain", Box::new(|o| o.chain_hash = [0u8; 32])),
    ];
    for (what, f) in cases {
        let (kb, mut rng, mut o) = open_msg(20);
        f(&mut o);
        let r = Channel::new_inbound(
            &kb,
            &mut rng,
            &Fees(1000),
            ChannelConfig::default(),
            CHAIN,
            &o,
            1,
        );
        assert!(
            matches!(r, Err(ChannelError::Protocol(_))),
            "{what} accepted"
        );
    }
    let (kb, mut rng, o) = open_msg(20);
    assert!(Channel::new_inbound(
        &kb,
        &mut rng,
        &Fees(1000),
        ChannelConfig::default(),
        CHAIN,
        &o,
        1
    )
    .is_ok());
}

#[test]
fn accept_channel_parameter_checks() {
    for bad in 0..3 {
        let mut rng = Rng(ChaCha20Rng::seed_from_u64(30));
        let ka = SeedKeySource::new([1u8; 32]);
        let mut a = Channel::new_outbound(
            &ka,
            &mut rng,
            &Fees(1000),
            ChannelConfig::default(),
            CHAIN,
            FUNDING_SAT,
            0,
            1,
        )
        .unwrap();
        let b0 = a.poll_persist().unwrap();
        a.persisted(b0.id).unwrap();
        let Some(Message::OpenChannel(o)) = a.poll_message() else {
            panic!()
        };
        let mut b = Channel::new_inbound(
            &SeedKeySource::new([2u8; 32]),
            &mut rng,
            &Fees(1000),
            ChannelConfig::default(),
            CHAIN,
            &o,
            1,
        )
        .unwrap();
        let b1 = b.poll_persist().unwrap();
        b.persisted(b1.id).unwrap();
        let Some(Message::AcceptChannel(mut acc)) = b.poll_message() else {
            panic!()
        };
        match bad {
            0 => acc.minimum_depth = 1000,
            1 => acc.max_accepted_htlcs = 484,
            _ => acc.channel_reserve_satoshis = 100,
        }
        assert!(matches!(
            a.handle_message(&Message::AcceptChannel(acc)),
            Err(ChannelError::Protocol(_))
        ));
        assert_eq!(a.state().phase, Phase::Closed);
    }
}

#[test]
fn unconfirmed_funding_times_out_for_the_acceptor() {
    let mut rng = Rng(ChaCha20Rng::seed_from_u64(40));
    let ka = SeedKeySource::new([1u8; 32]);
    let kb = SeedKeySource::new([2u8; 32]);
    let mut a = Party {
        ch: Channel::new_outbound(
            &ka,
            &mut rng,
            &Fees(1000),
            ChannelConfig::default(),
            CHAIN,
            FUNDING_SAT,
            0,
            100,
        )
        .unwrap(),
        keys: ka,
        log: vec![],
        events: vec![],
    };
    let Some(Message::OpenChannel(o)) = a.outgoing().pop() else {
        panic!()
    };
    let mut b = Party {
        ch: Channel::new_inbound(
            &kb,
            &mut rng,
            &Fees(1000),
            ChannelConfig::default(),
            CHAIN,
            &o,
            100,
        )
        .unwrap(),
        keys: kb,
        log: vec![],
        events: vec![],
    };
    run(&mut a, &mut b);
    a.ch.handle_funding_tx(OutPoint {
        txid: Txid::from_byte_array([3u8; 32]),
        vout: 0,
    })
    .unwrap();
    run(&mut a, &mut b);
    b.ch.handle_block(2115).unwrap();
    assert_eq!(b.ch.state().phase, Phase::AwaitingReady);
    b.ch.handle_block(2116).unwrap();
    b.persist();
    assert_eq!(b.ch.state().phase, Phase::Closed);
    assert!(b.events.iter().any(|e| matches!(e, Event::Closed { .. })));
    b.assert_restores();
}

fn p2wpkh(n: u8) -> bitcoin::ScriptBuf {
    let secp = Secp256k1::new();
    let pk = bitcoin::secp256k1::PublicKey::from_secret_key(
        &secp,
        &SecretKey::from_slice(&[n; 32]).unwrap(),
    );
    bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::CompressedPublicKey(pk).wpubkey_hash())
}

#[test]
fn cooperative_close_drains_htlcs_then_negotiates_fee() {
    let (mut a, mut b) = open_pair(50, ChannelConfig::default()).unwrap();
    // One HTLC in flight when the close starts.
    let id =
        a.ch.add_htlc(7_000_000, hash_of(&preimage(1)), 501, onion())
            .unwrap();
    run(&mut a, &mut b);
    // b initiates (the non-funder); a answers after the event.
    b.ch.shutdown(p2wpkh(0xb0)).unwrap();
    run(&mut a, &mut b);
    assert!(a.events.contains(&Event::ShutdownReceived));
    assert!(matches!(
        a.ch.add_htlc(1000, hash_of(&preimage(2)), 502, onion()),
        Err(ChannelError::Command(_))
    ));
    a.ch.shutdown(p2wpkh(0xa0)).unwrap();
    run(&mut a, &mut b);
    // Still open: the HTLC must resolve first.
    assert_eq!(a.ch.state().phase, Phase::Normal);
    let Some(Event::HtlcReceived { id: bid, .. }) = b
        .events
        .iter()
        .find(|e| matches!(e, Event::HtlcReceived { .. }))
        .cloned()
    else {
        panic!("no htlc")
    };
    assert_eq!(bid, id);
    b.ch.fulfill_htlc(bid, preimage(1)).unwrap();
    run(&mut a, &mut b);
    assert_eq!(a.ch.state().phase, Phase::Closed);
    assert_eq!(b.ch.state().phase, Phase::Closed);
    let ta = a.ch.poll_broadcast().expect("a's closing tx");
    let tb = b.ch.poll_broadcast().expect("b's closing tx");
    assert_eq!(ta, tb, "both sides broadcast the same closing tx");
    let st = a.ch.state();
    let funding = fulmen_channel::funding::funding_output(
        &st.setup.local.basepoints.funding_pubkey,
        &st.setup.remote.unwrap().basepoints.funding_pubkey,
        bitcoin::Amount::from_sat(FUNDING_SAT),
    );
    funding
        .script_pubkey
        .verify(0, funding.value, &bitcoin::consensus::serialize(&ta))
        .unwrap();
    // b gets exactly its balance; a gets its balance minus the fee.
    let (a_us, b_us) = a.ch.balances_msat().unwrap();
    assert_eq!(b_us, PUSH_MSAT + 7_000_000);
    let out = |s: &bitcoin::ScriptBuf| {
        ta.output
            .iter()
            .find(|o| &o.script_pubkey == s)
            .unwrap()
            .value
            .to_sat()
    };
    assert_eq!(out(&p2wpkh(0xb0)), b_us / 1000);
    let fee = a_us / 1000 - out(&p2wpkh(0xa0));
    assert!(fee > 0 && fee < 2000, "fee {fee}");
    a.assert_restores();
    b.assert_restores();
    // This flow went through the persistence format with every kind of record but
    // `Reconnected` (covered by `reconnect_retransmits_a_lost_commitment`).
    let kinds = record_kinds(&[&a.log, &b.log]);
    for k in [
        "Created",
        "Accepted",
        "FundingOutpoint",
        "InitialCommitSigned",
        "FundingConfirmed",
        "ReadySent",
        "ReadyReceived",
        "LocalUpdate",
        "RemoteUpdate",
        "SentCommitment",
        "ReceivedCommitment",
        "ReceivedRevocation",
        "ShutdownSent",
        "ShutdownReceived",
        "Closed",
    ] {
        assert!(kinds.contains(k), "no {k} record in {kinds:?}");
    }
}

#[test]
fn update_fee_changes_the_commitment_feerate() {
    let (mut a, mut b) = open_pair(60, ChannelConfig::default()).unwrap();
    // Only the funder may.
    assert!(matches!(
        b.ch.update_fee(2000),
        Err(ChannelError::Command(_))
    ));
    a.ch.update_fee(2000).unwrap();
    run(&mut a, &mut b);
    for p in [&a, &b] {
        let st = p.ch.state();
        assert_eq!(st.local_commit.as_ref().unwrap().spec.feerate_per_kw, 2000);
        assert_eq!(st.remote_commit.as_ref().unwrap().spec.feerate_per_kw, 2000);
    }
    check_mirror(&a, &b);
    // The fee of the signed commitment follows: 724 weight at 2000 sat/kw = 1448 sat.
    let tx = a.ch.signed_local_commitment().unwrap();
    let out: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    assert_eq!(FUNDING_SAT - out, 1448);
    // An insane feerate from the funder fails the channel at the receiver.
    b.ch.handle_fee_estimate(1000);
    let m = fulmen_wire::msgs::UpdateFee {
        channel_id: b.ch.channel_id(),
        feerate_per_kw: 100_000,
        extra_tlvs: Default::default(),
    };
    assert!(matches!(
        b.ch.handle_message(&Message::UpdateFee(m.clone())),
        Err(ChannelError::Protocol(_))
    ));
    // And update_fee from the non-funder is refused by the funder.
    let m = fulmen_wire::msgs::UpdateFee {
        channel_id: a.ch.channel_id(),
        feerate_per_kw: 1000,
        extra_tlvs: Default::default(),
    };
    assert!(a.ch.handle_message(&Message::UpdateFee(m)).is_err());
}

#[test]
fn fail_malformed_requires_badonion_and_returns_the_amount() {
    let (mut a, mut b) = open_pair(61, ChannelConfig::default()).unwrap();
    let before = a.ch.balances_msat().unwrap();
    let id =
        a.ch.add_htlc(5_000_000, hash_of(&preimage(1)), 501, onion())
            .unwrap();
    run(&mut a, &mut b);
    assert!(matches!(
        b.ch.fail_malformed_htlc(id, [1; 32], 0x4005),
        Err(ChannelError::Command(_))
    ));
    b.ch.fail_malformed_htlc(id, [1; 32], 0xc005).unwrap();
    run(&mut a, &mut b);
    assert!(a.events.contains(&Event::HtlcFailedMalformed {
        id,
        sha256_of_onion: [1; 32],
        failure_code: 0xc005
    }));
    assert_eq!(a.ch.balances_msat().unwrap(), before);
    check_mirror(&a, &b);
}

#[test]
fn reestablish_detects_lost_state_and_never_broadcasts_it() {
    let (mut a, mut b) = open_pair(70, ChannelConfig::default()).unwrap();
    let old_log = b.log.clone();
    for n in 1..=3u64 {
        a.ch.add_htlc(1_000_000, hash_of(&preimage(n)), 500 + n as u32, onion())
            .unwrap();
        run(&mut a, &mut b);
    }
    // b restarts from a stale copy of its records (a backup): it lost state.
    let mut stale = Channel::restore(&b.keys, ChannelConfig::default(), &old_log).unwrap();
    a.ch.handle_disconnect();
    a.ch.handle_reconnect().unwrap();
    stale.handle_reconnect().unwrap();
    let from_a = a.outgoing();
    let mut from_stale = Vec::new();
    while let Some(bt) = stale.poll_persist() {
        stale.persisted(bt.id).unwrap();
    }
    while let Some(m) = stale.poll_message() {
        from_stale.push(m);
    }
    // The stale side learns it is behind: closes without broadcasting its old commitment.
    for m in &from_a {
        assert!(matches!(stale.handle_message(m), Err(ChannelError::Closed)));
    }
    assert_eq!(stale.state().phase, Phase::Closed);
    assert!(
        stale.poll_broadcast().is_none(),
        "must not broadcast a revoked state"
    );
    // The up-to-date side sees the peer is behind and fails, offering its own commitment.
    let err = a.ch.handle_message(&from_stale[0]).unwrap_err();
    assert!(err.to_string().contains("lost state"), "{err}");
    assert!(a.ch.poll_broadcast().is_some());
}

#[test]
fn reconnect_retransmits_a_lost_commitment() {
    let (mut a, mut b) = open_pair(71, ChannelConfig::default()).unwrap();
    a.ch.add_htlc(2_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    a.ch.send_commitment().unwrap();
    let _lost = a.outgoing(); // the link drops with update_add + commitment_signed
    for p in [&mut a, &mut b] {
        p.ch.handle_disconnect();
        p.ch.handle_reconnect().unwrap();
    }
    run(&mut a, &mut b);
    let Some(Event::HtlcReceived { id, .. }) = b.events.pop() else {
        panic!("htlc not delivered after reestablish")
    };
    b.ch.fulfill_htlc(id, preimage(1)).unwrap();
    run(&mut a, &mut b);
    check_mirror(&a, &b);
    assert_eq!(b.ch.balances_msat().unwrap().0, PUSH_MSAT + 2_000_000);
}

#[test]
fn reconnected_record_goes_through_the_persistence_format() {
    let (mut a, mut b) = open_pair(72, ChannelConfig::default()).unwrap();
    a.ch.add_htlc(2_000_000, hash_of(&preimage(1)), 501, onion())
        .unwrap();
    // b receives the add but no commitment before the link drops: it forgets it.
    for m in a.outgoing() {
        b.ch.handle_message(&m).unwrap();
    }
    for p in [&mut a, &mut b] {
        p.ch.handle_disconnect();
        p.ch.handle_reconnect().unwrap();
    }
    b.assert_restores();
    assert!(record_kinds(&[&b.log]).contains("Reconnected"));
    // The channel goes on: whatever was re-offered settles, balances mirror.
    run(&mut a, &mut b);
    fulfill_received(&mut b);
    run(&mut a, &mut b);
    check_mirror(&a, &b);
}

fn dust_cfg(limit_msat: u64) -> ChannelConfig {
    ChannelConfig {
        max_dust_htlc_exposure_msat: limit_msat,
        ..ChannelConfig::default()
    }
}

// At the opening feerate 1000 sat/kw and dust limit 546 sat on both sides, an HTLC is
// trimmed below 546 + 663 = 1209 sat (offered by the broadcaster) or 546 + 703 = 1249 sat
// (received): a 1000-sat HTLC is dust on both commitments.

#[test]
fn dust_exposure_sender_refuses_limit_plus_one_accepts_the_limit() {
    let (mut a, mut b) = open_pair_with(80, dust_cfg(5_000_000), dust_cfg(u64::MAX)).unwrap();
    for n in 0..4u64 {
        let pre = preimage(n);
        a.ch.add_htlc(1_000_000, hash_of(&pre), 500 + n as u32, onion())
            .unwrap();
    }
    let pending = a.outgoing();
    let records = a.log.len();
    // 4_000_000 + 1_000_001 = limit + 1: refused, nothing changes.
    let before = a.ch.state().clone();
    let err =
        a.ch.add_htlc(1_000_001, hash_of(&preimage(4)), 504, onion())
            .unwrap_err();
    assert!(matches!(err, ChannelError::Command(ref e) if e.contains("dust exposure")));
    assert_eq!(a.ch.state(), &before);
    assert!(a.outgoing().is_empty());
    assert_eq!(a.log.len(), records);
    for m in pending {
        b.ch.handle_message(&m).unwrap();
    }
    // Exactly the limit is accepted.
    a.ch.add_htlc(1_000_000, hash_of(&preimage(4)), 504, onion())
        .unwrap();
    // A non-dust HTLC does not count.
    a.ch.add_htlc(2_000_000, hash_of(&preimage(5)), 505, onion())
        .unwrap();
    // Any further dust one is refused.
    assert!(a
        .ch
        .add_htlc(1_000, hash_of(&preimage(6)), 506, onion())
        .is_err());
    run(&mut a, &mut b);
    assert_eq!(
        b.events
            .iter()
            .filter(|e| matches!(e, Event::HtlcReceived { .. }))
            .count(),
        6
    );
    fulfill_received(&mut b);
    run(&mut a, &mut b);
    check_mirror(&a, &b);
}

#[test]
fn dust_exposure_receiver_reports_htlcs_over_the_limit_as_must_fail() {
    // The sender has no limit; the receiver allows 2.5 dust HTLCs of 1000 sat.
    let (mut a, mut b) = open_pair_with(81, dust_cfg(u64::MAX), dust_cfg(2_500_000)).unwrap();
    for n in 0..3u64 {
        a.ch.add_htlc(1_000_000, hash_of(&preimage(n)), 500 + n as u32, onion())
            .unwrap();
    }
    // The receiver accepts the updates (no protocol error) ...
    run(&mut a, &mut b);
    // ... and once irrevocably committed reports the one over the limit as must-fail.
    let must_fail: Vec<u64> = b
        .events
        .iter()
        .filter_map(|e| match e {
            Event::HtlcMustFail { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(must_fail, vec![2]);
    b.events
        .retain(|e| !matches!(e, Event::HtlcMustFail { .. }));
    b.ch.fail_htlc(2, vec![0x10, 0x07]).unwrap();
    fulfill_received(&mut b);
    run(&mut a, &mut b);
    assert!(a
        .events
        .iter()
        .any(|e| matches!(e, Event::HtlcFailed { id: 2, .. })));
    let (a_us, _) = a.ch.balances_msat().unwrap();
    assert_eq!(a_us, FUNDING_SAT * 1000 - PUSH_MSAT - 2_000_000);
    check_mirror(&a, &b);
}

#[test]
fn dust_exposure_limits_feerate_increases_we_send() {
    let (mut a, mut b) = open_pair_with(82, dust_cfg(5_000_000), dust_cfg(1_000_000)).unwrap();
    // Four 1300-sat HTLCs: not dust at 1000 sat/kw.
    for n in 0..4u64 {
        a.ch.add_htlc(1_300_000, hash_of(&preimage(n)), 500 + n as u32, onion())
            .unwrap();
    }
    run(&mut a, &mut b);
    assert_eq!(
        b.events
            .iter()
            .filter(|e| matches!(e, Event::HtlcReceived { .. }))
            .count(),
        4
    );
    // At 2000 sat/kw they are trimmed (threshold 546 + 1326): 5_200_000 msat > limit.
    let before = a.ch.state().clone();
    let err = a.ch.update_fee(2000).unwrap_err();
    assert!(matches!(err, ChannelError::Command(ref e) if e.contains("dust exposure")));
    assert_eq!(a.ch.state(), &before);
    // At 1050 sat/kw (thresholds 1242 / 1284 sat) they are not: accepted.
    a.ch.update_fee(1050).unwrap();
    run(&mut a, &mut b);
    assert_eq!(
        b.ch.state()
            .local_commit
            .as_ref()
            .unwrap()
            .spec
            .feerate_per_kw,
        1050
    );
    // Received: an increase that puts the receiver over its own limit is accepted
    // (documented choice; BOLT 2 only says MAY fail the channel).
    let m = fulmen_wire::msgs::UpdateFee {
        channel_id: b.ch.channel_id(),
        feerate_per_kw: 2000,
        extra_tlvs: Default::default(),
    };
    b.ch.handle_message(&Message::UpdateFee(m)).unwrap();
    assert!(b.ch.is_connected());
}
