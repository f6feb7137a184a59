//! End-to-end test of a watchtower with real `fulmen` daemons, driven only through the CLI:
//! alice and bob (`--dev`) and a tower (`node run --tower`); bob registers the tower
//! (`tower add`), alice pays him (each revocation becomes a backup the tower acknowledges,
//! `tower info`), bob stops, alice broadcasts a revoked commitment (`dev broadcast-revoked`),
//! the tower alone punishes it, and bob, restarted after `to_self_delay`, finds the channel's
//! funds in his wallet. The same with the tower restarted between the backups and the breach
//! (it rebuilds itself from its records), and with the tower stopped when the breach is mined
//! and restarted six blocks later, inside the dispute window (it catches up on the blocks it
//! missed and still finds the breach).

use std::time::Instant;

use bitcoin::consensus::encode;
use bitcoin::Transaction;
use fulmen_itests::node::NodeDaemon;
use fulmen_itests::{hex_decode, json_str as s, json_u64 as u};
use fulmen_itests::{wait_until, ChainDaemon, DAEMON_TIMEOUT};
use serde_json::Value;

const FUND_SAT: u64 = 2_000_000;
const CAP: u64 = 1_000_000;
/// `to_self_delay` of the default channel config.
const DELAY: u64 = 144;

fn height(chain: &ChainDaemon) -> u64 {
    u(&chain.cli(&["info"]).ok()["height"])
}

fn mine(chain: &ChainDaemon, nodes: &[&NodeDaemon], n: u64) {
    chain.cli(&["mine", &n.to_string()]).ok();
    let h = height(chain);
    for node in nodes {
        node.wait_height(h);
    }
}

fn tx(chain: &ChainDaemon, txid: &str) -> Transaction {
    let info = chain.cli(&["tx", txid]).ok();
    encode::deserialize(&hex_decode(&s(&info["hex"]))).expect("transaction")
}

/// What happens to the tower around the breach.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TowerLife {
    /// Up all along.
    Up,
    /// Restarted after the backups were acknowledged, before the breach.
    RestartedBeforeBreach,
    /// Stopped when the breach is mined, restarted six blocks later.
    DownAtBreach,
}

#[test]
fn a_tower_punishes_a_breach_while_the_victim_is_stopped() {
    tower_punishes(TowerLife::Up);
}

#[test]
fn a_tower_restarted_between_backup_and_breach_still_punishes() {
    tower_punishes(TowerLife::RestartedBeforeBreach);
}

#[test]
fn a_tower_down_at_the_breach_and_back_inside_the_window_still_punishes() {
    tower_punishes(TowerLife::DownAtBreach);
}

fn tower_punishes(life: TowerLife) {
    let started = Instant::now();
    let chain = ChainDaemon::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let alice = NodeDaemon::start_with(dir.path(), "alice", chain.datadir(), &["--dev"]);
    let mut bob = NodeDaemon::start_with(dir.path(), "bob", chain.datadir(), &["--dev"]);
    let mut tower =
        NodeDaemon::start_with(dir.path(), "tower", chain.datadir(), &["--dev", "--tower"]);
    chain.cli(&["mine", "101"]).ok();
    let addr = s(&alice.ok(&["newaddress"])["address"]);
    chain.cli(&["fund", &addr, &FUND_SAT.to_string()]).ok();
    mine(&chain, &[&alice, &bob, &tower], 1);
    alice.ok(&["connect", &bob.uri()]);
    let opened = alice.ok(&["open", &bob.node_id(), &CAP.to_string()]);
    let id = s(&opened["channel_id"]);
    mine(&chain, &[&alice, &bob, &tower], 3);
    alice.wait_channel_state(&id, "active");
    bob.wait_channel_state(&id, "active");

    let added = bob.ok(&["tower", "add", &tower.uri()]);
    assert_eq!(added["node_id"], tower.node_id().as_str(), "{added}");
    wait_until("bob's tower session", DAEMON_TIMEOUT, || {
        let i = bob.ok(&["tower", "info"]);
        (i["towers"][0]["session"] == true).then_some(())
    });
    let bob_start = bob.onchain_sat();
    for _ in 0..2 {
        let inv = s(&bob.ok(&["invoice", "100000000"])["bolt11"]);
        let p = alice.ok(&["pay", &inv]);
        assert_eq!(p["status"], "succeeded", "{p}");
    }
    // Every revocation (the payments settle on after `pay` returns) backed up and
    // acknowledged: what bob counts is what the tower holds.
    wait_until("the backups acknowledged", DAEMON_TIMEOUT, || {
        let i = bob.ok(&["tower", "info"]);
        let t = tower.ok(&["tower", "info"]);
        assert_eq!(u(&t["server"]["clients"]), 1, "{t}");
        let acked = u(&i["backups_acknowledged"]);
        (acked >= 2 && u(&i["backups_pending"]) == 0 && u(&t["server"]["stored_blobs"]) == acked)
            .then_some(())
    });

    if life == TowerLife::RestartedBeforeBreach {
        assert_eq!(tower.stop(), Some(0));
        tower.restart();
        tower.wait_height(height(&chain));
    }

    // Bob goes away; alice cheats with the state where she held everything.
    assert_eq!(bob.stop(), Some(0));
    if life == TowerLife::DownAtBreach {
        assert_eq!(tower.stop(), Some(0));
    }
    let b = alice.ok(&["dev", "broadcast-revoked", &id]);
    let breach = s(&b["txid"]);
    if life == TowerLife::DownAtBreach {
        // Six blocks pass with nobody watching but the cheater.
        mine(&chain, &[&alice], 6);
        tower.restart();
        tower.wait_height(height(&chain));
    } else {
        mine(&chain, &[&alice, &tower], 1);
    }
    wait_until("the tower's justice broadcast", DAEMON_TIMEOUT, || {
        let t = tower.ok(&["tower", "info"]);
        (u(&t["server"]["justice_broadcasts"]) == 1).then_some(())
    });
    let breach_tx = tx(&chain, &breach);
    let spenders = || -> Vec<Value> {
        (0..breach_tx.output.len())
            .map(|vout| chain.cli(&["spender", &format!("{breach}:{vout}")]).ok())
            .filter(|sp| !sp.is_null())
            .collect()
    };
    // The tower's broadcast reaches the chain's mempool (asynchronously), then confirms.
    wait_until("the justice in the mempool", DAEMON_TIMEOUT, || {
        (!spenders().is_empty()).then_some(())
    });
    mine(&chain, &[&alice, &tower], 1);
    let justice = spenders();
    assert!(!justice.is_empty(), "the breach's outputs are spent");
    for sp in &justice {
        assert!(!sp["height"].is_null(), "the justice confirmed: {sp}");
    }
    // Past the dispute window: alice could have swept her to_local by now, had it not
    // been taken.
    mine(&chain, &[&alice, &tower], DELAY);
    bob.restart();
    bob.wait_height(height(&chain));
    let gain = wait_until(
        "bob's wallet to hold the channel's funds",
        DAEMON_TIMEOUT,
        || {
            let now = bob.onchain_sat();
            (now > bob_start + CAP * 98 / 100).then_some(now - bob_start)
        },
    );
    assert!(gain < CAP, "less the fees: {gain}");
    let c = bob
        .channels()
        .into_iter()
        .find(|c| c["channel_id"] == id.as_str())
        .expect("bob's channel");
    assert!(
        s(&c["closing"]["kind"]).starts_with("revoked_remote_commitment"),
        "{c:#}"
    );
    eprintln!(
        "tower punished ({life:?}): {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
