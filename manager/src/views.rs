//! Commands in, and the read-only views out: `getinfo`, `balance`, `listchannels`,
//! `listpeers`, `listpayments`, `listinvoices`.
//!
//! Owns: dispatching a [`Command`] to the code that carries it out, and how state is
//! presented to callers. Must never: answer a command whose effect is not yet durable (every
//! answer leaves through the turn's outputs, after the write).

use bitcoin::secp256k1::PublicKey;
use fulmen_channel::machine::Phase;

use crate::api::{
    AddressResult, BalanceResult, ChannelInfo, ChannelsResult, NodeInfo, OnchainBalance, PeerInfo,
    PeersResult,
};
use crate::manager::{ChannelEntry, Manager};
use crate::types::{Command, RequestId, Response};

impl Manager {
    /// A command from a user, answered by an [`crate::Output::Reply`] carrying `request`
    /// once the turn's writes are durable.
    pub fn handle_command(&mut self, now: u64, request: RequestId, cmd: Command) {
        self.now = now;
        match cmd {
            Command::GetInfo => {
                let info = self.info();
                self.reply(request, Ok(Response::Info(info)));
            }
            Command::NewAddress => {
                // The address is handed out only once the wallet change is durable.
                let address = self.wallet.new_address().to_string();
                self.reply(request, Ok(Response::Address(AddressResult { address })));
            }
            Command::Balance => {
                let b = self.balance();
                self.reply(request, Ok(Response::Balance(b)));
            }
            Command::Disconnect { node_id } => self.disconnect(request, node_id),
            Command::ListPeers => {
                let mut peers: Vec<_> = self.peers.keys().map(|id| self.peer_info(id)).collect();
                peers.sort_by(|a, b| a.node_id.cmp(&b.node_id));
                self.reply(request, Ok(Response::Peers(PeersResult { peers })));
            }
            Command::Open {
                node_id,
                sats,
                push_msat,
            } => self.open(request, node_id, sats, push_msat),
            Command::ListChannels => {
                let channels = self.channels.iter().map(|e| self.channel_info(e)).collect();
                self.reply(request, Ok(Response::Channels(ChannelsResult { channels })));
            }
            Command::Invoice {
                amount_msat,
                description,
                expiry_secs,
            } => self.create_invoice(request, amount_msat, description, expiry_secs),
            Command::Pay { invoice } => self.pay(request, &invoice, None, None),
            Command::PayWithLimits {
                invoice,
                max_fee_msat,
                timeout_secs,
            } => self.pay(request, &invoice, max_fee_msat, timeout_secs),
            Command::PayInvoice {
                invoice,
                max_fee_msat,
                timeout_secs,
            } => self.pay_invoice(request, &invoice, max_fee_msat, timeout_secs),
            Command::Keysend {
                node_id,
                amount_msat,
                max_fee_msat,
            } => self.keysend(request, node_id, amount_msat, max_fee_msat),
            Command::Close { channel_id } => self.close(request, channel_id),
            Command::ForceClose { channel_id } => self.force_close(request, channel_id),
            Command::BalanceDetail => {
                let b = self.balance_detail();
                self.reply(request, Ok(Response::BalanceDetail(b)));
            }
            Command::DevBroadcastRevoked { channel_id, number } => {
                self.dev_broadcast_revoked(request, channel_id, number)
            }
            Command::DevHoldHtlcs { on } => self.dev_hold_htlcs(request, on),
            Command::ListForwards => {
                let f = self.forwards_view();
                self.reply(request, Ok(Response::Forwards(f)));
            }
            Command::SetFees {
                channel_id,
                base_msat,
                ppm,
                cltv_delta,
            } => self.set_fees(request, channel_id, base_msat, ppm, cltv_delta),
            Command::Route {
                node_id,
                amount_msat,
            } => self.route_query(request, node_id, amount_msat),
            Command::Graph { full } => {
                let g = self.graph_view(full);
                self.reply(request, Ok(Response::Graph(g)));
            }
            Command::TowerAdd { node_id, address } => self.tower_add(request, node_id, address),
            Command::TowerInfo => {
                let info = self.tower_info();
                self.reply(request, Ok(Response::TowerInfo(info)));
            }
        }
    }

    /// `listpeers` entry.
    pub fn peer_info(&self, node_id: &PublicKey) -> PeerInfo {
        let slot = self.peer_slot(node_id);
        PeerInfo {
            node_id: node_id.to_string(),
            address: slot.and_then(|s| s.address.clone()),
            connected: slot.is_some_and(|s| s.conn.is_some()),
            inbound: slot.is_some_and(|s| s.inbound),
            channels: self
                .channels
                .iter()
                .filter(|e| e.peer == *node_id)
                .map(|e| hex::encode(e.ch.channel_id()))
                .collect(),
        }
    }

    pub(crate) fn info(&self) -> NodeInfo {
        let mut active = 0;
        let mut pending = 0;
        let mut closing = 0;
        for e in &self.channels {
            match self.channel_state_name(e) {
                "active" => active += 1,
                "opening" | "awaiting_confirmation" => pending += 1,
                "shutting_down" | "closing" => closing += 1,
                _ => {}
            }
        }
        NodeInfo {
            node_id: self.node_id.to_string(),
            alias: self.config.alias.clone(),
            listen: self.config.listen.clone(),
            uri: self
                .config
                .listen
                .as_ref()
                .map(|l| format!("{}@{l}", self.node_id)),
            block_height: self.height,
            block_hash: self.tip_hash().to_string(),
            num_peers: self.peers.values().filter(|p| p.conn.is_some()).count(),
            num_active_channels: active,
            num_pending_channels: pending,
            num_closing_channels: closing,
            dev: self.config.dev,
            network: "regtest".into(),
        }
    }

    pub(crate) fn channel_state_name(&self, e: &ChannelEntry) -> &'static str {
        let st = e.ch.state();
        match st.phase {
            Phase::Closed => match e.monitor.as_ref().and_then(|m| m.resolution()) {
                Some(r) if !r.is_final() => "closing",
                Some(_) => "closed",
                None if e.leaving_tx().is_some() => "closing",
                None => "closed",
            },
            Phase::Normal => {
                if st.local_shutdown.is_some() || st.remote_shutdown.is_some() {
                    "shutting_down"
                } else if e.ch.is_connected() {
                    "active"
                } else {
                    "inactive"
                }
            }
            Phase::AwaitingReady => "awaiting_confirmation",
            _ if e.close_reason.is_some() => "abandoned",
            _ => "opening",
        }
    }

    pub(crate) fn channel_info(&self, e: &ChannelEntry) -> ChannelInfo {
        let st = e.ch.state();
        let (local, remote) = e.ch.balances_msat().unwrap_or((0, 0));
        let htlcs = st.local_commit.as_ref().map_or(0, |c| {
            c.spec.offered_by_us.len() + c.spec.offered_by_them.len()
        });
        ChannelInfo {
            channel_id: hex::encode(e.ch.channel_id()),
            peer: e.peer.to_string(),
            state: self.channel_state_name(e).into(),
            initiator: st.setup.is_opener,
            capacity_sat: st.setup.funding_sat,
            local_msat: local,
            remote_msat: remote,
            pending_htlcs: htlcs,
            funding_txid: st.funding_outpoint.map(|o| o.txid.to_string()),
            funding_output: st.funding_outpoint.map(|o| o.vout),
            funding_height: st.funding_confirmed_height,
            short_channel_id: e.ch.short_channel_id().map(|s| s.to_string()),
            closing_txid: e.leaving_tx().map(|t| t.compute_txid().to_string()),
            close_reason: e.close_reason.clone(),
            closing: self.closing_info(e),
            local_commitment_number: st.local_commit.as_ref().map(|c| c.number),
            remote_commitment_number: st.remote_commit.as_ref().map(|c| c.number),
        }
    }

    pub(crate) fn balance(&self) -> BalanceResult {
        let b = self.wallet.balance();
        let onchain = OnchainBalance {
            confirmed_sat: b.confirmed.to_sat(),
            unconfirmed_sat: b.unconfirmed().to_sat(),
            immature_sat: b.immature.to_sat(),
            total_sat: b.total().to_sat(),
        };
        let mut local_msat = 0u64;
        let mut htlc_out = 0u64;
        let mut pending_open = 0u64;
        let mut pending_close = 0u64;
        for e in &self.channels {
            let st = e.ch.state();
            match st.phase {
                Phase::Normal => {
                    if let Some(c) = &st.local_commit {
                        local_msat += c.spec.to_us_msat;
                        htlc_out += c
                            .spec
                            .offered_by_us
                            .values()
                            .map(|h| h.amount_msat)
                            .sum::<u64>();
                    }
                }
                Phase::Closed => {
                    // Our outputs of an unconfirmed close that pay the wallet.
                    if let (Some(tx), None) = (e.leaving_tx(), e.closing_height) {
                        pending_close += tx
                            .output
                            .iter()
                            .filter(|o| self.wallet.is_mine(&o.script_pubkey))
                            .map(|o| o.value.to_sat())
                            .sum::<u64>();
                    }
                }
                _ => {
                    if st.setup.is_opener && st.funding_outpoint.is_some() {
                        pending_open += st
                            .setup
                            .funding_sat
                            .saturating_sub(st.setup.push_msat / 1000);
                    } else if !st.setup.is_opener {
                        pending_open += st.setup.push_msat / 1000;
                    }
                }
            }
        }
        // `pending_close` is already inside `onchain.unconfirmed_sat` (the wallet saw the
        // closing transaction in the mempool), so it is not added to the total again.
        BalanceResult {
            total_sat: onchain.total_sat + local_msat / 1000 + htlc_out / 1000 + pending_open,
            onchain,
            channels_local_msat: local_msat,
            channels_htlc_out_msat: htlc_out,
            pending_open_sat: pending_open,
            pending_close_sat: pending_close,
        }
    }
}
