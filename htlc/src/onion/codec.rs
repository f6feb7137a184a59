//! Minimal private BigSize / truncated-integer / TLV-record codec for onion hop payloads
//! and failure messages.
//!
//! BigSize and truncated integers delegate to fulmen-wire's codec; the record iterator is
//! kept here because `invalid_onion_payload` needs each record's byte offset, which the
//! wire `TlvStream` does not keep. Must never panic or allocate on peer bytes: every read
//! is bounds-checked and borrows from the input.

use fulmen_wire::codec as wire_codec;
use thiserror::Error;

/// Why a BigSize, truncated integer or TLV stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The input ended before the value did.
    #[error("unexpected end of input")]
    UnexpectedEof,
    /// A BigSize used more bytes than needed.
    #[error("non-canonical BigSize encoding")]
    NonCanonicalBigSize,
    /// A truncated integer had a leading zero byte or was too long.
    #[error("non-minimal truncated integer")]
    NonMinimalTruncated,
    /// TLV types were not strictly increasing.
    #[error("TLV types not strictly increasing at type {0}")]
    TypesNotIncreasing(u64),
    /// A record's length ran past the end of the stream.
    #[error("TLV record of type {0} overruns the stream")]
    LengthOverrun(u64),
}

/// Reads a BigSize from the front of `input` (via fulmen-wire's reader); returns the
/// value and the bytes used.
pub fn read_bigsize(input: &[u8]) -> Result<(u64, usize), CodecError> {
    let mut r = wire_codec::Reader::new(input);
    let v = r.bigsize().map_err(|e| match e {
        wire_codec::DecodeError::NonCanonicalBigSize => CodecError::NonCanonicalBigSize,
        _ => CodecError::UnexpectedEof,
    })?;
    Ok((v, input.len() - r.remaining()))
}

pub use wire_codec::{bigsize_len, write_bigsize};

/// Decodes a truncated unsigned integer (`tu64`) of at most `max_len` bytes.
pub fn read_truncated(bytes: &[u8], max_len: usize) -> Result<u64, CodecError> {
    wire_codec::decode_truncated(bytes, max_len).map_err(|_| CodecError::NonMinimalTruncated)
}

/// Appends the minimal big-endian encoding of `value` (no leading zero bytes).
pub fn write_truncated(value: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&wire_codec::encode_truncated(value));
}

/// Appends one TLV record.
pub fn write_record(typ: u64, value: &[u8], out: &mut Vec<u8>) {
    write_bigsize(typ, out);
    write_bigsize(value.len() as u64, out);
    out.extend_from_slice(value);
}

/// One TLV record borrowed from a stream, with its byte offset in that stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record type.
    pub typ: u64,
    /// The record value.
    pub value: &'a [u8],
    /// Offset of the record's type field in the stream (for `invalid_onion_payload`).
    pub offset: usize,
}

/// Iterates the records of a TLV stream, checking canonical BigSize, strictly increasing
/// types and lengths within bounds. Yields an error once and then stops.
pub struct RecordIter<'a> {
    stream: &'a [u8],
    pos: usize,
    last_type: Option<u64>,
    failed: bool,
}

impl<'a> RecordIter<'a> {
    /// Starts iterating `stream`.
    pub fn new(stream: &'a [u8]) -> Self {
        RecordIter {
            stream,
            pos: 0,
            last_type: None,
            failed: false,
        }
    }

    fn next_record(&mut self) -> Result<Record<'a>, CodecError> {
        let offset = self.pos;
        let rest = self
            .stream
            .get(self.pos..)
            .ok_or(CodecError::UnexpectedEof)?;
        let (typ, n1) = read_bigsize(rest)?;
        if let Some(last) = self.last_type {
            if typ <= last {
                return Err(CodecError::TypesNotIncreasing(typ));
            }
        }
        let rest = rest.get(n1..).ok_or(CodecError::UnexpectedEof)?;
        let (len, n2) = read_bigsize(rest)?;
        let rest = rest.get(n2..).ok_or(CodecError::UnexpectedEof)?;
        let len = usize::try_from(len).map_err(|_| CodecError::LengthOverrun(typ))?;
        let value = rest.get(..len).ok_or(CodecError::LengthOverrun(typ))?;
        self.pos += n1 + n2 + len;
        self.last_type = Some(typ);
        Ok(Record { typ, value, offset })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.stream.len() {
            return None;
        }
        let r = self.next_record();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

/// Big-endian reader over a byte slice for fixed-layout failure messages.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError::UnexpectedEof);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Reads a big-endian u16.
    pub fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a big-endian u64.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }

    /// Reads 32 bytes.
    pub fn array32(&mut self) -> Result<[u8; 32], CodecError> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }

    /// Reads a u16 length and then that many bytes.
    pub fn u16_prefixed(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// What is left unread.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigsize_round_trip_and_canonical() {
        for v in [
            0u64,
            0xfc,
            0xfd,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write_bigsize(v, &mut out);
            assert_eq!(out.len(), bigsize_len(v));
            assert_eq!(read_bigsize(&out), Ok((v, out.len())));
        }
        assert_eq!(
            read_bigsize(&[0xfd, 0x00, 0xfc]),
            Err(CodecError::NonCanonicalBigSize)
        );
        assert_eq!(
            read_bigsize(&[0xfe, 0x00, 0x00]),
            Err(CodecError::UnexpectedEof)
        );
    }

    #[test]
    fn truncated_ints() {
        let mut out = Vec::new();
        write_truncated(0, &mut out);
        assert!(out.is_empty());
        write_truncated(0x0100, &mut out);
        assert_eq!(out, vec![1, 0]);
        assert_eq!(read_truncated(&[1, 0], 8), Ok(256));
        assert_eq!(
            read_truncated(&[0, 1], 8),
            Err(CodecError::NonMinimalTruncated)
        );
        assert_eq!(
            read_truncated(&[1; 5], 4),
            Err(CodecError::NonMinimalTruncated)
        );
    }

    #[test]
    fn tlv_stream_rules() {
        let ok = [1u8, 1, 9, 3, 0];
        let recs: Vec<_> = RecordIter::new(&ok).collect();
        assert_eq!(recs.len(), 2);
        let bad_order = [3u8, 0, 1, 0];
        assert!(RecordIter::new(&bad_order).any(|r| r.is_err()));
        let overrun = [1u8, 5, 0];
        assert_eq!(
            RecordIter::new(&overrun).next(),
            Some(Err(CodecError::LengthOverrun(1)))
        );
    }
}
