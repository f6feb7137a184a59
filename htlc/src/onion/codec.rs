//! Minimal private BigSize / truncated-integer / TLV-record codec for onion hop payloads
//! and failure messages.
//!
//! Kept private to this crate (fulmen-wire owns the general codec; this is the small subset
//! the onion needs, written so the onion does not wait on it). Must never panic or
//! allocate on peer bytes: every read is bounds-checked and borrows from the input.

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

/// Reads a BigSize from the front of `input`; returns the value and the bytes used.
pub fn read_bigsize(input: &[u8]) -> Result<(u64, usize), CodecError> {
    let first = *input.first().ok_or(CodecError::UnexpectedEof)?;
    let (len, min) = match first {
        0xfd => (2usize, 0xfdu64),
        0xfe => (4, 0x1_0000),
        0xff => (8, 0x1_0000_0000),
        b => return Ok((u64::from(b), 1)),
    };
    let bytes = input.get(1..1 + len).ok_or(CodecError::UnexpectedEof)?;
    let value = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if value < min {
        return Err(CodecError::NonCanonicalBigSize);
    }
    Ok((value, 1 + len))
}

/// Appends the BigSize encoding of `value` to `out`.
pub fn write_bigsize(value: u64, out: &mut Vec<u8>) {
    match value {
        0..=0xfc => out.push(value as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(value as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(value as u32).to_be_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&value.to_be_bytes());
        }
    }
}

/// Number of bytes the BigSize encoding of `value` takes.
pub fn bigsize_len(value: u64) -> usize {
    match value {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Decodes a truncated unsigned integer (`tu64`) of at most `max_len` bytes.
pub fn read_truncated(bytes: &[u8], max_len: usize) -> Result<u64, CodecError> {
    if bytes.len() > max_len {
        return Err(CodecError::NonMinimalTruncated);
    }
    if bytes.first() == Some(&0) {
        return Err(CodecError::NonMinimalTruncated);
    }
    Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// Appends the minimal big-endian encoding of `value` (no leading zero bytes).
pub fn write_truncated(value: u64, out: &mut Vec<u8>) {
    let bytes = value.to_be_bytes();
    let skip = (value.leading_zeros() / 8) as usize;
    out.extend_from_slice(&bytes[skip..]);
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
