//! `fulmen-manager`: one node's brain, sans-IO.
//!
//! A [`Manager`] owns every channel of one node, its peers (connected or not), its on-chain
//! wallet, its payments and invoices, and its view of the chain. It takes inputs as method
//! calls (a peer connected or disconnected, a peer's message, a block connected or
//! disconnected, a user's [`Command`] carrying a caller-chosen [`RequestId`], a timer tick)
//! and hands back outputs: first one [`PersistBatch`] of typed [`Writes`] per turn, then —
//! only once the caller says [`Manager::persisted`] — messages to peers, transactions to
//! broadcast, command replies and events ([`Output`]). See [`Manager`] for the call order.
//!
//! No tokio, no database, no sockets, no clock (`now` is an argument), no global RNG
//! (entropy is given to [`Manager::new`]). The node daemon (`fulmen-node`) is one shell
//! around it; the in-process test harness (`fulmen-tests`) is another.
#![warn(missing_docs)]

pub mod api;
mod chain;
mod channels;
mod forward;
mod gossip;
mod graph;
mod history;
mod manager;
mod onchain;
mod payments;
mod peers;
mod receive;
mod send;
mod send_batch;
mod tower;
pub mod types;
mod views;

pub use channels::{FixedFee, COMMIT_DELAY_MS};
pub use forward::{ChannelPolicy, ForwardRecord, ForwardStatus, DEFAULT_POLICY};
pub use fulmen_routing::UtxoResult;
pub use gossip::{UtxoAnswer, MAX_CHANNELS_SIGNED_PER_PASS};
pub use history::{
    invoice_view, invoices_view, pay_command_hash, payment_view, payments_view, refuse_repeat,
};
pub use manager::{ChannelEntry, Manager};
pub use payments::{MAX_TOTAL_CLTV_DELTA, MIN_FINAL_CLTV};
pub use peers::message_channel_id;
pub use types::{
    CmdError, Command, InvoiceRecord, ManagerConfig, ManagerError, NodeEvent, NodeSecrets, Output,
    PaymentRecord, PeerAccept, PersistBatch, RequestId, Response, Stored, StoredChannel,
    StoredTower, TowerQueueWrite, Writes, MAX_PENDING_INBOUND_OPENS,
};
