//! Dispatch of the node task's inputs, and the read-only views (`getinfo`, `balance`,
//! `listchannels`, `listpeers`, `listpayments`, `listinvoices`).
//!
//! Owns: turning an [`Input`] into calls on the node, and how state is presented to RPC
//! callers. Must never: answer a command whose effect is not yet durable (those answers go
//! through `After`).

use fulmen_channel::machine::Phase;

use super::api::{
    AddressResult, BalanceResult, ChannelInfo, ChannelsResult, InvoicesResult, NodeInfo,
    OnchainBalance, PaymentsResult, PeersResult,
};
use super::state::{After, CmdError, Command, Input, Node};

impl Node {
    /// Applies one input.
    pub async fn handle_input(&mut self, input: Input) {
        match input {
            Input::Rpc(cmd) => self.handle_command(cmd),
            Input::Connected {
                peer,
                dialled,
                reply,
            } => self.on_connected(peer, dialled, reply),
            Input::PeerMessage { node_id, conn, msg } => self.on_peer_message(node_id, conn, *msg),
            Input::Disconnected {
                node_id,
                conn,
                reason,
            } => self.on_disconnected(node_id, conn, &reason),
            Input::ReconnectEnded(node_id) => {
                if let Some(s) = self.peers.get_mut(&node_id) {
                    s.reconnecting = false;
                }
            }
            Input::ChainTip => {
                if let Err(e) = self.sync_chain().await {
                    tracing::warn!(error = %format!("{e:#}"), "following the chain");
                }
                self.rebroadcast().await;
            }
            Input::Stop => self.stopping = true,
        }
    }

    fn handle_command(&mut self, cmd: Command) {
        match cmd {
            Command::GetInfo(r) => {
                let _ = r.send(Ok(self.info()));
            }
            Command::NewAddress(r) => {
                let address = self.wallet.new_address().to_string();
                // The address is handed out only once the wallet change is durable.
                self.after
                    .push(After::Address(r, AddressResult { address }));
            }
            Command::Balance(r) => {
                let _ = r.send(Ok(self.balance()));
            }
            Command::Disconnect(id, r) => {
                match self.peers.get_mut(&id).and_then(|p| p.sender.take()) {
                    Some(s) => {
                        s.disconnect("disconnect requested");
                        // The sender is gone, so the coming `Disconnected` input is ignored
                        // and no reconnect starts: the user asked for this.
                        for e in self.channels.iter_mut().filter(|e| e.peer == id) {
                            if e.ch.state().phase != Phase::Closed {
                                e.ch.handle_disconnect();
                            }
                        }
                        let _ = r.send(Ok(
                            serde_json::json!({ "node_id": id.to_string(), "disconnected": true }),
                        ));
                    }
                    None => {
                        let _ = r.send(Err(CmdError::invalid(format!(
                            "peer {id} is not connected"
                        ))));
                    }
                }
            }
            Command::ListPeers(r) => {
                let ids: Vec<_> = self.peers.keys().copied().collect();
                let mut peers: Vec<_> = ids.iter().map(|id| self.peer_info(id)).collect();
                peers.sort_by(|a, b| a.node_id.cmp(&b.node_id));
                let _ = r.send(Ok(PeersResult { peers }));
            }
            Command::Open {
                node_id,
                sats,
                push_msat,
                reply,
            } => self.open(node_id, sats, push_msat, reply),
            Command::ListChannels(r) => {
                let channels = self.channels.iter().map(|e| self.channel_info(e)).collect();
                let _ = r.send(Ok(ChannelsResult { channels }));
            }
            Command::Invoice {
                amount_msat,
                description,
                expiry_secs,
                reply,
            } => self.create_invoice(amount_msat, description, expiry_secs, reply),
            Command::ListInvoices(r) => {
                let invoices = self
                    .invoice_order
                    .iter()
                    .filter_map(|k| self.invoices.get(k))
                    .map(|rec| self.invoice_view(rec))
                    .collect();
                let _ = r.send(Ok(InvoicesResult { invoices }));
            }
            Command::Pay { invoice, reply } => self.pay(&invoice, reply),
            Command::ListPayments(r) => {
                let payments = self
                    .payment_order
                    .iter()
                    .filter_map(|k| self.payments.get(k))
                    .map(|p| p.info.clone())
                    .collect();
                let _ = r.send(Ok(PaymentsResult { payments }));
            }
            Command::Close { channel_id, reply } => self.close(channel_id, reply),
        }
    }

    fn info(&self) -> NodeInfo {
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
            node_id: self.keys.node_id.to_string(),
            alias: self.settings.alias.clone(),
            listen: self.settings.listen.clone(),
            uri: self
                .settings
                .listen
                .as_ref()
                .map(|l| format!("{}@{l}", self.keys.node_id)),
            block_height: self.height,
            block_hash: self.tip_hash.clone(),
            num_peers: self.peers.values().filter(|p| p.sender.is_some()).count(),
            num_active_channels: active,
            num_pending_channels: pending,
            num_closing_channels: closing,
            dev: self.settings.dev,
            network: "regtest".into(),
        }
    }

    fn channel_state_name(&self, e: &super::state::ChannelEntry) -> &'static str {
        let st = e.ch.state();
        match st.phase {
            Phase::Closed => {
                if e.closing_tx.is_some() && e.closing_height.is_none() {
                    "closing"
                } else {
                    "closed"
                }
            }
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

    fn channel_info(&self, e: &super::state::ChannelEntry) -> ChannelInfo {
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
            closing_txid: e.closing_tx.as_ref().map(|t| t.compute_txid().to_string()),
            close_reason: e.close_reason.clone(),
        }
    }

    fn balance(&self) -> BalanceResult {
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
                    if let (Some(tx), None) = (&e.closing_tx, e.closing_height) {
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
