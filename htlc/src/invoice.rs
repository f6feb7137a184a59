//! BOLT 11 invoices via the `lightning-invoice` crate: create and sign (regtest, `lnbcrt`),
//! parse and validate, and read the fields a payer needs.
//!
//! Owns the mapping between `lightning-invoice` types and this crate's payment types, and
//! the BOLT 11 checks of a decoded invoice: `lightning-invoice` decodes and encodes (bech32,
//! tagged fields, signature bytes), and its `Bolt11Invoice::from_signed` rules are applied
//! here with one secp256k1 operation instead of its eight (see `validated`);
//! `tests/invoice_rules.rs` holds the two to the same verdicts. Must never read the clock
//! (timestamps and "now" are arguments), never panic on a user-supplied string, and never
//! write bech32 by hand.

use core::str::FromStr;
use core::time::Duration;
use std::sync::OnceLock;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::ecdsa::RecoverableSignature;
use bitcoin::secp256k1::{Message, PublicKey, Secp256k1, SecretKey, Signing, VerifyOnly};
use bitcoin::{Address, Network, WitnessProgram};
use lightning_invoice::{
    Bolt11InvoiceDescription, Bolt11ParseError, Bolt11SemanticError, CreationError, Currency,
    Description, Fallback, InvoiceBuilder, ParseOrSemanticError, RouteHint, RoutingFees, Sha256,
    SignedRawBolt11Invoice, TaggedField, DEFAULT_EXPIRY_TIME, DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA,
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

/// A parsed, validated BOLT 11 invoice: every rule `lightning-invoice`'s `Bolt11Invoice`
/// checks, checked here (see [`parse_invoice`]), with the fields a payer needs extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    signed: SignedRawBolt11Invoice,
    payee: PublicKey,
    payment_hash: PaymentHash,
    payment_secret: PaymentSecret,
    description: InvoiceDescription,
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
    let signed = match builder
        .build_raw()?
        .sign::<_, core::convert::Infallible>(|msg| {
            Ok(secp.sign_ecdsa_recoverable(msg, node_secret))
        }) {
        Ok(signed) => signed,
        Err(never) => match never {},
    };
    let text = signed.to_string();
    let invoice = validated(signed, text)?;
    if invoice.payee != PublicKey::from_secret_key(secp, node_secret) {
        return Err(Bolt11SemanticError::InvalidSignature.into());
    }
    Ok(invoice)
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
    validated(signed, s.to_owned())
}

/// The one secp256k1 context of invoice checks: made (and randomized) once, not per invoice.
fn verifier() -> &'static Secp256k1<VerifyOnly> {
    static CONTEXT: OnceLock<Secp256k1<VerifyOnly>> = OnceLock::new();
    CONTEXT.get_or_init(Secp256k1::verification_only)
}

/// Checks BOLT 11's rules on a decoded invoice, in the order and with the errors of
/// `lightning-invoice`'s `Bolt11Invoice::from_signed` (field counts, feature bits,
/// signature, whole-msat amount), and extracts the fields every payment reads.
///
/// Written here rather than calling `from_signed` because that costs three public-key
/// recoveries, a verification and four freshly randomized secp256k1 contexts per invoice
/// (≈ 0.3 ms, a fifth of two daemons' CPU with 100 payments in flight); this costs one
/// recovery, or one verification with an `n` field, on a context made once.
fn validated(signed: SignedRawBolt11Invoice, text: String) -> Result<Invoice, InvoiceError> {
    use Bolt11SemanticError as E;
    let raw = signed.raw_invoice();
    let sig = &signed.signature().0;
    if raw.payee_pub_key().is_some() && is_high_s(sig) {
        return Err(InvoiceError::HighSWithPayeeField);
    }
    let count = |wanted: fn(&TaggedField) -> bool| {
        raw.known_tagged_fields()
            .filter(|field| wanted(field))
            .count()
    };
    let exactly_one = |n: usize, none: E, many: E| match n {
        0 => Err(none),
        1 => Ok(()),
        _ => Err(many),
    };
    exactly_one(
        count(|f| matches!(f, TaggedField::PaymentHash(_))),
        E::NoPaymentHash,
        E::MultiplePaymentHashes,
    )?;
    exactly_one(
        count(|f| {
            matches!(
                f,
                TaggedField::Description(_) | TaggedField::DescriptionHash(_)
            )
        }),
        E::NoDescription,
        E::MultipleDescriptions,
    )?;
    exactly_one(
        count(|f| matches!(f, TaggedField::PaymentSecret(_))),
        E::NoPaymentSecret,
        E::MultiplePaymentSecrets,
    )?;
    match raw.features() {
        Some(f) if !f.requires_unknown_bits() && f.supports_payment_secret() => {}
        _ => return Err(E::InvalidFeatures.into()),
    }
    let msg = Message::from_digest(*signed.signable_hash());
    let payee = match raw.payee_pub_key() {
        // BOLT 11: with `n`, the signature is checked against it (low S, checked above).
        Some(n) => {
            verifier()
                .verify_ecdsa(&msg, &sig.to_standard(), &n.0)
                .map_err(|_| E::InvalidSignature)?;
            n.0
        }
        // Without `n`, the payee is the key recovered from the signature as written (high
        // S accepted); a key that recovers is one the signature verifies against.
        None => verifier().recover_ecdsa(&msg, sig).map_err(|e| match e {
            bitcoin::secp256k1::Error::InvalidRecoveryId => E::InvalidRecoveryId,
            _ => E::InvalidSignature,
        })?,
    };
    if raw.amount_pico_btc().is_some_and(|pico| pico % 10 != 0) {
        return Err(E::ImpreciseAmount.into());
    }
    let payment_hash = raw.payment_hash().ok_or(E::NoPaymentHash)?;
    let payment_secret = raw.payment_secret().ok_or(E::NoPaymentSecret)?;
    let description = match (raw.description(), raw.description_hash()) {
        (Some(d), _) => InvoiceDescription::Direct(d.as_inner().0.clone()),
        (None, Some(h)) => InvoiceDescription::Hash(h.0.to_byte_array()),
        (None, None) => return Err(E::NoDescription.into()),
    };
    Ok(Invoice {
        payment_hash: PaymentHash(payment_hash.0.to_byte_array()),
        payment_secret: PaymentSecret(payment_secret.0),
        description,
        payee,
        text,
        signed,
    })
}

/// The route hints of an invoice string that [`parse_invoice`] already accepted (a
/// payment's stored invoice, read again at every route search): decoded without checking
/// its rules and signature again (a public-key recovery). Never use it on an invoice that
/// was not validated first.
pub fn route_hints_of_accepted(s: &str) -> Result<Vec<Vec<RouteHintHop>>, InvoiceError> {
    if s.len() > MAX_INVOICE_LEN {
        return Err(InvoiceError::TooLong(s.len()));
    }
    let signed = SignedRawBolt11Invoice::from_str(s.trim())?;
    Ok(route_hints_of(&signed))
}

/// The private route hints (`r`) of a decoded invoice, as our hops.
fn route_hints_of(signed: &SignedRawBolt11Invoice) -> Vec<Vec<RouteHintHop>> {
    signed
        .private_routes()
        .into_iter()
        .map(|route| hint_hops(route))
        .collect()
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

    /// The decoded invoice as `lightning-invoice` reads it, for anything not wrapped here.
    pub fn signed_raw(&self) -> &SignedRawBolt11Invoice {
        &self.signed
    }

    /// The payee's node id (`n` field, or recovered from the signature).
    pub fn payee(&self) -> PublicKey {
        self.payee
    }

    /// Payment hash (`p`).
    pub fn payment_hash(&self) -> PaymentHash {
        self.payment_hash
    }

    /// Payment secret (`s`).
    pub fn payment_secret(&self) -> PaymentSecret {
        self.payment_secret
    }

    /// Amount requested, if any.
    pub fn amount_msat(&self) -> Option<u64> {
        self.signed.amount_pico_btc().map(|pico| pico / 10)
    }

    /// The description or its hash.
    pub fn description(&self) -> InvoiceDescription {
        self.description.clone()
    }

    /// Creation time, UNIX seconds.
    pub fn timestamp_secs(&self) -> u64 {
        self.signed.raw_invoice().data.timestamp.as_unix_timestamp()
    }

    /// Validity in seconds (3600 when the `x` field is absent).
    pub fn expiry_secs(&self) -> u64 {
        self.signed
            .expiry_time()
            .map_or(DEFAULT_EXPIRY_TIME, |x| x.as_seconds())
    }

    /// True if `now_secs` (UNIX seconds, from the caller) is past the expiry.
    pub fn is_expired_at(&self, now_secs: u64) -> bool {
        self.timestamp_secs().saturating_add(self.expiry_secs()) <= now_secs
    }

    /// `min_final_cltv_expiry_delta` (18 when the `c` field is absent).
    pub fn min_final_cltv_expiry_delta(&self) -> u64 {
        self.signed
            .min_final_cltv_expiry_delta()
            .map_or(DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA, |c| c.0)
    }

    /// The invoice's network.
    pub fn currency(&self) -> Currency {
        self.signed.currency()
    }

    /// `payment_metadata` (`m`), to echo in the final hop payload.
    pub fn payment_metadata(&self) -> Option<&[u8]> {
        self.signed.payment_metadata().map(|v| v.as_slice())
    }

    /// Feature bits set in the `9` field, ascending.
    pub fn feature_bits(&self) -> Vec<usize> {
        let Some(f) = self.signed.features() else {
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
        route_hints_of(&self.signed)
    }

    /// Fallback on-chain addresses (`f`) on the invoice's network, as strings; a segwit
    /// program that is not a valid witness program is left out.
    pub fn fallback_addresses(&self) -> Vec<String> {
        let network = Network::from(self.currency());
        self.signed
            .fallbacks()
            .into_iter()
            .filter_map(|fallback| match fallback {
                Fallback::SegWitProgram { version, program } => {
                    WitnessProgram::new(*version, program)
                        .ok()
                        .map(|w| Address::from_witness_program(w, network))
                }
                Fallback::PubKeyHash(pkh) => Some(Address::p2pkh(*pkh, network)),
                Fallback::ScriptHash(sh) => Some(Address::p2sh_from_hash(*sh, network)),
            })
            .map(|a| a.to_string())
            .collect()
    }
}
