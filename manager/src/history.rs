//! Payment history: which payments and invoices the manager keeps in memory and what a shell
//! serves from its store.
//!
//! A payment is *open* while its outcome or any of its HTLCs is unresolved; the manager needs
//! those (to settle, retry, or claim on chain) and keeps them. A payment that is no longer
//! open is kept only until the batch that recorded its outcome is durable; from then on the
//! store is its only home, so a node with a million payments on record starts and runs in
//! the memory of the payments it has in flight. The shell therefore answers `listpayments`
//! from its store ([`payments_view`]), and before handing the manager a `pay` it looks up
//! the invoice's payment hash there ([`pay_command_hash`], [`refuse_repeat`]).
//!
//! Invoices likewise: an invoice is open while unpaid; a paid one (keysend receipts
//! included) leaves memory once its paid row is durable, and the shell answers
//! `listinvoices` from its store ([`invoices_view`]). One decision needs a paid invoice
//! back: an incoming HTLC for its payment hash must be refused as a repeat (and a keysend
//! reusing its preimage must not overwrite its row). So before each turn the shell reads
//! the stored, no longer open invoices of the payment hashes of the `update_add_htlc`s the
//! turn brings, in one query, and hands them over with [`crate::Manager::recall_invoices`];
//! they leave memory again once no HTLC for their hash is in flight.
//!
//! Forwards too: one is open while its outcome is unknown; a resolved one leaves memory once
//! durable, and for a `forwards` command the shell reads the resolved ones from its store and
//! hands them over first ([`crate::Manager::recall_forwards`]). A batch's closed keys
//! ([`Closed`]) are dropped from memory when the batch is acknowledged, one rule for all
//! three.
//!
//! Owns: the rules for what is open, the views of stored payments and invoices, the
//! repeat-payment rule, and what leaves memory when. Must never: read a store itself (the
//! shells do), or forget a payment, an invoice or a forward before its last record is
//! durable.

use fulmen_htlc::invoice::payment_hash_unverified;

use crate::api::PaymentsResult;
use crate::api::{InvoiceInfo, InvoiceStatus, InvoicesResult, PaymentInfo, PaymentStatus};
use std::collections::HashSet;

use fulmen_channel::machine::state::Update;

use crate::types::{CmdError, Command, InvoiceRecord, PaymentRecord, Writes};
use crate::Manager;

/// The keys of the payments, invoices and forwards a batch records as no longer open.
#[derive(Debug, Default)]
pub(crate) struct Closed {
    payments: Vec<String>,
    invoices: Vec<String>,
    forwards: Vec<(i64, u64)>,
}

impl Closed {
    /// What `writes` records as no longer open.
    pub(crate) fn of(writes: &Writes) -> Closed {
        Closed {
            payments: writes
                .payments
                .iter()
                .filter(|p| !p.is_open())
                .map(|p| p.info.payment_hash.clone())
                .collect(),
            invoices: writes
                .invoices
                .iter()
                .filter(|i| !i.is_open())
                .map(|i| i.info.payment_hash.clone())
                .collect(),
            forwards: writes
                .forwards
                .iter()
                .filter(|f| !f.is_open())
                .map(|f| (f.in_channel, f.in_htlc))
                .collect(),
        }
    }
}

/// Removes from `map` the entries of `keys` that are still closed (a later change may have
/// reopened one since the batch that closed it).
fn remove_closed<V>(
    map: &mut std::collections::HashMap<String, V>,
    keys: &[String],
    is_open: impl Fn(&V) -> bool,
) {
    for key in keys {
        if map.get(key).is_some_and(|v| !is_open(v)) {
            map.remove(key);
        }
    }
}

impl InvoiceRecord {
    /// True while the manager must keep the invoice in memory: it is not paid yet (an
    /// expired one too: an HTLC for it is refused with its expiry). The store keeps this as
    /// a flag, and loads only open invoices at start.
    pub fn is_open(&self) -> bool {
        self.info.status == InvoiceStatus::Unpaid
    }
}

/// What `listinvoices` shows of an invoice at `now` (UNIX seconds): an unpaid one past its
/// expiry shows as `expired`.
pub fn invoice_view(rec: &InvoiceRecord, now: u64) -> InvoiceInfo {
    let mut info = rec.info.clone();
    if info.status == InvoiceStatus::Unpaid && now >= info.expires_at {
        info.status = InvoiceStatus::Expired;
    }
    info
}

/// The `listinvoices` answer for stored invoices given oldest first.
pub fn invoices_view<'a>(
    records: impl IntoIterator<Item = &'a InvoiceRecord>,
    now: u64,
) -> InvoicesResult {
    InvoicesResult {
        invoices: records.into_iter().map(|r| invoice_view(r, now)).collect(),
    }
}

impl Manager {
    /// Stored invoices no longer open whose payment hashes this turn's `update_add_htlc`s
    /// carry (see the module doc): kept while an HTLC for their hash is in flight. An
    /// invoice the manager holds already is left as it is.
    pub fn recall_invoices(&mut self, records: Vec<InvoiceRecord>) {
        for r in records {
            let key = r.info.payment_hash.clone();
            if !self.invoices.contains_key(&key) {
                self.invoices.insert(key.clone(), r);
                self.recalled_invoices.insert(key);
            }
        }
    }

    /// Stored forwards no longer open, in stored order, for a `forwards` command in this
    /// turn (the shell reads them first): shown with the ones the manager holds by that
    /// command, forgotten at the end of the turn.
    pub fn recall_forwards(&mut self, records: Vec<crate::ForwardRecord>) {
        self.recalled_forwards = records;
    }

    /// A batch is durable: what it recorded as no longer open leaves memory (unless a later
    /// change reopened it), and so do recalled invoices with no HTLC in flight any more
    /// (the decision on an incoming HTLC comes once it is irrevocably committed, turns after
    /// it arrived).
    pub(crate) fn drop_closed(&mut self, closed: &Closed) {
        remove_closed(&mut self.payments, &closed.payments, PaymentRecord::is_open);
        remove_closed(&mut self.invoices, &closed.invoices, InvoiceRecord::is_open);
        self.forwards.drop_resolved(&closed.forwards);
        if !self.recalled_invoices.is_empty() {
            let in_flight = self.incoming_hashes_in_flight();
            let invoices = &mut self.invoices;
            self.recalled_invoices.retain(|key| {
                let keep = in_flight.contains(key);
                if !keep && invoices.get(key).is_some_and(|i| !i.is_open()) {
                    invoices.remove(key);
                }
                keep
            });
        }
    }

    /// Payment hashes (hex) of the HTLCs peers offered us that are not settled yet, on every
    /// channel: proposed, in a commitment, or both.
    fn incoming_hashes_in_flight(&self) -> HashSet<String> {
        let mut out = HashSet::new();
        for e in &self.channels {
            let st = e.ch.state();
            let rc = &st.remote_changes;
            let adds = rc
                .proposed
                .iter()
                .chain(&rc.acked)
                .chain(&rc.signed)
                .filter_map(|u| match u {
                    Update::Add { htlc, .. } => Some(htlc),
                    _ => None,
                });
            let specs = st
                .local_commit
                .iter()
                .map(|c| &c.spec)
                .chain(st.remote_commit.iter().map(|c| &c.spec))
                .chain(st.remote_next.iter().map(|c| &c.spec));
            let committed = specs.flat_map(|s| s.offered_by_them.values());
            for h in adds.chain(committed) {
                out.insert(hex::encode(h.payment_hash.0));
            }
        }
        out
    }

    /// Forwards held in memory: the open ones, and those whose outcome is not durable yet.
    pub fn forward_count(&self) -> usize {
        self.forwards.by_in.len()
    }

    /// True if the invoice of `payment_hash` (hex) is in memory (open, not yet durable, or
    /// recalled already): the shell need not recall it.
    pub fn holds_invoice(&self, payment_hash: &str) -> bool {
        self.invoices.contains_key(payment_hash)
    }

    /// Invoices held in memory: the open ones, those whose paid row is not durable yet, and
    /// those recalled for an HTLC still in flight.
    pub fn invoice_count(&self) -> usize {
        self.invoices.len()
    }
}

impl PaymentRecord {
    /// True while the manager must keep the payment in memory: its outcome is unknown, or
    /// one of its HTLCs is still unresolved (a part of a payment that already succeeded or
    /// failed). The store keeps this as a flag, and loads only open payments at start.
    pub fn is_open(&self) -> bool {
        if self.is_pending() {
            return true;
        }
        self.parts
            .iter()
            .any(|p| p.status == PaymentStatus::Pending)
    }
}

/// What `listpayments` shows of a payment: its info with the route of the part that
/// succeeded (else of the last part tried) and where that part failed.
pub fn payment_view(rec: &PaymentRecord) -> PaymentInfo {
    let mut info = rec.info.clone();
    let shown = rec
        .parts
        .iter()
        .find(|p| p.status == PaymentStatus::Succeeded)
        .or_else(|| rec.parts.last());
    if let Some(part) = shown {
        info.route = part.hops.iter().map(|h| h.node_id.clone()).collect();
        info.failed_at = part.failed_at;
    }
    info
}

/// The `listpayments` answer for stored payments given oldest first.
pub fn payments_view<'a>(records: impl IntoIterator<Item = &'a PaymentRecord>) -> PaymentsResult {
    PaymentsResult {
        payments: records.into_iter().map(payment_view).collect(),
    }
}

/// The payment hash (hex) a `pay` command is for, which the shell must look up in its store
/// before handing the command over (`None` for every other command, and for an invoice that
/// does not even decode: the manager refuses it with the reason).
pub fn pay_command_hash(cmd: &Command) -> Option<String> {
    match cmd {
        Command::Pay { invoice } | Command::PayWithLimits { invoice, .. } => {
            payment_hash_unverified(invoice)
                .ok()
                .map(|h| hex::encode(h.0))
        }
        Command::PayInvoice { invoice, .. } => Some(hex::encode(invoice.payment_hash().0)),
        _ => None,
    }
}

/// Why a payment of an invoice being paid is refused.
pub(crate) fn in_flight() -> CmdError {
    CmdError::failed("a payment of this invoice is in flight")
}

/// Whether a payment of a hash that has this earlier payment on record may start: an
/// invoice is paid once; one in flight is not paid again; a failed one may be retried.
pub fn refuse_repeat(earlier: Option<PaymentStatus>) -> Result<(), CmdError> {
    match earlier {
        Some(PaymentStatus::Succeeded) => Err(CmdError::failed("this invoice is already paid")),
        Some(PaymentStatus::Pending) => Err(in_flight()),
        Some(PaymentStatus::Failed) | None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::send::PartRecord;

    fn record(status: PaymentStatus, parts: &[PaymentStatus]) -> PaymentRecord {
        let info = PaymentInfo {
            payment_hash: "00".repeat(32),
            destination: String::new(),
            amount_msat: 1,
            fee_msat: 0,
            status,
            preimage: None,
            failure: None,
            channel_id: None,
            created_at: 0,
            completed_at: None,
            attempts: 0,
            route: Vec::new(),
            failed_at: None,
        };
        PaymentRecord {
            info,
            channel: None,
            htlc_id: None,
            shared_secrets: Vec::new(),
            parts: parts
                .iter()
                .enumerate()
                .map(|(i, s)| PartRecord {
                    channel: 1,
                    htlc_id: i as u64,
                    amount_msat: 1,
                    fee_msat: 0,
                    hops: Vec::new(),
                    shared_secrets: Vec::new(),
                    status: *s,
                    failed_at: None,
                })
                .collect(),
            plan: None,
        }
    }

    #[test]
    fn a_payment_is_open_until_its_outcome_and_every_part_are_resolved() {
        use PaymentStatus::*;
        assert!(record(Pending, &[]).is_open());
        assert!(record(Pending, &[Failed]).is_open());
        assert!(record(Succeeded, &[Succeeded, Pending]).is_open());
        assert!(!record(Succeeded, &[Failed, Succeeded]).is_open());
        assert!(!record(Failed, &[Failed, Failed]).is_open());
        assert!(!record(Failed, &[]).is_open());
    }

    #[test]
    fn only_a_failed_payment_may_be_repeated() {
        assert!(refuse_repeat(None).is_ok());
        assert!(refuse_repeat(Some(PaymentStatus::Failed)).is_ok());
        let paid = refuse_repeat(Some(PaymentStatus::Succeeded)).unwrap_err();
        assert!(paid.message.contains("already paid"), "{}", paid.message);
        assert!(refuse_repeat(Some(PaymentStatus::Pending)).is_err());
    }

    #[test]
    fn only_pay_commands_name_a_hash_to_look_up() {
        assert_eq!(pay_command_hash(&Command::ListChannels), None);
        let garbage = Command::Pay {
            invoice: "lnbcrt1garbage".into(),
        };
        assert_eq!(pay_command_hash(&garbage), None);
    }
}
