//! Starting the payments of many `pay` commands in one go: a node paying at full speed gets
//! a dozen `pay`s per turn, and building their onions (two elliptic-curve multiplications
//! per hop each, a quarter of a payer's turn) is the one part of starting a payment that
//! needs nothing of the manager's state. So the payments are planned and routed one after
//! the other, their onions built together on the machine's cores
//! ([`fulmen_channel::parallel::map_in_chunks`]), then their parts offered in order.
//!
//! Owns: [`Manager::handle_commands`]. Must never: start a payment differently from `pay`
//! after `pay` — each sees the liquidity the ones before it took, a payment none of whose
//! parts could be offered goes through the one-by-one path ([`Manager::begin_payment`]),
//! and the replies leave in the commands' order.

use std::collections::HashMap;
use std::convert::Infallible;

use fulmen_htlc::invoice::Invoice;
use fulmen_htlc::PaymentHash;
use fulmen_wire::ShortChannelId;

use crate::manager::Manager;
use crate::send::{PaymentPlan, PreparedPart};
use crate::types::{Command, RequestId, Response};

/// Fewest onions a thread is started for (an onion of one hop costs about two signatures).
const ONIONS_PER_THREAD: usize = 2;

/// A `pay` of a parsed invoice waiting in a batch.
struct QueuedPay {
    request: RequestId,
    invoice: Box<Invoice>,
    max_fee_msat: Option<u64>,
    timeout_secs: Option<u64>,
}

/// A payment of the batch, planned and routed; `parts` is `None` when it found no route with
/// what the batch had left (it then starts alone, after the ones before it).
struct PlannedPay {
    request: RequestId,
    hash: PaymentHash,
    plan: PaymentPlan,
    parts: Option<Vec<PreparedPart>>,
}

impl Manager {
    /// Commands from users, in order, as [`Manager::handle_command`] one after the other —
    /// except that consecutive [`Command::PayInvoice`]s start together, their onions built
    /// on several cores.
    pub fn handle_commands(&mut self, now: u64, cmds: Vec<(RequestId, Command)>) {
        let mut pays = Vec::new();
        for (request, cmd) in cmds {
            match cmd {
                Command::PayInvoice {
                    invoice,
                    max_fee_msat,
                    timeout_secs,
                } => pays.push(QueuedPay {
                    request,
                    invoice,
                    max_fee_msat,
                    timeout_secs,
                }),
                other => {
                    self.start_payments(now, std::mem::take(&mut pays));
                    self.handle_command(now, request, other);
                }
            }
        }
        self.start_payments(now, pays);
    }

    /// Starts `pays` in order (see the module doc).
    fn start_payments(&mut self, now: u64, pays: Vec<QueuedPay>) {
        self.now = now;
        if pays.len() < 2 {
            for p in pays {
                self.pay_invoice(p.request, &p.invoice, p.max_fee_msat, p.timeout_secs);
            }
            return;
        }
        tracing::debug!(pays = pays.len(), "payments started together");
        self.sync_graph();
        let mut used: HashMap<ShortChannelId, u64> = HashMap::new();
        let mut planned: Vec<PlannedPay> = Vec::with_capacity(pays.len());
        for p in pays {
            let planning = self.plan_invoice_payment(&p.invoice, p.max_fee_msat, p.timeout_secs);
            let (hash, plan) = match planning {
                Ok(hp) => hp,
                Err(e) => {
                    self.reply(p.request, Err(e));
                    continue;
                }
            };
            if planned.iter().any(|q| q.hash == hash) {
                // The same invoice twice in one batch: the first is being paid.
                self.reply(p.request, Err(crate::history::in_flight()));
                continue;
            }
            // No route with what the batch left: it starts alone, after the ones before it.
            let parts = self
                .route_parts(&plan, hash, plan.total_msat, plan.max_fee_msat, &mut used)
                .ok();
            planned.push(PlannedPay {
                request: p.request,
                hash,
                plan,
                parts,
            });
        }
        let all: Vec<&PreparedPart> = planned
            .iter()
            .filter_map(|p| p.parts.as_ref())
            .flatten()
            .collect();
        let secp = &self.secp;
        let built = fulmen_channel::parallel::map_in_chunks(&all, ONIONS_PER_THREAD, |part| {
            Ok::<_, Infallible>(part.build_onion(secp))
        });
        let Ok(onions) = built;
        let mut onions = onions.into_iter();
        for p in planned {
            let started = match p.parts {
                None => self.begin_payment(p.hash, p.plan),
                Some(parts) => {
                    let mut rec = self.new_payment_record(p.hash, &p.plan);
                    let mut sent = Ok(());
                    for part in parts {
                        // Every part has its onion in `onions`, in order: take it even
                        // after a failure, so the next payment gets its own.
                        let onion = onions.next().unwrap_or(Err("no onion built".into()));
                        if sent.is_ok() {
                            sent = onion.and_then(|o| self.offer_part(&mut rec, part, o));
                        }
                    }
                    if sent.is_err() && rec.parts.is_empty() {
                        // Nothing went out: start it alone, on the channels as they are
                        // now, as `pay` would.
                        self.begin_payment(p.hash, p.plan)
                    } else {
                        self.started_or_refused(rec, p.hash, sent)
                    }
                }
            };
            self.reply(p.request, started.map(Response::PaymentStarted));
        }
    }
}
