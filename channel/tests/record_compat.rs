//! Record format compatibility: channel logs stored by format version 1 and 2 and monitor
//! logs stored by monitor format version 3 (fixtures in `tests/data`, written by those
//! encoders: JSON) still decode and restore after the format moved on (to binary) — a
//! restarted node must load its old database.
//!
//! Must never: regenerate the fixtures with the current encoder (they would prove nothing).

use fulmen_channel::machine::codec::RECORD_FORMAT_VERSION;
use fulmen_channel::machine::{Channel, ChannelConfig, CloseReason, Phase, Record, SeedKeySource};
use fulmen_channel::monitor::{ChannelMonitor, MonitorRecord, MONITOR_FORMAT_VERSION};

fn decode_log(text: &str) -> Vec<Record> {
    text.lines()
        .map(|l| Record::decode(l.as_bytes()).unwrap_or_else(|e| panic!("{e}: {l:.120}")))
        .collect()
}

fn restore(seed: u8, log: &[Record]) -> Channel {
    Channel::restore(
        &SeedKeySource::new([seed; 32]),
        ChannelConfig::default(),
        log,
    )
    .expect("a version 1 log replays")
}

/// Re-encoded (as the current version) the records decode to themselves, and replay to the
/// same state.
fn survives_reencoding(seed: u8, log: &[Record], ch: &Channel) {
    let again: Vec<Record> = log
        .iter()
        .map(|r| {
            let bytes = r.encode();
            assert_eq!(
                bytes.first().map(|v| u32::from(*v)),
                Some(RECORD_FORMAT_VERSION)
            );
            Record::decode(&bytes).unwrap()
        })
        .collect();
    assert_eq!(again, log);
    assert_eq!(restore(seed, &again).state(), ch.state());
}

#[test]
fn version_1_mutual_close_logs_restore() {
    for (seed, text, ours) in [
        (
            1u8,
            include_str!("data/v1_mutual_close_opener.jsonl"),
            896_500_000u64,
        ),
        (
            2,
            include_str!("data/v1_mutual_close_acceptor.jsonl"),
            103_500_000,
        ),
    ] {
        let log = decode_log(text);
        let ch = restore(seed, &log);
        let st = ch.state();
        assert_eq!(st.phase, Phase::Closed);
        assert_eq!(
            ch.close_reason(),
            Some(&CloseReason::Legacy("mutual close, fee 1263 sat".into()))
        );
        assert_eq!(
            ch.close_reason().unwrap().to_string(),
            "mutual close, fee 1263 sat"
        );
        // Confirmed under version 1: the height is kept, no short channel id exists.
        assert_eq!(st.funding_confirmed_height, Some(110));
        assert_eq!(ch.short_channel_id(), None);
        let (us, them) = ch.balances_msat().unwrap();
        assert_eq!((us, us + them), (ours, 1_000_000_000));
        assert_eq!(st.local_commit.as_ref().unwrap().spec.feerate_per_kw, 1500);
        survives_reencoding(seed, &log, &ch);
    }
}

#[test]
fn version_1_failed_channel_log_restores() {
    let log = decode_log(include_str!("data/v1_protocol_failure_acceptor.jsonl"));
    let ch = restore(2, &log);
    assert_eq!(ch.state().phase, Phase::Closed);
    assert_eq!(
        ch.close_reason(),
        Some(&CloseReason::Legacy(
            "feerate_per_kw 100000 insane (estimate 1000)".into()
        ))
    );
    assert_eq!(ch.balances_msat(), Some((100_000_000, 897_000_000)));
    let spec = &ch.state().local_commit.as_ref().unwrap().spec;
    assert_eq!(spec.offered_by_them.len(), 1, "the HTLC in flight is kept");
    // The restored, closed channel can still sign its latest commitment for the monitor.
    assert!(ch.signed_local_commitment().is_ok());
    survives_reencoding(2, &log, &ch);
}

/// The channel seeds of the `v2_*` / `v3_*` fixtures' two nodes (see `data/README.md`).
const ALICE_SEED: [u8; 32] = [
    40, 11, 44, 180, 170, 103, 79, 91, 199, 255, 116, 161, 0, 55, 180, 197, 37, 183, 27, 126, 129,
    86, 237, 206, 230, 138, 71, 112, 35, 43, 242, 86,
];
const BOB_SEED: [u8; 32] = [
    188, 118, 117, 34, 77, 253, 239, 82, 168, 102, 89, 228, 40, 241, 118, 1, 92, 14, 150, 197, 43,
    164, 217, 18, 188, 142, 7, 36, 16, 111, 100, 49,
];

#[test]
fn version_2_channel_logs_restore_and_survive_the_binary_format() {
    for (seed, text, ours) in [
        (
            ALICE_SEED,
            include_str!("data/v2_alice_channel.jsonl"),
            991_994_000u64,
        ),
        (
            BOB_SEED,
            include_str!("data/v2_bob_channel.jsonl"),
            8_006_000,
        ),
    ] {
        let log = decode_log(text);
        assert!(matches!(log.first(), Some(Record::Snapshot(_))));
        let keys = SeedKeySource::new(seed);
        let ch = Channel::restore(&keys, ChannelConfig::default(), &log).expect("a v2 log replays");
        assert_eq!(ch.state().phase, Phase::Normal);
        let (us, them) = ch.balances_msat().unwrap();
        assert_eq!((us, us + them), (ours, 999_997_000 + 3_000), "{us} {them}");
        let again: Vec<Record> = log
            .iter()
            .map(|r| Record::decode(&r.encode()).unwrap())
            .collect();
        assert_eq!(again, log);
        let ch2 = Channel::restore(&keys, ChannelConfig::default(), &again).unwrap();
        assert_eq!(ch2.state(), ch.state());
        // The binary form is far smaller than the JSON it replaces.
        let binary: usize = log.iter().map(|r| r.encode().len()).sum();
        assert!(binary * 2 < text.len(), "{binary} vs {}", text.len());
    }
}

#[test]
fn version_3_monitor_logs_restore_and_survive_the_binary_format() {
    for (seed, text) in [
        (ALICE_SEED, include_str!("data/v3_alice_monitor.jsonl")),
        (BOB_SEED, include_str!("data/v3_bob_monitor.jsonl")),
    ] {
        let log: Vec<MonitorRecord> = text
            .lines()
            .map(|l| {
                MonitorRecord::decode(l.as_bytes()).unwrap_or_else(|e| panic!("{e}: {l:.120}"))
            })
            .collect();
        assert!(matches!(log.first(), Some(MonitorRecord::Snapshot(_))));
        assert!(log
            .iter()
            .any(|r| matches!(r, MonitorRecord::LocalCommitment { .. })));
        let keys = SeedKeySource::new(seed);
        let m = ChannelMonitor::restore(&keys, &log).expect("a v3 monitor log replays");
        let again: Vec<MonitorRecord> = log
            .iter()
            .map(|r| {
                let bytes = r.encode();
                assert_eq!(
                    bytes.first().map(|v| u32::from(*v)),
                    Some(MONITOR_FORMAT_VERSION)
                );
                MonitorRecord::decode(&bytes).unwrap()
            })
            .collect();
        assert_eq!(again, log);
        let m2 = ChannelMonitor::restore(&keys, &again).unwrap();
        assert_eq!(m2.snapshot(), m.snapshot());
        let binary: usize = log.iter().map(|r| r.encode().len()).sum();
        assert!(binary * 2 < text.len(), "{binary} vs {}", text.len());
    }
}

/// The binary forms (channel format 3, monitor format 4) are pinned byte for byte: the
/// `v3_*_channel.hex` / `v4_*_monitor.hex` fixtures (one record per line, written by the
/// first binary encoder from the JSON fixtures above) decode to the same records as their
/// JSON lines and re-encode to the same bytes. A change of a field's or variant's order, or an
/// added field, fails here: the binary form names nothing, so such a change needs a new
/// version.
#[test]
fn the_binary_formats_are_pinned() {
    for (json, hex) in [
        (
            include_str!("data/v2_alice_channel.jsonl"),
            include_str!("data/v3_alice_channel.hex"),
        ),
        (
            include_str!("data/v2_bob_channel.jsonl"),
            include_str!("data/v3_bob_channel.hex"),
        ),
    ] {
        assert_pinned(json, hex, Record::decode, Record::encode);
    }
    for (json, hex) in [
        (
            include_str!("data/v3_alice_monitor.jsonl"),
            include_str!("data/v4_alice_monitor.hex"),
        ),
        (
            include_str!("data/v3_bob_monitor.jsonl"),
            include_str!("data/v4_bob_monitor.hex"),
        ),
    ] {
        assert_pinned(json, hex, MonitorRecord::decode, MonitorRecord::encode);
    }
}

/// Each line of `hex` decodes to the record of the same line of `json` and encodes back to
/// the same bytes.
fn assert_pinned<R: PartialEq + std::fmt::Debug, E: std::fmt::Debug>(
    json: &str,
    hex: &str,
    decode: fn(&[u8]) -> Result<R, E>,
    encode: fn(&R) -> Vec<u8>,
) {
    assert_eq!(json.lines().count(), hex.lines().count());
    for (j, h) in json.lines().zip(hex.lines()) {
        let bytes = hex::decode(h).expect("hex");
        let r = decode(&bytes).unwrap();
        assert_eq!(r, decode(j.as_bytes()).unwrap());
        assert_eq!(encode(&r), bytes);
    }
}
