//! What a test does with a [`Network`] in one call: fund a node's wallet from the faucet,
//! open a channel and mine until it is ready, issue an invoice, pay it and wait for the
//! outcome, close cooperatively and confirm the closing transaction; plus read-only views
//! (a node's channel by id, its payment outcomes).
//!
//! Must never: hide a failure (every helper asserts the outcome it promises).

use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, Amount, Txid};
use fulmen_channel::machine::Phase;
use fulmen_manager::api::{
    BalanceDetailResult, BalanceResult, ChannelInfo, ClosingInfo, DevBroadcastResult, InvoiceInfo,
    InvoicesResult, PaymentInfo, PaymentStatus, PaymentsResult,
};
use fulmen_manager::{ChannelEntry, Command, NodeEvent, Response};

use super::Network;

/// A channel id from its hex form.
pub fn channel_id_from_hex(s: &str) -> [u8; 32] {
    let v = hex::decode(s).expect("hex channel id");
    v.try_into().expect("32 bytes")
}

impl Network {
    /// `listpayments` of node `k`, as its shell answers it: from the durable store (every
    /// payment, or the newest `last`, oldest first).
    pub fn list_payments(&self, k: usize, last: Option<usize>) -> PaymentsResult {
        let all = &self.nodes[k].store.durable().payments;
        let skip = last.map_or(0, |n| all.len().saturating_sub(n));
        fulmen_manager::payments_view(all.iter().skip(skip))
    }

    /// `listinvoices` of node `k`, as its shell answers it: from the durable store, oldest
    /// first, at the network's clock.
    pub fn list_invoices(&self, k: usize) -> InvoicesResult {
        let all = &self.nodes[k].store.durable().invoices;
        fulmen_manager::invoices_view(all, self.clock.now())
    }

    /// Node `k` compacts its channel and monitor logs as the daemon does before a clean
    /// stop ([`fulmen_manager::Manager::compact_logs`]); the network runs until quiet, so
    /// the snapshots are durable.
    pub fn compact_logs(&mut self, k: usize) {
        self.nodes[k].m.compact_logs();
        self.queue(super::Work::Turn(k));
        self.run_until_quiet();
    }

    /// Pay `sats` from the faucet to a fresh address of node `k` and confirm it (1 block).
    pub fn fund(&mut self, k: usize, sats: u64) {
        let Ok(Response::Address(a)) = self.call(k, Command::NewAddress) else {
            panic!("newaddress failed")
        };
        let addr: Address<NetworkUnchecked> = a.address.parse().expect("an address");
        let addr = addr
            .require_network(bitcoin::Network::Regtest)
            .expect("a regtest address");
        self.chain
            .fund(&addr, Amount::from_sat(sats))
            .expect("the faucet pays");
        self.mine(1);
    }

    /// Node `k`'s balances.
    pub fn balance(&mut self, k: usize) -> BalanceResult {
        match self.call(k, Command::Balance) {
            Ok(Response::Balance(b)) => b,
            other => panic!("balance: {other:?}"),
        }
    }

    /// Open a channel from `i` to `j` (connecting first if needed), mine until both ends
    /// are in normal operation, and return its id.
    pub fn open_channel(&mut self, i: usize, j: usize, sats: u64, push_msat: u64) -> [u8; 32] {
        if !self.connected(i, j) {
            assert!(self.connect(i, j), "cannot connect");
            self.run_until_quiet();
        }
        let node_id = self.nodes[j].id;
        let res = self.call(
            i,
            Command::Open {
                node_id,
                sats,
                push_msat,
            },
        );
        let Ok(Response::Opened(o)) = res else {
            panic!("open failed: {res:?}")
        };
        let id = channel_id_from_hex(&o.channel_id);
        for _ in 0..20 {
            if [i, j].iter().all(|&k| {
                self.channel(k, &id)
                    .is_some_and(|e| e.ch.state().phase == Phase::Normal)
            }) {
                break;
            }
            self.mine(1);
            self.run_until_quiet();
        }
        for k in [i, j] {
            let e = self.channel(k, &id).expect("both ends know the channel");
            assert_eq!(e.ch.state().phase, Phase::Normal, "{} not ready", k);
            assert!(self.nodes[k].events.iter().any(
                |ev| matches!(ev, NodeEvent::ChannelReady { channel_id, .. } if *channel_id == id)
            ));
        }
        id
    }

    /// Node `k`'s channel with id `id`.
    pub fn channel(&self, k: usize, id: &[u8; 32]) -> Option<&ChannelEntry> {
        self.nodes[k]
            .m
            .channels()
            .find(|e| e.ch.channel_id() == *id)
    }

    /// Node `k`'s balance and its peer's in channel `id`, msat.
    pub fn channel_balances(&self, k: usize, id: &[u8; 32]) -> (u64, u64) {
        self.channel(k, id)
            .and_then(|e| e.ch.balances_msat())
            .expect("an open channel")
    }

    /// Node `k` issues an invoice for `amount_msat` (valid for an hour).
    pub fn invoice(&mut self, k: usize, amount_msat: u64, description: &str) -> InvoiceInfo {
        let cmd = Command::Invoice {
            amount_msat,
            description: description.to_string(),
            expiry_secs: 3600,
        };
        match self.call(k, cmd) {
            Ok(Response::Invoice(i)) => i,
            other => panic!("invoice: {other:?}"),
        }
    }

    /// The outcomes node `k` reported for payment `hash` (hex), oldest first.
    pub fn payment_outcomes(&self, k: usize, hash: &str) -> Vec<&PaymentInfo> {
        self.nodes[k]
            .events
            .iter()
            .filter_map(|e| match e {
                NodeEvent::PaymentCompleted(p) if p.payment_hash == hash => Some(p),
                _ => None,
            })
            .collect()
    }

    /// Node `k` pays `bolt11` and the network runs until quiet; returns the outcome.
    pub fn pay(&mut self, k: usize, bolt11: &str) -> PaymentInfo {
        let res = self.call(
            k,
            Command::Pay {
                invoice: bolt11.to_string(),
            },
        );
        let Ok(Response::PaymentStarted(p)) = res else {
            panic!("pay refused: {res:?}")
        };
        let outcomes = self.payment_outcomes(k, &p.payment_hash);
        assert_eq!(outcomes.len(), 1, "one outcome for {}", p.payment_hash);
        outcomes[0].clone()
    }

    /// Pay and require success.
    pub fn pay_ok(&mut self, k: usize, bolt11: &str) -> PaymentInfo {
        let p = self.pay(k, bolt11);
        assert_eq!(p.status, PaymentStatus::Succeeded, "payment failed: {p:?}");
        p
    }

    /// Node `i` closes channel `id` cooperatively; the closing transaction is mined and
    /// both ends are closed. Returns its txid.
    pub fn close(&mut self, i: usize, id: &[u8; 32]) -> Txid {
        let res = self.call(i, Command::Close { channel_id: *id });
        let Ok(Response::Closed(c)) = res else {
            panic!("close failed: {res:?}")
        };
        let txid: Txid = c.closing_txid.parse().expect("a txid");
        self.mine(1);
        self.run_until_quiet();
        let st = self
            .chain
            .transaction(&txid)
            .expect("the closing tx is known");
        assert_eq!(st.confirmations, 1, "closing tx confirmed");
        let peer = self.index_of(&self.channel(i, id).expect("the channel").peer);
        for k in [i, peer] {
            let e = self.channel(k, id).expect("both ends know the channel");
            assert_eq!(e.ch.state().phase, Phase::Closed);
            assert_eq!(e.closing_tx.as_ref().map(|t| t.compute_txid()), Some(txid));
        }
        txid
    }

    /// Node `k` force-closes channel `id` (its commitment is broadcast, not mined).
    pub fn force_close(&mut self, k: usize, id: &[u8; 32]) -> Txid {
        match self.call(k, Command::ForceClose { channel_id: *id }) {
            Ok(Response::Closed(c)) => c.closing_txid.parse().expect("a txid"),
            other => panic!("force close: {other:?}"),
        }
    }

    /// Dev node `k` broadcasts its revoked commitment `number` (default: the one where it
    /// held the most) of channel `id`.
    pub fn dev_breach(
        &mut self,
        k: usize,
        id: &[u8; 32],
        number: Option<u64>,
    ) -> DevBroadcastResult {
        let cmd = Command::DevBroadcastRevoked {
            channel_id: *id,
            number,
        };
        match self.call(k, cmd) {
            Ok(Response::DevBroadcast(b)) => b,
            other => panic!("dev broadcast-revoked: {other:?}"),
        }
    }

    /// Dev node `k` holds incoming HTLCs (`on`) or settles them again.
    pub fn hold_htlcs(&mut self, k: usize, on: bool) {
        match self.call(k, Command::DevHoldHtlcs { on }) {
            Ok(Response::HoldHtlcs(b)) => assert_eq!(b, on),
            other => panic!("dev hold-htlcs: {other:?}"),
        }
    }

    /// Node `k` starts paying `bolt11`; returns the payment as it starts (pending) without
    /// requiring an outcome.
    pub fn start_pay(&mut self, k: usize, bolt11: &str) -> PaymentInfo {
        let res = self.call(
            k,
            Command::Pay {
                invoice: bolt11.to_string(),
            },
        );
        match res {
            Ok(Response::PaymentStarted(p)) => p,
            other => panic!("pay refused: {other:?}"),
        }
    }

    /// Node `k`'s `balance --detail`.
    pub fn balance_detail(&mut self, k: usize) -> BalanceDetailResult {
        match self.call(k, Command::BalanceDetail) {
            Ok(Response::BalanceDetail(b)) => b,
            other => panic!("balance --detail: {other:?}"),
        }
    }

    /// Node `k`'s `listchannels` entry for channel `id`.
    pub fn channel_info(&mut self, k: usize, id: &[u8; 32]) -> ChannelInfo {
        let hex_id = hex::encode(id);
        match self.call(k, Command::ListChannels) {
            Ok(Response::Channels(c)) => c
                .channels
                .into_iter()
                .find(|c| c.channel_id == hex_id)
                .expect("the channel is listed"),
            other => panic!("listchannels: {other:?}"),
        }
    }

    /// Node `k`'s view of how channel `id`'s funds stand on chain, once its funding is spent.
    pub fn closing(&mut self, k: usize, id: &[u8; 32]) -> Option<ClosingInfo> {
        self.channel_info(k, id).closing
    }

    /// Node `k`'s latest outcome of payment `hash` (hex), if any.
    pub fn payment_status(&self, k: usize, hash: &str) -> Option<PaymentStatus> {
        self.payment_outcomes(k, hash).last().map(|p| p.status)
    }
}
