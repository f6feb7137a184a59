//! The node daemon's JSON-RPC methods: parse parameters, hand a [`Command`] to the node task,
//! wait for its answer.
//!
//! Owns: the method table of [`super::api`] and parameter validation that needs no state
//! (hex ids, amounts), plus dialling for `connect` (the handshake runs here, not in the node
//! task). Must never: touch node state directly.

use std::sync::Arc;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::RpcModule;
use tokio::sync::{mpsc, oneshot};

use super::api::{
    CloseParams, ConnectParams, DevBroadcastRevokedParams, DevHoldHtlcsParams, GraphParams,
    HoldHtlcsResult, InvoiceParams, KeysendParams, ListPaymentsParams, NodeIdParams, OpenParams,
    PayParams, RouteParams, SetFeesParams,
};
use super::shell::Input;
use crate::peer::{PeerAddress, PeerConfig};
use fulmen_manager::{CmdError, Command, Response};
use fulmen_wire::transport::NoiseIdentity;

/// What the RPC methods share.
#[derive(Debug)]
pub struct RpcCtx {
    /// The node task's inputs.
    pub inputs: mpsc::UnboundedSender<Input>,
    /// For dialling.
    pub identity: Arc<NoiseIdentity>,
    /// For dialling.
    pub peer_config: PeerConfig,
    /// The store, for `listpayments` (payment history lives there, not in the manager).
    pub store: super::store::NodeStore,
}

type RpcResult<T> = Result<T, ErrorObjectOwned>;

fn err(e: CmdError) -> ErrorObjectOwned {
    ErrorObjectOwned::owned::<()>(e.code, e.message, None)
}

fn invalid(msg: impl Into<String>) -> ErrorObjectOwned {
    err(CmdError::invalid(msg))
}

/// Sends a command to the node task and waits for the answer.
async fn ask(ctx: &RpcCtx, cmd: Command) -> RpcResult<Response> {
    ask_input(ctx, |reply| Input::Rpc {
        cmd,
        reply,
        outcome: None,
    })
    .await
}

/// The answer was of another kind than the command asks for (a bug).
fn unexpected(r: Response) -> ErrorObjectOwned {
    err(CmdError::failed(format!("unexpected answer: {r:?}")))
}

/// Sends a command and unpacks the answer of the expected kind.
macro_rules! ask_for {
    ($ctx:expr, $cmd:expr, $variant:path) => {
        match ask($ctx, $cmd).await? {
            $variant(v) => Ok(v),
            other => Err(unexpected(other)),
        }
    };
}

/// Sends an input built around a reply channel and waits for the answer.
async fn ask_input(
    ctx: &RpcCtx,
    make: impl FnOnce(oneshot::Sender<Result<Response, CmdError>>) -> Input,
) -> RpcResult<Response> {
    let (tx, rx) = oneshot::channel();
    ctx.inputs
        .send(make(tx))
        .map_err(|_| err(CmdError::failed("the node is shutting down")))?;
    rx.await
        .map_err(|_| {
            err(CmdError::failed(
                "the node dropped the request (shutting down?)",
            ))
        })?
        .map_err(err)
}

fn parse_node_id(s: &str) -> RpcResult<PublicKey> {
    s.parse()
        .map_err(|e| invalid(format!("bad node id {s:?}: {e}")))
}

/// Starts a payment (`pay`, `keysend`) and waits up to `timeout_secs` (default 60) for its
/// outcome; after that the payment is returned as it stands (pending).
async fn pay_and_wait(
    ctx: &RpcCtx,
    cmd: Command,
    timeout_secs: Option<u64>,
) -> RpcResult<fulmen_manager::api::PaymentInfo> {
    let (otx, outcome) = oneshot::channel();
    let answer = ask_input(ctx, |reply| Input::Rpc {
        cmd,
        reply,
        outcome: Some(otx),
    })
    .await?;
    let info = match answer {
        Response::PaymentStarted(info) => info,
        other => return Err(unexpected(other)),
    };
    let wait = Duration::from_secs(timeout_secs.unwrap_or(60));
    match tokio::time::timeout(wait, outcome).await {
        Ok(Ok(done)) => Ok(done),
        // Timed out (or the node is stopping): the payment stays pending.
        _ => Ok(info),
    }
}

fn parse_channel_id(s: &str) -> RpcResult<[u8; 32]> {
    hex::decode(s)
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| invalid(format!("bad channel id {s:?}: expected 64 hex digits")))
}

/// `listpayments`, from the store: every payment's latest row is durable before the command
/// that made it is answered, and payments no longer open are nowhere else.
async fn list_payments(
    store: &super::store::NodeStore,
    last: Option<usize>,
) -> RpcResult<fulmen_manager::api::PaymentsResult> {
    let failed = |e: anyhow::Error| err(CmdError::failed(format!("{e:#}")));
    let rows = store.payments(last).await.map_err(failed)?;
    let records = rows
        .iter()
        .map(|json| super::store::decode_payment(json))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(failed)?;
    Ok(fulmen_manager::payments_view(&records))
}

/// `listinvoices`, from the store: an invoice's row is durable before the `invoice` command
/// is answered, and invoices no longer open are nowhere else.
async fn list_invoices(
    store: &super::store::NodeStore,
) -> RpcResult<fulmen_manager::api::InvoicesResult> {
    let failed = |e: anyhow::Error| err(CmdError::failed(format!("{e:#}")));
    let rows = store.invoices().await.map_err(failed)?;
    let records = rows
        .iter()
        .map(|json| super::store::decode_invoice(json))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(failed)?;
    Ok(fulmen_manager::invoices_view(
        &records,
        super::shell::now_secs(),
    ))
}

/// Builds the RPC module.
pub fn module(ctx: RpcCtx) -> anyhow::Result<RpcModule<RpcCtx>> {
    let mut m = RpcModule::new(ctx);
    m.register_async_method("getinfo", |_p, ctx, _| async move {
        ask_for!(&ctx, Command::GetInfo, Response::Info)
    })?;
    m.register_async_method("newaddress", |_p, ctx, _| async move {
        ask_for!(&ctx, Command::NewAddress, Response::Address)
    })?;
    m.register_async_method("balance", |_p, ctx, _| async move {
        ask_for!(&ctx, Command::Balance, Response::Balance)
    })?;
    m.register_async_method("balancedetail", |_p, ctx, _| async move {
        ask_for!(&ctx, Command::BalanceDetail, Response::BalanceDetail)
    })?;
    m.register_async_method("connect", |p, ctx, _| async move {
        let ConnectParams { peer } = p.parse()?;
        let addr: PeerAddress = peer.parse().map_err(invalid)?;
        let sock = tokio::net::lookup_host(&addr.host_port)
            .await
            .map_err(|e| invalid(format!("cannot resolve {}: {e}", addr.host_port)))?
            .next()
            .ok_or_else(|| invalid(format!("no address for {}", addr.host_port)))?;
        let connected = crate::peer::connect(
            ctx.identity.clone(),
            addr.node_id,
            sock,
            ctx.peer_config.clone(),
        )
        .await
        .map_err(|e| err(CmdError::failed(format!("cannot connect to {peer}: {e}"))))?;
        let answer = ask_input(&ctx, |reply| Input::Connected {
            peer: Box::new(connected),
            dialled: Some(addr.host_port.clone()),
            reply: Some(reply),
            slot: None,
        })
        .await?;
        match answer {
            Response::Peer(p) => Ok(p),
            other => Err(unexpected(other)),
        }
    })?;
    m.register_async_method("disconnect", |p, ctx, _| async move {
        let NodeIdParams { node_id } = p.parse()?;
        let id = parse_node_id(&node_id)?;
        let id = ask_for!(
            &ctx,
            Command::Disconnect { node_id: id },
            Response::Disconnected
        )?;
        RpcResult::Ok(serde_json::json!({ "node_id": id.to_string(), "disconnected": true }))
    })?;
    m.register_async_method("listpeers", |_p, ctx, _| async move {
        ask_for!(&ctx, Command::ListPeers, Response::Peers)
    })?;
    m.register_async_method("openchannel", |p, ctx, _| async move {
        let OpenParams {
            node_id,
            sats,
            push_msat,
        } = p.parse()?;
        let node_id = parse_node_id(&node_id)?;
        let cmd = Command::Open {
            node_id,
            sats,
            push_msat,
        };
        ask_for!(&ctx, cmd, Response::Opened)
    })?;
    m.register_async_method("listchannels", |_p, ctx, _| async move {
        ask_for!(&ctx, Command::ListChannels, Response::Channels)
    })?;
    m.register_async_method("invoice", |p, ctx, _| async move {
        let InvoiceParams {
            amount_msat,
            description,
            expiry_secs,
        } = p.parse()?;
        let cmd = Command::Invoice {
            amount_msat,
            description,
            expiry_secs: expiry_secs.unwrap_or(3600),
        };
        ask_for!(&ctx, cmd, Response::Invoice)
    })?;
    m.register_async_method("listinvoices", |_p, ctx, _| async move {
        list_invoices(&ctx.store).await
    })?;
    m.register_async_method("pay", |p, ctx, _| async move {
        let PayParams {
            invoice,
            timeout_secs,
            max_fee_msat,
        } = p.parse()?;
        // The invoice's signature checks run here, on an RPC thread, not in the node task
        // (see `Command::PayInvoice`); an invoice that fails them goes to the manager as
        // text, which refuses it with the reason.
        let cmd = match fulmen_htlc::invoice::parse_invoice(invoice.trim()) {
            Ok(parsed) => Command::PayInvoice {
                invoice: Box::new(parsed),
                max_fee_msat,
                timeout_secs,
            },
            Err(_) => Command::PayWithLimits {
                invoice,
                max_fee_msat,
                timeout_secs,
            },
        };
        pay_and_wait(&ctx, cmd, timeout_secs).await
    })?;
    m.register_async_method("keysend", |p, ctx, _| async move {
        let KeysendParams {
            node_id,
            amount_msat,
            max_fee_msat,
            timeout_secs,
        } = p.parse()?;
        let node_id = parse_node_id(&node_id)?;
        let cmd = Command::Keysend {
            node_id,
            amount_msat,
            max_fee_msat,
        };
        pay_and_wait(&ctx, cmd, timeout_secs).await
    })?;
    m.register_async_method("listforwards", |_p, ctx, _| async move {
        ask_for!(&ctx, Command::ListForwards, Response::Forwards)
    })?;
    m.register_async_method("setfees", |p, ctx, _| async move {
        let SetFeesParams {
            channel_id,
            base_msat,
            ppm,
            cltv_delta,
        } = p.parse()?;
        let channel_id = parse_channel_id(&channel_id)?;
        let cmd = Command::SetFees {
            channel_id,
            base_msat,
            ppm,
            cltv_delta,
        };
        ask_for!(&ctx, cmd, Response::FeesSet)
    })?;
    m.register_async_method("getroute", |p, ctx, _| async move {
        let RouteParams {
            node_id,
            amount_msat,
        } = p.parse()?;
        let node_id = parse_node_id(&node_id)?;
        let cmd = Command::Route {
            node_id,
            amount_msat,
        };
        ask_for!(&ctx, cmd, Response::Route)
    })?;
    m.register_async_method("graph", |p, ctx, _| async move {
        // No params (`null`) means the summary.
        let GraphParams { full } = p.parse::<Option<GraphParams>>()?.unwrap_or_default();
        ask_for!(&ctx, Command::Graph { full }, Response::Graph)
    })?;
    m.register_async_method("listpayments", |p, ctx, _| async move {
        // No params (older clients) or `{"last": N}`.
        let last = p
            .parse::<Option<ListPaymentsParams>>()?
            .and_then(|l| l.last);
        list_payments(&ctx.store, last).await
    })?;
    m.register_async_method("closechannel", |p, ctx, _| async move {
        let CloseParams { channel_id, force } = p.parse()?;
        let channel_id = parse_channel_id(&channel_id)?;
        let cmd = if force {
            Command::ForceClose { channel_id }
        } else {
            Command::Close { channel_id }
        };
        ask_for!(&ctx, cmd, Response::Closed)
    })?;
    m.register_async_method("dev-broadcastrevoked", |p, ctx, _| async move {
        let DevBroadcastRevokedParams { channel_id, number } = p.parse()?;
        let channel_id = parse_channel_id(&channel_id)?;
        let cmd = Command::DevBroadcastRevoked { channel_id, number };
        ask_for!(&ctx, cmd, Response::DevBroadcast)
    })?;
    m.register_async_method("dev-holdhtlcs", |p, ctx, _| async move {
        let DevHoldHtlcsParams { on } = p.parse()?;
        let hold_htlcs = ask_for!(&ctx, Command::DevHoldHtlcs { on }, Response::HoldHtlcs)?;
        RpcResult::Ok(HoldHtlcsResult { hold_htlcs })
    })?;
    m.register_async_method("toweradd", |p, ctx, _| async move {
        let ConnectParams { peer } = p.parse()?;
        let addr: PeerAddress = peer.parse().map_err(invalid)?;
        let cmd = Command::TowerAdd {
            node_id: addr.node_id,
            address: addr.host_port,
        };
        ask_for!(&ctx, cmd, Response::TowerAdded)
    })?;
    m.register_async_method("towerinfo", |_p, ctx, _| async move {
        ask_for!(&ctx, Command::TowerInfo, Response::TowerInfo)
    })?;
    m.register_method("stop", |_p, ctx, _| {
        let _ = ctx.inputs.send(Input::Stop);
        "fulmen node daemon stopping"
    })?;
    Ok(m)
}
