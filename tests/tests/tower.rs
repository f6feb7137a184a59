//! Watchtowers through the manager, in-process (`fulmen_tests::network`): a third node runs
//! as a tower (`ManagerConfig::tower`); bob registers it with `Command::TowerAdd`; every
//! revocation of his channel with alice becomes a sealed backup that the tower acknowledges
//! only once it is durable. Alice then breaches while bob sees no block: the tower alone
//! finds the breach, broadcasts the justice transaction, and bob finds the channel's funds
//! in his wallet when he catches up. Also: a tower restarted from its durable records still
//! punishes; backups queued while the tower is unreachable survive a restart of bob and are
//! delivered once the tower is back.
//!
//! Must never: use an unseeded RNG or the wall clock.

use bitcoin::OutPoint;
use fulmen_manager::api::TowerInfoResult;
use fulmen_manager::{Command, Response};
use fulmen_tests::network::Network;

const ALICE: usize = 0;
const BOB: usize = 1;
const TOWER: usize = 2;
const CAPACITY_SAT: u64 = 1_000_000;

struct Setup {
    net: Network,
    id: [u8; 32],
    funding: OutPoint,
}

/// alice–bob channel (alice holds everything), a tower node, bob registered with it.
fn setup(seed: u64) -> Setup {
    let mut net = Network::with_towers(seed, &["alice", "bob", "tower"], &["tower"]);
    net.fund(ALICE, 3_000_000);
    let id = net.open_channel(ALICE, BOB, CAPACITY_SAT, 0);
    let funding = net
        .channel(ALICE, &id)
        .and_then(|e| e.ch.state().funding_outpoint)
        .expect("funded");
    let cmd = Command::TowerAdd {
        node_id: net.nodes[TOWER].id,
        address: net.nodes[TOWER].address.clone(),
    };
    match net.call(BOB, cmd) {
        Ok(Response::TowerAdded(t)) => assert_eq!(t.node_id, net.nodes[TOWER].id.to_string()),
        other => panic!("tower add: {other:?}"),
    }
    net.run_until_quiet();
    assert!(net.connected(BOB, TOWER), "bob dialled his tower");
    Setup { net, id, funding }
}

fn tower_info(net: &mut Network, k: usize) -> TowerInfoResult {
    match net.call(k, Command::TowerInfo) {
        Ok(Response::TowerInfo(i)) => i,
        other => panic!("tower info: {other:?}"),
    }
}

impl Setup {
    /// alice pays bob `n` times.
    fn payments(&mut self, n: usize) {
        for _ in 0..n {
            let inv = self.net.invoice(BOB, 50_000_000, "p");
            self.net.pay_ok(ALICE, &inv.bolt11);
        }
        self.net.run_until_quiet();
    }

    /// Alice broadcasts her revoked commitment 0 (she held everything); it is mined
    /// without any node but the tower seeing the block; the tower broadcasts the justice
    /// transaction, which is mined too. Returns the justice txid's presence check.
    fn breach_seen_by_the_tower_only(&mut self) {
        let breach = self.net.dev_breach(ALICE, &self.id, Some(0));
        let (ha, hb) = (
            self.net.nodes[ALICE].m.height(),
            self.net.nodes[BOB].m.height(),
        );
        let t = u32::try_from(self.net.clock.now()).unwrap_or(u32::MAX);
        let block = self.net.chain.mine(1, None, t).pop().expect("a block");
        assert!(block
            .txdata
            .iter()
            .any(|tx| tx.compute_txid().to_string() == breach.txid));
        self.net.sync_chain_of(TOWER);
        let info = tower_info(&mut self.net, TOWER);
        let server = info.server.expect("a tower node");
        assert_eq!(server.justice_broadcasts, 1, "the tower saw the breach");
        let block = self.net.chain.mine(1, None, t + 1).pop().expect("a block");
        let justice = block
            .txdata
            .iter()
            .find(|tx| {
                tx.input
                    .iter()
                    .any(|i| i.previous_output.txid.to_string() == breach.txid)
            })
            .expect("the tower's justice transaction confirmed");
        assert!(justice
            .output
            .iter()
            .all(|o| self.net.nodes[BOB].m.wallet().is_mine(&o.script_pubkey)));
        // Neither alice nor bob saw any of this.
        assert_eq!(self.net.nodes[ALICE].m.height(), ha);
        assert_eq!(self.net.nodes[BOB].m.height(), hb);
    }

    /// Everyone catches up: the whole capacity, less fees, is in bob's wallet.
    fn bob_has_the_funds(&mut self) {
        self.net.mine(3);
        self.net.run_until_quiet();
        let s = self.net.settlement(self.funding);
        assert!(s.unresolved.is_empty(), "unresolved: {:?}", s.unresolved);
        assert_eq!(s.total(), CAPACITY_SAT);
        assert_eq!(s.to_wallet.get(&ALICE), None, "alice keeps nothing");
        assert_eq!(
            s.to_wallet.get(&BOB).copied().unwrap_or(0),
            CAPACITY_SAT - s.fees
        );
        let d = self.net.balance_detail(BOB);
        assert_eq!(d.in_limbo_sat, 0, "bob: nothing in limbo: {d:#?}");
    }
}

#[test]
fn backups_are_acknowledged_and_the_tower_punishes_a_breach_bob_did_not_see() {
    let mut s = setup(31);
    s.payments(4);
    let info = tower_info(&mut s.net, BOB);
    assert_eq!(info.towers.len(), 1);
    let t = &info.towers[0];
    assert!(t.connected && t.session, "{t:?}");
    assert!(info.backups_acknowledged >= 4, "{info:?}");
    assert_eq!(info.backups_pending, 0);
    assert_eq!(info.server, None, "bob is no tower");
    let server = tower_info(&mut s.net, TOWER).server.expect("tower");
    assert_eq!(server.clients, 1);
    assert_eq!(server.stored_blobs as u64, info.backups_acknowledged);
    // What bob's tower knows is durable on both sides.
    assert!(s.net.nodes[BOB].store.durable().tower_queue.is_empty());
    assert_eq!(
        s.net.nodes[BOB].store.durable().towers[0].acked,
        info.backups_acknowledged
    );
    s.breach_seen_by_the_tower_only();
    s.bob_has_the_funds();
}

#[test]
fn a_tower_restarted_from_its_records_still_punishes() {
    let mut s = setup(32);
    s.payments(3);
    let acked = tower_info(&mut s.net, BOB).backups_acknowledged;
    assert!(acked >= 3);
    s.net.restart(TOWER, false);
    s.net.run_until_quiet();
    let server = tower_info(&mut s.net, TOWER).server.expect("tower");
    assert_eq!(
        server.stored_blobs as u64, acked,
        "restored from its records"
    );
    assert!(s.net.connected(BOB, TOWER), "bob redialled the tower");
    s.breach_seen_by_the_tower_only();
    s.bob_has_the_funds();
}

#[test]
fn backups_queued_while_the_tower_is_away_survive_a_restart_and_are_delivered() {
    let mut s = setup(33);
    s.net.partition(BOB, TOWER);
    s.payments(3);
    let info = tower_info(&mut s.net, BOB);
    assert!(!info.towers[0].connected);
    assert_eq!(info.backups_acknowledged, 0);
    assert!(info.backups_pending >= 3, "{info:?}");
    let queued = s.net.nodes[BOB].store.durable().tower_queue.len();
    assert_eq!(queued, info.backups_pending, "the queue is durable");
    s.net.restart(BOB, false);
    s.net.run_until_quiet();
    assert_eq!(
        tower_info(&mut s.net, BOB).backups_pending,
        queued,
        "still queued after the restart"
    );
    s.net.heal(BOB, TOWER);
    s.net.run_until_quiet();
    let info = tower_info(&mut s.net, BOB);
    assert_eq!(info.backups_pending, 0, "{info:?}");
    assert_eq!(info.backups_acknowledged, queued as u64);
    assert!(s.net.nodes[BOB].store.durable().tower_queue.is_empty());
    let server = tower_info(&mut s.net, TOWER).server.expect("tower");
    assert_eq!(server.stored_blobs, queued);
    s.breach_seen_by_the_tower_only();
    s.bob_has_the_funds();
}

/// The tower crashes at its next batch (a blob's record lost before it was durable, so its
/// `StoreAck` never left): bob redials, resends what is still queued, and in the end every
/// backup bob counts as acknowledged is in the tower's durable records.
#[test]
fn a_tower_crash_before_its_write_loses_no_acknowledged_backup() {
    let mut s = setup(34);
    s.payments(1);
    for _ in 0..3 {
        s.net.arm_crash(TOWER);
        s.payments(1);
    }
    s.net.disarm();
    s.net.run_until_quiet();
    assert!(s.net.nodes[TOWER].restarts >= 1, "the tower crashed");
    assert!(s.net.nodes[TOWER].lost_batches >= 1, "a batch was lost");
    let info = tower_info(&mut s.net, BOB);
    assert_eq!(info.backups_pending, 0, "{info:?}");
    let t = &info.towers[0];
    assert!(t.sent > t.acknowledged, "lost blobs were sent again: {t:?}");
    let durable = s.net.nodes[TOWER]
        .store
        .durable()
        .tower_records
        .iter()
        .filter(|r| matches!(r, fulmen_watchtower::TowerRecord::Stored { .. }))
        .count();
    assert_eq!(durable as u64, info.backups_acknowledged);
    s.breach_seen_by_the_tower_only();
    s.bob_has_the_funds();
}

/// A node that is not a tower ignores tower messages: bob's session never opens and his
/// backups stay queued.
#[test]
fn a_peer_that_is_no_tower_never_acknowledges() {
    let mut s = setup(35);
    let cmd = Command::TowerAdd {
        node_id: s.net.nodes[ALICE].id,
        address: s.net.nodes[ALICE].address.clone(),
    };
    assert!(matches!(s.net.call(BOB, cmd), Ok(Response::TowerAdded(_))));
    s.payments(2);
    let info = tower_info(&mut s.net, BOB);
    let alice = info
        .towers
        .iter()
        .find(|t| t.node_id == s.net.nodes[ALICE].id.to_string())
        .expect("alice listed");
    assert!(alice.connected && !alice.session, "{alice:?}");
    assert_eq!(alice.acknowledged, 0);
    assert!(alice.pending >= 2);
    assert_eq!(
        info.backups_pending, alice.pending,
        "the real tower acknowledged them all"
    );
}
