//! BOLT 11 invoices via the `lightning-invoice` crate: create and sign (regtest, `lnbcrt`),
//! parse and validate, and read the fields a payer needs.
//!
//! Owns the mapping between `lightning-invoice` types and this crate's payment types.
//! Must never read the clock (timestamps and "now" are arguments), never panic on a
//! user-supplied string, and never write bech32 by hand.

use core::str::FromStr;
use core::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::ecdsa::{RecoverableSignature, RecoveryId, Signature};
use bitcoin::secp256k1::{Message, PublicKey, Secp256k1, SecretKey, Signing};
use lightning_invoice::{
    Bolt11Invoice, Bolt11InvoiceDescription, Bolt11InvoiceDescriptionRef, Bolt11ParseError,
    Bolt11SemanticError, CreationError, Currency, Description, InvoiceBuilder,
    ParseOrSemanticError, RouteHint, RoutingFees, Sha256, SignedRawBolt11Invoice,
};
use thiserror::Error;

use crate::payment::{PaymentHash, PaymentSecret};

/// Longest invoice string accepted (characters); longer input is refused before parsing.
pub const MAX_INVOICE_LEN: usize = 7089;

/// Why an invoice could not be created or was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvoiceError {
    /// Input longer than [`MAX_INVOICE_LEN`].
    #[error("invoice is {0} characters, more than {MAX_INVOICE_LEN}")]
    TooLong(usize),
    /// Bech32 / field syntax error.
    #[error("malformed invoice: {0}")]
    Parse(Bolt11ParseError),
    /// Well-formed but violates a BOLT 11 rule (signature, features, missing field...).
    #[error("invalid invoice: {0}")]
    Semantic(Bolt11SemanticError),
    /// The signature has a high S although an `n` field names the payee (BOLT 11: with
    /// `n`, only low-S signatures are valid).
    #[error("invalid invoice: high-S signature with an explicit payee (n) field")]
    HighSWithPayeeField,
    /// Could not build the invoice from the given parameters.
    #[error("cannot create invoice: {0}")]
    Create(CreationError),
}

impl From<Bolt11ParseError> for InvoiceError {
    fn from(e: Bolt11ParseError) -> Self {
        InvoiceError::Parse(e)
    }
}

impl From<Bolt11SemanticError> for InvoiceError {
    fn from(e: Bolt11SemanticError) -> Self {
        InvoiceError::Semantic(e)
    }
}

impl From<CreationError> for InvoiceError {
    fn from(e: CreationError) -> Self {
        InvoiceError::Create(e)
    }
}

impl From<ParseOrSemanticError> for InvoiceError {
    fn from(e: ParseOrSemanticError) -> Self {
        match e {
            ParseOrSemanticError::ParseError(p) => InvoiceError::Parse(p),
            ParseOrSemanticError::SemanticError(s) => InvoiceError::Semantic(s),
        }
    }
}

/// The description of what is paid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvoiceDescription {
    /// `d`: UTF-8 text (at most 639 bytes).
    Direct(String),
    /// `h`: SHA256 of a longer description given out of band.
    Hash([u8; 32]),
}

/// One hop of a private route hint (`r` field): the channel from `src_node_id` toward
/// the payee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteHintHop {
    /// The node at the start of the hinted channel.
    pub src_node_id: PublicKey,
    /// The hinted channel.
    pub short_channel_id: u64,
    /// Base fee of the channel.
    pub fee_base_msat: u32,
    /// Proportional fee in millionths.
    pub fee_proportional_millionths: u32,
    /// CLTV delta of the channel.
    pub cltv_expiry_delta: u16,
}

/// Everything needed to create an invoice. `timestamp_secs` is the creation time (UNIX
/// seconds) supplied by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceParams {
    /// Requested amount; `None` for "any amount".
    pub amount_msat: Option<u64>,
    /// Hash of the preimage the payee holds.
    pub payment_hash: PaymentHash,
    /// Fresh payment secret (entropy from the caller).
    pub payment_secret: PaymentSecret,
    /// Description or its hash.
    pub description: InvoiceDescription,
    /// Creation time, UNIX seconds.
    pub timestamp_secs: u64,
    /// Validity in seconds after `timestamp_secs`.
    pub expiry_secs: u64,
    /// `min_final_cltv_expiry_delta` (`c` field).
    pub min_final_cltv_expiry_delta: u64,
    /// Private route hints, each a list of hops ending at the payee.
    pub route_hints: Vec<Vec<RouteHintHop>>,
    /// Whether to advertise `basic_mpp` (feature 16/17, optional bit).
    pub basic_mpp: bool,
}

/// A parsed, signature-checked BOLT 11 invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    inner: Bolt11Invoice,
    payee: PublicKey,
    text: String,
}

/// Creates and signs a regtest (`lnbcrt`) invoice with the node key.
pub fn create_invoice<C: Signing>(
    secp: &Secp256k1<C>,
    params: &InvoiceParams,
    node_secret: &SecretKey,
) -> Result<Invoice, InvoiceError> {
    let description = match &params.description {
        InvoiceDescription::Direct(s) => {
            Bolt11InvoiceDescription::Direct(Description::new(s.clone())?)
        }
        InvoiceDescription::Hash(h) => {
            Bolt11InvoiceDescription::Hash(Sha256(sha256::Hash::from_byte_array(*h)))
        }
    };
    let mut builder = InvoiceBuilder::new(Currency::Regtest)
        .invoice_description(description)
        .payment_hash(sha256::Hash::from_byte_array(params.payment_hash.0))
        .payment_secret(lightning_invoice::PaymentSecret(params.payment_secret.0))
        .duration_since_epoch(Duration::from_secs(params.timestamp_secs))
        .min_final_cltv_expiry_delta(params.min_final_cltv_expiry_delta)
        .expiry_time(Duration::from_secs(params.expiry_secs));
    if let Some(amt) = params.amount_msat {
        builder = builder.amount_milli_satoshis(amt);
    }
    if params.basic_mpp {
        builder = builder.basic_mpp();
    }
    for route in &params.route_hints {
        let hops = route
            .iter()
            .map(|h| lightning_invoice::RouteHintHop {
                src_node_id: h.src_node_id,
                short_channel_id: h.short_channel_id,
                fees: RoutingFees {
                    base_msat: h.fee_base_msat,
                    proportional_millionths: h.fee_proportional_millionths,
                },
                cltv_expiry_delta: h.cltv_expiry_delta,
                htlc_minimum_msat: None,
                htlc_maximum_msat: None,
            })
            .collect();
        builder = builder.private_route(RouteHint(hops));
    }
    let inner = builder.build_signed(|msg| secp.sign_ecdsa_recoverable(msg, node_secret))?;
    let payee = PublicKey::from_secret_key(secp, node_secret);
    let text = inner.to_string();
    Ok(Invoice { inner, payee, text })
}

/// Parses and validates an invoice string (any network; check [`Invoice::currency`]).
///
/// Signature rule (BOLT 11): with an `n` field the signature must be low-S and verify
/// against it; without one, the payee is the key recovered from the signature as written
/// (high-S accepted), and the signature must verify against that key.
pub fn parse_invoice(s: &str) -> Result<Invoice, InvoiceError> {
    if s.len() > MAX_INVOICE_LEN {
        return Err(InvoiceError::TooLong(s.len()));
    }
    let signed = SignedRawBolt11Invoice::from_str(s)?;
    let has_n_field = signed.raw_invoice().payee_pub_key().is_some();
    if has_n_field && is_high_s(&signed.signature().0) {
        return Err(InvoiceError::HighSWithPayeeField);
    }
    match Bolt11Invoice::from_signed(signed.clone()) {
        Ok(inner) => {
            let payee = inner.get_payee_pub_key();
            Ok(Invoice {
                inner,
                payee,
                text: s.to_owned(),
            })
        }
        Err(Bolt11SemanticError::InvalidSignature) if !has_n_field => {
            let (payee, normalized) = accept_high_s(&signed)?;
            let inner = Bolt11Invoice::from_signed(normalized)?;
            Ok(Invoice {
                inner,
                payee,
                text: s.to_owned(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The route hints of an invoice string that [`parse_invoice`] already accepted (a
/// payment's stored invoice, read again at every route search): decoded without checking
/// the signature again, which costs `lightning-invoice` three public-key recoveries and a
/// verification. Never use it on an invoice that was not validated first.
pub fn route_hints_of_accepted(s: &str) -> Result<Vec<Vec<RouteHintHop>>, InvoiceError> {
    if s.len() > MAX_INVOICE_LEN {
        return Err(InvoiceError::TooLong(s.len()));
    }
    let signed = SignedRawBolt11Invoice::from_str(s.trim())?;
    Ok(signed
        .raw_invoice()
        .private_routes()
        .into_iter()
        .map(|route| hint_hops(route))
        .collect())
}

/// The payment hash an invoice string names, read without checking its signature or any
/// other BOLT 11 rule: only for looking up earlier payments of the same invoice before
/// [`parse_invoice`] validates it (an invalid invoice is refused there).
pub fn payment_hash_unverified(s: &str) -> Result<PaymentHash, InvoiceError> {
    if s.len() > MAX_INVOICE_LEN {
        return Err(InvoiceError::TooLong(s.len()));
    }
    let signed = SignedRawBolt11Invoice::from_str(s.trim())?;
    let hash = signed
        .raw_invoice()
        .payment_hash()
        .ok_or(InvoiceError::Semantic(Bolt11SemanticError::NoPaymentHash))?;
    Ok(PaymentHash(hash.0.to_byte_array()))
}

/// One route hint of `lightning-invoice` as our hops.
fn hint_hops(hint: &lightning_invoice::RouteHint) -> Vec<RouteHintHop> {
    hint.0
        .iter()
        .map(|h| RouteHintHop {
            src_node_id: h.src_node_id,
            short_channel_id: h.short_channel_id,
            fee_base_msat: h.fees.base_msat,
            fee_proportional_millionths: h.fees.proportional_millionths,
            cltv_expiry_delta: h.cltv_expiry_delta,
        })
        .collect()
}

/// For an invoice without `n` whose signature has a high S: recovers the payee from the
/// signature as written, checks plain ECDSA against it, and re-expresses the same
/// signature in low-S form (flipped recovery id) so `lightning-invoice` accepts it.
fn accept_high_s(
    signed: &SignedRawBolt11Invoice,
) -> Result<(PublicKey, SignedRawBolt11Invoice), InvoiceError> {
    let bad = || InvoiceError::Semantic(Bolt11SemanticError::InvalidSignature);
    let secp = Secp256k1::verification_only();
    let msg = Message::from_digest(*signed.signable_hash());
    let sig: &RecoverableSignature = &signed.signature().0;
    let payee = secp.recover_ecdsa(&msg, sig).map_err(|_| bad())?;
    if !is_high_s(sig) {
        return Err(bad());
    }
    let (rec_id, compact) = sig.serialize_compact();
    let mut standard = Signature::from_compact(&compact).map_err(|_| bad())?;
    standard.normalize_s();
    secp.verify_ecdsa(&msg, &standard, &payee)
        .map_err(|_| bad())?;
    let flipped = RecoveryId::from_i32(rec_id.to_i32() ^ 1).map_err(|_| bad())?;
    let low_s = RecoverableSignature::from_compact(&standard.serialize_compact(), flipped)
        .map_err(|_| bad())?;
    let (raw, _, _) = signed.clone().into_parts();
    let resigned = raw.sign::<_, ()>(|_| Ok(low_s)).map_err(|_| bad())?;
    // The re-expressed signature must recover the very same key.
    let check = resigned.recover_payee_pub_key().map_err(|_| bad())?;
    if check.0 != payee {
        return Err(bad());
    }
    Ok((payee, resigned))
}

/// True if the signature's S is above n/2 (normalizing would change it).
fn is_high_s(sig: &RecoverableSignature) -> bool {
    let standard = sig.to_standard();
    let mut normalized = standard;
    normalized.normalize_s();
    normalized != standard
}

impl Invoice {
    /// The invoice string (as parsed, or as created).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The underlying `lightning-invoice` value, for anything not wrapped here.
    pub fn bolt11(&self) -> &Bolt11Invoice {
        &self.inner
    }

    /// The payee's node id (`n` field, or recovered from the signature).
    pub fn payee(&self) -> PublicKey {
        self.payee
    }

    /// Payment hash (`p`).
    pub fn payment_hash(&self) -> PaymentHash {
        PaymentHash(self.inner.payment_hash().to_byte_array())
    }

    /// Payment secret (`s`).
    pub fn payment_secret(&self) -> PaymentSecret {
        PaymentSecret(self.inner.payment_secret().0)
    }

    /// Amount requested, if any.
    pub fn amount_msat(&self) -> Option<u64> {
        self.inner.amount_milli_satoshis()
    }

    /// The description or its hash.
    pub fn description(&self) -> InvoiceDescription {
        match self.inner.description() {
            Bolt11InvoiceDescriptionRef::Direct(d) => {
                InvoiceDescription::Direct(d.as_inner().0.clone())
            }
            Bolt11InvoiceDescriptionRef::Hash(h) => InvoiceDescription::Hash(h.0.to_byte_array()),
        }
    }

    /// Creation time, UNIX seconds.
    pub fn timestamp_secs(&self) -> u64 {
        self.inner.duration_since_epoch().as_secs()
    }

    /// Validity in seconds (3600 when the `x` field is absent).
    pub fn expiry_secs(&self) -> u64 {
        self.inner.expiry_time().as_secs()
    }

    /// True if `now_secs` (UNIX seconds, from the caller) is past the expiry.
    pub fn is_expired_at(&self, now_secs: u64) -> bool {
        self.timestamp_secs().saturating_add(self.expiry_secs()) <= now_secs
    }

    /// `min_final_cltv_expiry_delta` (18 when the `c` field is absent).
    pub fn min_final_cltv_expiry_delta(&self) -> u64 {
        self.inner.min_final_cltv_expiry_delta()
    }

    /// The invoice's network.
    pub fn currency(&self) -> Currency {
        self.inner.currency()
    }

    /// `payment_metadata` (`m`), to echo in the final hop payload.
    pub fn payment_metadata(&self) -> Option<&[u8]> {
        self.inner.payment_metadata().map(|v| v.as_slice())
    }

    /// Feature bits set in the `9` field, ascending.
    pub fn feature_bits(&self) -> Vec<usize> {
        let Some(f) = self.inner.features() else {
            return Vec::new();
        };
        let mut bits = Vec::new();
        for (i, byte) in f.le_flags().iter().enumerate() {
            for j in 0..8 {
                if byte & (1 << j) != 0 {
                    bits.push(i * 8 + j);
                }
            }
        }
        bits
    }

    /// Private route hints.
    pub fn route_hints(&self) -> Vec<Vec<RouteHintHop>> {
        self.inner.route_hints().iter().map(hint_hops).collect()
    }

    /// Fallback on-chain addresses, as strings.
    pub fn fallback_addresses(&self) -> Vec<String> {
        self.inner
            .fallback_addresses()
            .iter()
            .map(|a| a.to_string())
            .collect()
    }
}
