//! Bounded byte reader shared by the decoders of this crate. Every read checks the remaining
//! length first, so no decoder can panic or allocate more than the input it was given.

use thiserror::Error;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the field named here.
    #[error("truncated: input ends inside {0}")]
    Truncated(&'static str),
    /// A version byte this build does not know.
    #[error("unknown version {0}")]
    UnknownVersion(u8),
    /// A type or tag this build does not know.
    #[error("unknown type {0}")]
    UnknownType(u16),
    /// A field holds a value that is not allowed.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// Bytes remain after the last field where none are allowed.
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let (head, rest) = self
            .bytes
            .split_at_checked(n)
            .ok_or(DecodeError::Truncated(what))?;
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// A u16-length-prefixed byte string.
    pub(crate) fn bytes16(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u16(what)? as usize;
        self.take(len, what)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.bytes.len() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

/// Appends a u16-length-prefixed byte string; `bytes` must be at most 65535 bytes (callers
/// bound their fields below that).
pub(crate) fn put_bytes16(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}
