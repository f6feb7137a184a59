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

use super::api::{CloseParams, ConnectParams, InvoiceParams, NodeIdParams, OpenParams, PayParams};
use super::state::{CmdError, Command, Input};
use crate::peer::{PeerAddress, PeerConfig};
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
}

type RpcResult<T> = Result<T, ErrorObjectOwned>;

fn err(e: CmdError) -> ErrorObjectOwned {
    ErrorObjectOwned::owned::<()>(e.code, e.message, None)
}

fn invalid(msg: impl Into<String>) -> ErrorObjectOwned {
    err(CmdError::invalid(msg))
}

/// Sends a command built around a reply channel and waits for the answer.
async fn ask<T>(
    ctx: &RpcCtx,
    make: impl FnOnce(oneshot::Sender<Result<T, CmdError>>) -> Command,
) -> RpcResult<T> {
    ask_input(ctx, |reply| Input::Rpc(make(reply))).await
}

/// Sends an input built around a reply channel and waits for the answer.
async fn ask_input<T>(
    ctx: &RpcCtx,
    make: impl FnOnce(oneshot::Sender<Result<T, CmdError>>) -> Input,
) -> RpcResult<T> {
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

fn parse_channel_id(s: &str) -> RpcResult<[u8; 32]> {
    hex::decode(s)
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| invalid(format!("bad channel id {s:?}: expected 64 hex digits")))
}

/// Builds the RPC module.
pub fn module(ctx: RpcCtx) -> anyhow::Result<RpcModule<RpcCtx>> {
    let mut m = RpcModule::new(ctx);
    m.register_async_method("getinfo", |_p, ctx, _| async move {
        ask(&ctx, Command::GetInfo).await
    })?;
    m.register_async_method("newaddress", |_p, ctx, _| async move {
        ask(&ctx, Command::NewAddress).await
    })?;
    m.register_async_method("balance", |_p, ctx, _| async move {
        ask(&ctx, Command::Balance).await
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
        ask_input(&ctx, |reply| Input::Connected {
            peer: Box::new(connected),
            dialled: Some(addr.host_port.clone()),
            reply: Some(reply),
        })
        .await
    })?;
    m.register_async_method("disconnect", |p, ctx, _| async move {
        let NodeIdParams { node_id } = p.parse()?;
        let id = parse_node_id(&node_id)?;
        ask(&ctx, |r| Command::Disconnect(id, r)).await
    })?;
    m.register_async_method("listpeers", |_p, ctx, _| async move {
        ask(&ctx, Command::ListPeers).await
    })?;
    m.register_async_method("openchannel", |p, ctx, _| async move {
        let OpenParams {
            node_id,
            sats,
            push_msat,
        } = p.parse()?;
        let node_id = parse_node_id(&node_id)?;
        ask(&ctx, |reply| Command::Open {
            node_id,
            sats,
            push_msat,
            reply,
        })
        .await
    })?;
    m.register_async_method("listchannels", |_p, ctx, _| async move {
        ask(&ctx, Command::ListChannels).await
    })?;
    m.register_async_method("invoice", |p, ctx, _| async move {
        let InvoiceParams {
            amount_msat,
            description,
            expiry_secs,
        } = p.parse()?;
        ask(&ctx, |reply| Command::Invoice {
            amount_msat,
            description,
            expiry_secs: expiry_secs.unwrap_or(3600),
            reply,
        })
        .await
    })?;
    m.register_async_method("listinvoices", |_p, ctx, _| async move {
        ask(&ctx, Command::ListInvoices).await
    })?;
    m.register_async_method("pay", |p, ctx, _| async move {
        let PayParams {
            invoice,
            timeout_secs,
        } = p.parse()?;
        let (info, outcome) = ask(&ctx, |reply| Command::Pay { invoice, reply }).await?;
        let wait = Duration::from_secs(timeout_secs.unwrap_or(60));
        match tokio::time::timeout(wait, outcome).await {
            Ok(Ok(done)) => RpcResult::Ok(done),
            // Timed out (or the node is stopping): the payment stays pending.
            _ => RpcResult::Ok(info),
        }
    })?;
    m.register_async_method("listpayments", |_p, ctx, _| async move {
        ask(&ctx, Command::ListPayments).await
    })?;
    m.register_async_method("closechannel", |p, ctx, _| async move {
        let CloseParams { channel_id } = p.parse()?;
        let channel_id = parse_channel_id(&channel_id)?;
        ask(&ctx, |reply| Command::Close { channel_id, reply }).await
    })?;
    m.register_method("stop", |_p, ctx, _| {
        let _ = ctx.inputs.send(Input::Stop);
        "fulmen node daemon stopping"
    })?;
    Ok(m)
}
