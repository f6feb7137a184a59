//! The payer's checks on an invoice before any HTLC is offered ([harden] defect 6(d)): an
//! invoice asking for a final CLTV that would lock our funds for more than
//! [`MAX_TOTAL_CLTV_DELTA`] blocks is refused.
//!
//! Must never: depend on timing or an unseeded RNG.

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use fulmen_channel::machine::{ChannelConfig, Entropy};
use fulmen_htlc::invoice::{create_invoice, InvoiceDescription, InvoiceParams};
use fulmen_htlc::{PaymentHash, PaymentSecret};
use fulmen_manager::{
    Command, Manager, ManagerConfig, NodeSecrets, Output, Stored, MAX_TOTAL_CLTV_DELTA,
};

const NOW: u64 = 1_700_000_000;

struct Counter(u8);
impl Entropy for Counter {
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            self.0 = self.0.wrapping_add(1);
            *b = self.0;
        }
    }
}

fn manager() -> Manager {
    let config = ManagerConfig {
        alias: "payer".into(),
        listen: None,
        dev: false,
        channel_config: ChannelConfig::default(),
        funding_sat_per_vb: 2,
        max_pending_inbound_opens: fulmen_manager::MAX_PENDING_INBOUND_OPENS,
        forwarding: fulmen_manager::DEFAULT_POLICY,
        accept_keysend: true,
        announce_channels: true,
        announce_depth: 1,
        tower: false,
    };
    let secrets = NodeSecrets {
        node_secret: SecretKey::from_slice(&[0x11; 32]).unwrap(),
        channel_seed: [0x22; 32],
        wallet_seed: fulmen_wallet::Seed::from_phrase(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon \
             abandon about",
        )
        .unwrap(),
    };
    Manager::new(
        config,
        secrets,
        Box::new(Counter(0)),
        Stored::default(),
        NOW,
    )
    .unwrap()
}

fn invoice(min_final_cltv_expiry_delta: u64) -> String {
    let secp = Secp256k1::new();
    let payee = SecretKey::from_slice(&[0x33; 32]).unwrap();
    let params = InvoiceParams {
        amount_msat: Some(5_000_000),
        payment_hash: PaymentHash([7; 32]),
        payment_secret: PaymentSecret([8; 32]),
        description: InvoiceDescription::Direct("x".into()),
        timestamp_secs: NOW,
        expiry_secs: 3600,
        min_final_cltv_expiry_delta,
        route_hints: Vec::new(),
        basic_mpp: false,
    };
    create_invoice(&secp, &params, &payee)
        .unwrap()
        .as_str()
        .to_string()
}

/// Runs `pay` and returns the error message of its reply.
fn pay_error(m: &mut Manager, bolt11: String) -> String {
    m.handle_command(NOW, 1, Command::Pay { invoice: bolt11 });
    while let Some(b) = m.poll_persist() {
        m.persisted(b.id);
    }
    while let Some(o) = m.poll_output() {
        if let Output::Reply { request: 1, result } = o {
            return result.expect_err("the payment must not start").message;
        }
    }
    panic!("no reply to pay");
}

#[test]
fn invoice_with_a_huge_final_cltv_is_refused() {
    let mut m = manager();
    let err = pay_error(&mut m, invoice(5_000));
    assert!(err.contains(&MAX_TOTAL_CLTV_DELTA.to_string()), "{err}");
    // Just above the cap (with the slack added by the payer) is refused too.
    let err = pay_error(&mut m, invoice(u64::from(MAX_TOTAL_CLTV_DELTA)));
    assert!(err.contains("cltv"), "{err}");
}

#[test]
fn invoice_with_an_ordinary_final_cltv_gets_past_the_cap() {
    let mut m = manager();
    // No channel with the payee: refused for that reason, not for its CLTV.
    let err = pay_error(&mut m, invoice(144));
    assert!(err.contains("no route"), "{err}");
}
