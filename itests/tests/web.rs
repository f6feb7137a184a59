//! The web page in a real browser: `fulmen net up --nodes 3 --web` (alice–bob–carol), then
//! headless Chromium (Debian's `chromium`, driven over the DevTools protocol by
//! `fulmen_itests::browser`) opens the page and must show 3 nodes and 2 channels with their
//! balances; the test pays an invoice from the page (alice pays carol 5,000 sat through
//! bob: the form creates the invoice on carol and pays it from alice), sees the payment
//! listed as succeeded with its route alice → bob → carol, and sees the moved balances on
//! the page — the same figures the CLI gives. A payment larger than any channel shows the
//! daemon's error message on the page. A mine action moves the height shown. A screenshot
//! is saved under the test's temporary directory. (The README's picture comes from the
//! ignored `readme_screenshot_of_a_five_node_network`, run by hand.)
//!
//! A second test drives the other actions from the page: keysend, open + mine, force close
//! from the detail panel (outputs counting down), and a breach punished by the peer.
//!
//! The server's own state (`/api/state`) is cross-checked too, so a page that shows what the
//! server does not say fails. Conditions are polled with deadlines; the network (and with
//! it the web server) is stopped on drop with `net down`, the browser is killed on drop.

use std::time::Duration;

use fulmen_itests::browser::Browser;
use fulmen_itests::json_str as s;
use fulmen_itests::net::TestNet;
use fulmen_itests::{fulmen, wait_until, CliOutput};
use serde_json::Value;

/// How long a condition may take to hold.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A network from `net up --web` (`net down` on drop) and its page's URL.
struct Net {
    net: TestNet,
    url: String,
}

impl Net {
    fn up(nodes: usize, extra: &[&str]) -> Net {
        let n = nodes.to_string();
        let mut args = vec!["--nodes", &n, "--db-sync", "normal", "--web"];
        args.extend_from_slice(extra);
        let net = TestNet::up(&args);
        let url = s(&net.summary()["web"]);
        assert!(url.starts_with("http://127.0.0.1:"), "web url {url}");
        Net { net, url }
    }

    fn cli(&self, node: &str, args: &[&str]) -> CliOutput {
        self.net.cli(node, args)
    }

    /// A node's balance in its channels, msat (HTLCs excluded).
    fn local_msat(&self, node: &str) -> u64 {
        let v = self.cli(node, &["balance"]).ok();
        v["channels_local_msat"]
            .as_u64()
            .expect("channels_local_msat")
    }
}

/// `document.querySelectorAll(sel).length`.
fn count(b: &mut Browser, sel: &str) -> u64 {
    b.eval(&format!("document.querySelectorAll({sel:?}).length"))
        .as_u64()
        .expect("count")
}

/// The sat figure shown in `.node-card[data-name=NAME] CLASS` (digits only).
fn shown_sat(b: &mut Browser, name: &str, class: &str) -> Option<u64> {
    let text = b.eval(&format!(
        "(document.querySelector('.node-card[data-name=\"{name}\"] .{class}') || {{}}).textContent || ''"
    ));
    let digits: String = text
        .as_str()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Sets a form field and tells the page it changed.
fn set_field(b: &mut Browser, id: &str, value: &str) {
    b.eval(&format!(
        "(() => {{ const e = document.getElementById({id:?}); e.value = {value:?}; \
         e.dispatchEvent(new Event('input', {{bubbles: true}})); \
         e.dispatchEvent(new Event('change', {{bubbles: true}})); return e.value; }})()"
    ));
}

fn click(b: &mut Browser, id: &str) {
    b.eval(&format!("document.getElementById({id:?}).click(), true"));
}

/// The server's snapshot, as the page gets it.
fn server_state(b: &mut Browser) -> Value {
    b.eval("fetch('/api/state').then(r => r.json())")
}

#[test]
fn the_page_shows_the_network_and_pays_an_invoice() {
    let net = Net::up(3, &[]);
    let mut b = Browser::start(1280, 800);
    b.navigate(&net.url);
    b.wait_for(
        "the first snapshot drawn",
        "document.body.dataset.ready === '1'",
        TIMEOUT,
    );

    // 3 nodes and 2 channels, drawn and listed.
    b.wait_for(
        "3 nodes and 2 active channels",
        "document.querySelectorAll('#graph g.node').length === 3 && \
         document.querySelectorAll('#graph g.channel[data-state=\"active\"]').length === 2",
        TIMEOUT,
    );
    assert_eq!(count(&mut b, "#nodes .node-card"), 3);
    let state = server_state(&mut b);
    assert_eq!(state["nodes"].as_array().map(Vec::len), Some(3));
    assert_eq!(state["channels"].as_array().map(Vec::len), Some(2));
    let height = state["chain"]["height"].as_u64().expect("height");
    let shown_height = b.eval("document.getElementById('height').textContent");
    assert_eq!(
        shown_height.as_str().map(str::trim),
        Some(height.to_string().as_str())
    );

    // Balances on the page are the daemons' balances.
    let alice_before = net.local_msat("alice");
    let carol_before = net.local_msat("carol");
    assert_eq!(
        shown_sat(&mut b, "alice", "inchannel"),
        Some(alice_before / 1000)
    );
    assert_eq!(
        shown_sat(&mut b, "carol", "inchannel"),
        Some(carol_before / 1000)
    );

    // Pay an invoice from the page: carol's invoice of 5,000 sat, paid by alice via bob.
    set_field(&mut b, "pay-from", "alice");
    set_field(&mut b, "pay-to", "carol");
    set_field(&mut b, "pay-amount", "5000");
    click(&mut b, "pay-submit");
    let hops = b.wait_for(
        "the payment listed as succeeded",
        "(() => { const p = (window.fulmen.state.payments || []).find(p => p.from === 'alice' \
         && p.to === 'carol' && p.status === 'succeeded'); \
         return p && document.querySelector('#payments .payment[data-status=\"succeeded\"]') \
         ? p.hops : null; })()",
        TIMEOUT,
    );
    assert_eq!(hops, serde_json::json!(["alice", "bob", "carol"]));
    let result = b.eval("document.getElementById('action-result').textContent");
    assert!(
        !result.as_str().unwrap_or("").trim().is_empty(),
        "the page says what the action did"
    );

    // The moved balances: exactly 5,000 sat more for carol; alice also paid bob's fee.
    let carol_after = net.local_msat("carol");
    let alice_after = net.local_msat("alice");
    assert_eq!(carol_after, carol_before + 5_000_000);
    let fee = 1_000 + 5_000_000 * 100 / 1_000_000;
    assert_eq!(alice_after, alice_before - 5_000_000 - fee);
    wait_until("the page to show the new balances", TIMEOUT, || {
        (shown_sat(&mut b, "carol", "inchannel") == Some(carol_after / 1000)
            && shown_sat(&mut b, "alice", "inchannel") == Some(alice_after / 1000))
        .then_some(())
    });

    // A payment no channel can carry: the daemon's message is shown.
    set_field(&mut b, "pay-amount", "5000000");
    click(&mut b, "pay-submit");
    let err = b.wait_for(
        "the daemon's error on the page",
        "(document.getElementById('action-error').textContent || '').trim() || null",
        TIMEOUT,
    );
    eprintln!("error shown: {err}");

    // Mine from the page: the height on the page follows the chain.
    set_field(&mut b, "mine-blocks", "3");
    click(&mut b, "mine-submit");
    let want = (height + 3).to_string();
    b.wait_for(
        "the new height",
        &format!("document.getElementById('height').textContent.trim() === {want:?}"),
        TIMEOUT,
    );

    let shot = net.net.root().join("web.png");
    b.screenshot(&shot);
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    eprintln!("screenshot: {} ({} bytes)", shot.display(), png.len());
}

/// The README's picture: a 5-node ring with a few payments made, one channel force-closed
/// and counting down its CSV delay, and a payment from the page lighting up its path.
/// Run by hand: `FULMEN_WEB_SCREENSHOT=docs/web.png cargo test -p fulmen-itests --test web
/// -- --ignored readme`.
#[test]
#[ignore = "makes the README screenshot; run by hand"]
fn readme_screenshot_of_a_five_node_network() {
    let net = Net::up(5, &["--topology", "ring"]);
    for (from, to, sat) in [("alice", "carol", "30000"), ("bob", "erin", "12000")] {
        let inv = net
            .cli(
                to,
                &["invoice", &format!("{sat}000"), "--description", "readme"],
            )
            .ok();
        net.cli(from, &["pay", &s(&inv["bolt11"])]).ok();
    }
    // erin–alice (the ring's closing channel, opened by erin): force-closed by erin.
    let channels = net.cli("erin", &["channels"]).ok();
    let erin_alice = channels["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|c| c["initiator"] == true)
        .map(|c| s(&c["channel_id"]))
        .expect("erin's channel");
    net.cli("erin", &["close", &erin_alice, "--force"]).ok();
    fulmen(&["net", "mine", "1", "--dir", &net.net.dir_str()]).ok();

    let mut b = Browser::start(1280, 800);
    b.navigate(&net.url);
    b.wait_for(
        "a closing channel with blocks left",
        "(window.fulmen.state.channels || []).some(c => c.blocks_left)",
        TIMEOUT,
    );
    set_field(&mut b, "pay-from", "alice");
    set_field(&mut b, "pay-to", "dave");
    set_field(&mut b, "pay-amount", "20000");
    click(&mut b, "pay-submit");
    b.wait_for(
        "the payment's path lit",
        "document.querySelectorAll('#anim path.hop-lit.ok').length > 0",
        TIMEOUT,
    );
    let shot = net.net.root().join("web.png");
    b.screenshot(&shot);
    if let Some(dest) = std::env::var_os("FULMEN_WEB_SCREENSHOT") {
        std::fs::copy(&shot, &dest).expect("copying the screenshot");
    }
}

/// Clicks the detail panel's `kind` button (`close`, `force`, `breach`) of `channel_id`
/// twice (the second click confirms), re-finding it each time (the panel is redrawn).
fn click_channel_button(b: &mut Browser, kind: &str, channel_id: &str) {
    let sel = format!("#detail button.ch-{kind}[data-channel-id=\"{channel_id}\"]");
    for _ in 0..2 {
        b.wait_for(
            &format!("the {kind} button of {channel_id}"),
            &format!("document.querySelector({sel:?}) !== null"),
            TIMEOUT,
        );
        b.eval(&format!("document.querySelector({sel:?}).click(), true"));
    }
}

/// The snapshot's channel between `a` and `b` (either way round), as JSON.
fn channel_between(b: &mut Browser, x: &str, y: &str, extra: &str) -> Value {
    b.wait_for(
        &format!("a channel {x}–{y} where {extra}"),
        &format!(
            "(window.fulmen.state.channels || []).find(c => ((c.a === '{x}' && c.b === '{y}') \
             || (c.a === '{y}' && c.b === '{x}')) && ({extra})) || null"
        ),
        TIMEOUT,
    )
}

/// The other actions, each from the page: keysend alice → carol; alice opens a channel to
/// carol and the page's mine button confirms it; alice force-closes it from her detail panel
/// and the page shows its outputs counting down; alice (a `--dev` node) broadcasts a revoked
/// commitment of alice–bob from the panel, and after blocks mined from the page the channel
/// is drawn as a punished breach, with bob's justice confirmed.
#[test]
fn keysend_open_force_close_and_breach_from_the_page() {
    let net = Net::up(3, &[]);
    let mut b = Browser::start(1280, 800);
    b.navigate(&net.url);
    b.wait_for(
        "2 active channels",
        "document.querySelectorAll('#graph g.channel[data-state=\"active\"]').length === 2",
        TIMEOUT,
    );

    // Keysend over two hops.
    set_field(&mut b, "keysend-from", "alice");
    set_field(&mut b, "keysend-to", "carol");
    set_field(&mut b, "keysend-amount", "3000");
    click(&mut b, "keysend-submit");
    b.wait_for(
        "the keysend listed as succeeded",
        "(window.fulmen.state.payments || []).some(p => p.from === 'alice' && p.to === 'carol' \
         && p.amount_msat === 3000000 && p.status === 'succeeded')",
        TIMEOUT,
    );

    // Open alice–carol from the page, confirm it with the page's mine button.
    set_field(&mut b, "open-from", "alice");
    set_field(&mut b, "open-to", "carol");
    set_field(&mut b, "open-capacity", "400000");
    set_field(&mut b, "open-push", "0");
    click(&mut b, "open-submit");
    let opened = channel_between(&mut b, "alice", "carol", "true");
    let new_id = s(&opened["channel_id"]);
    click(&mut b, "mine-6");
    channel_between(&mut b, "alice", "carol", "c.state === 'active'");
    b.wait_for(
        "3 active channels drawn",
        "document.querySelectorAll('#graph g.channel[data-state=\"active\"]').length === 3",
        TIMEOUT,
    );

    // Force close it from alice's detail panel; one block later its outputs wait.
    b.eval("document.querySelector('#nodes .node-card[data-name=\"alice\"]').click(), true");
    b.wait_for(
        "alice's detail panel",
        "!document.getElementById('detail').hidden && \
         document.querySelectorAll('#detail table.channels tr[data-channel-id]').length >= 2",
        TIMEOUT,
    );
    click_channel_button(&mut b, "force", &new_id);
    b.wait_for(
        "the force close in the mempool",
        "window.fulmen.state.chain.mempool > 0",
        TIMEOUT,
    );
    click(&mut b, "mine-1");
    let closing = channel_between(
        &mut b,
        "alice",
        "carol",
        &format!("c.channel_id === '{new_id}' && c.blocks_left > 0"),
    );
    assert!(
        s(&closing["closing_kind"]).starts_with("local_commitment")
            || s(&closing["closing_kind"]).starts_with("remote_commitment"),
        "{closing}"
    );
    b.wait_for(
        "the closing drawn with its blocks left",
        &format!(
            "(document.querySelector('#graph g.channel[data-channel-id=\"{new_id}\"] text.note') \
             || {{}}).textContent || ''"
        ),
        TIMEOUT,
    );

    // Breach alice–bob from the panel: bob punishes it.
    let ab = channel_between(&mut b, "alice", "bob", "c.state === 'active'");
    let ab_id = s(&ab["channel_id"]);
    click_channel_button(&mut b, "breach", &ab_id);
    b.wait_for(
        "the revoked commitment in the mempool",
        "window.fulmen.state.chain.mempool > 0",
        TIMEOUT,
    );
    click(&mut b, "mine-1");
    b.wait_for(
        "bob's justice in the mempool",
        "window.fulmen.state.chain.mempool > 0",
        TIMEOUT,
    );
    click(&mut b, "mine-6");
    channel_between(
        &mut b,
        "alice",
        "bob",
        "(c.closing_kind || '').startsWith('revoked_remote_commitment')",
    );
    b.wait_for(
        "the breach drawn",
        &format!("document.querySelector('#graph g.channel.breach[data-channel-id=\"{ab_id}\"]') !== null"),
        TIMEOUT,
    );
    // bob's side of the story, from the CLI: the revoked commitment was punished.
    let bob = net.cli("bob", &["channels"]).ok();
    let punished = bob["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|c| s(&c["channel_id"]) == ab_id)
        .expect("bob's channel");
    assert!(
        s(&punished["closing"]["kind"]).starts_with("revoked_remote_commitment"),
        "{punished}"
    );
    let shot = net.net.root().join("web-breach.png");
    b.screenshot(&shot);
}
