//! An opening whose funding never confirms times out for the opener too ([harden] defect
//! 4): a funding transaction refused by the chain (its coin went to another opening) must
//! not leave the channel waiting for ever. Nothing is broadcast; the node takes the coins
//! back.
//!
//! Must never: depend on timing or an unseeded RNG.

use fulmen_channel::machine::{ChannelConfig, CloseReason, Event, Phase};
use fulmen_tests::pair::*;

#[test]
fn unconfirmed_funding_times_out_for_the_opener() {
    let (mut p, _tx) = open_funded(
        41,
        ChannelConfig::default(),
        ChannelConfig::default(),
        funding_tx,
    )
    .unwrap();
    assert_eq!(p.a.ch.state().phase, Phase::AwaitingReady);
    // Created at height 100: still waiting 2015 blocks later.
    p.a.ch.handle_block(2115).unwrap();
    assert_eq!(p.a.ch.state().phase, Phase::AwaitingReady);
    p.a.ch.handle_block(2116).unwrap();
    p.a.persist();
    assert_eq!(p.a.ch.state().phase, Phase::Closed);
    let timeout = CloseReason::FundingTimeout {
        created_height: 100,
        height: 2116,
    };
    assert!(p.a.events.contains(&Event::Closed {
        reason: timeout.clone()
    }));
    assert!(p.a.ch.poll_broadcast().is_none());
    assert!(p.a.outgoing().is_empty());
    p.a.assert_restores();
}
