//! The envelope of every stored record of this crate — channel records
//! ([`crate::machine::codec`]) and monitor records ([`crate::monitor::records`]), in one of
//! two forms:
//! - **binary** (what is written now): one version byte, then the record in
//!   [postcard](https://postcard.jamesmunns.com/wire-format) — serde's data model with
//!   varint integers and length-prefixed bytes, no field names; keys, signatures, scripts,
//!   transactions and the onion as raw bytes (the serde helpers of the codecs check
//!   [`serde::Serializer::is_human_readable`]);
//! - **JSON** (older versions, still read): one object `{"v":<version>,"record":<record>}`.
//!
//! The two cannot be confused: a JSON envelope starts with `{` (0x7b), a binary one with its
//! version, which stays far below that.
//!
//! Owns: writing a binary envelope; reading either form in a single pass when its record
//! parses as the current type (the common case: a start decodes every stored record), and
//! a JSON envelope's version otherwise, so that each codec can upgrade an old version or
//! refuse an unknown one. Must never: judge versions (each codec does), accept trailing
//! bytes after a binary record, allocate beyond the input's size, or panic on garbage.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[cfg(test)]
#[derive(Serialize)]
struct EnvelopeRef<'a, T> {
    v: u32,
    record: &'a T,
}

/// A whole envelope (also for a codec that reads an old version through a
/// `serde_json::Value`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Envelope<T> {
    pub(crate) v: u32,
    pub(crate) record: T,
}

#[derive(Deserialize)]
struct Head {
    v: u32,
}

/// What [`read`] found in an envelope.
pub(crate) enum Read<T> {
    /// Version `0`'s record parsed as `T`.
    Parsed(u32, T),
    /// Version `0`, whose document does not parse as an envelope of `T` (why: `1`).
    Unparsed(u32, String),
}

impl<T> Read<T> {
    /// The envelope's version.
    pub(crate) fn version(&self) -> u32 {
        match self {
            Read::Parsed(v, _) | Read::Unparsed(v, _) => *v,
        }
    }
}

/// The bytes of `record` in a JSON envelope of version `v` (the form older versions wrote;
/// kept for the tests that pin how those are read).
#[cfg(test)]
pub(crate) fn write_json<T: Serialize>(v: u32, record: &T) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&EnvelopeRef { v, record })
}

/// The bytes of `record` in a binary envelope of version `v`. Fails only if a `Serialize`
/// impl does (or asks for a sequence of unknown length, which postcard cannot write).
pub(crate) fn write<T: Serialize>(v: u8, record: &T) -> Result<Vec<u8>, postcard::Error> {
    debug_assert!(v < b'{', "a binary version must not look like JSON");
    postcard::to_extend(record, vec![v])
}

/// Whether `bytes` hold a JSON envelope (an older version) rather than a binary one.
pub(crate) fn is_json(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'{')
}

/// Reads a binary envelope: its version byte and its record. `Err` only for no bytes at all.
pub(crate) fn read_binary<T: DeserializeOwned>(bytes: &[u8]) -> Result<Read<T>, String> {
    let Some((&v, body)) = bytes.split_first() else {
        return Err("no bytes".into());
    };
    let v = u32::from(v);
    Ok(match postcard::take_from_bytes::<T>(body) {
        Ok((record, [])) => Read::Parsed(v, record),
        Ok((_, rest)) => Read::Unparsed(v, format!("{} bytes after the record", rest.len())),
        Err(e) => Read::Unparsed(v, e.to_string()),
    })
}

/// Reads a JSON envelope (see the module doc); `Err` when not even its version can be read.
pub(crate) fn read_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<Read<T>, String> {
    match serde_json::from_slice::<Envelope<T>>(bytes) {
        Ok(e) => Ok(Read::Parsed(e.v, e.record)),
        Err(e) => match serde_json::from_slice::<Head>(bytes) {
            Ok(h) => Ok(Read::Unparsed(h.v, e.to_string())),
            Err(_) => Err(e.to_string()),
        },
    }
}
