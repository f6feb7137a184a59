//! The envelope of every stored record of this crate — channel records
//! ([`crate::machine::codec`]) and monitor records ([`crate::monitor::records`]): one JSON
//! object `{"v":<format version>,"record":<record>}`.
//!
//! Owns: writing an envelope and reading one in a single pass when its record parses as the
//! current type (the common case: a start decodes every stored record), reading only its
//! version otherwise, so that each codec can upgrade an old version or refuse an unknown
//! one. Must never: judge versions (each codec does), or panic on garbage.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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

/// The bytes of `record` in an envelope of version `v`.
pub(crate) fn write<T: Serialize>(v: u32, record: &T) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&EnvelopeRef { v, record })
}

/// Reads an envelope (see the module doc); `Err` when not even its version can be read.
pub(crate) fn read<T: DeserializeOwned>(bytes: &[u8]) -> Result<Read<T>, String> {
    match serde_json::from_slice::<Envelope<T>>(bytes) {
        Ok(e) => Ok(Read::Parsed(e.v, e.record)),
        Err(e) => match serde_json::from_slice::<Head>(bytes) {
            Ok(h) => Ok(Read::Unparsed(h.v, e.to_string())),
            Err(_) => Err(e.to_string()),
        },
    }
}
