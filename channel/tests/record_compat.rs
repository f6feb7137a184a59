//! Record format compatibility: channel logs stored by format version 1 (fixtures in
//! `tests/data`, written by the version 1 encoder) still decode and restore after the
//! format moved on — a restarted node must load its old database.
//!
//! Must never: regenerate the fixtures with the current encoder (they would prove nothing).

use fulmen_channel::machine::{Channel, ChannelConfig, CloseReason, Phase, Record, SeedKeySource};

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
            assert!(bytes.starts_with(b"{\"v\":2,"));
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
