//! Low-level byte codec: a bounds-checked [`Reader`], the [`Field`] trait for fixed-layout
//! message fields, BigSize, truncated integers and minimal signed integers (BOLT 1).
//!
//! Owns: turning primitive values into bytes and back. Must never panic or allocate more
//! than the input length on peer bytes; every read is bounds-checked.

use bitcoin::secp256k1::{ecdsa::Signature, PublicKey};

/// Why bytes could not be decoded. Every variant is a protocol violation by the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before a field was complete.
    #[error("unexpected end of input (needed {needed} more bytes)")]
    UnexpectedEof {
        /// Bytes still needed.
        needed: usize,
    },
    /// A BigSize was not minimally encoded.
    #[error("BigSize is not canonical")]
    NonCanonicalBigSize,
    /// A truncated integer had a leading zero byte or was too long.
    #[error("truncated integer is not minimal or too long")]
    NonMinimalTruncatedInt,
    /// A TLV record's type was not strictly greater than the previous one.
    #[error("TLV type {typ} is not strictly increasing (previous {prev})")]
    TlvNotIncreasing {
        /// Type of the offending record.
        typ: u64,
        /// Type of the previous record.
        prev: u64,
    },
    /// A TLV record with an even type we do not understand.
    #[error("unknown even TLV type {0}")]
    UnknownEvenTlv(u64),
    /// A TLV record's value had the wrong length for its type.
    #[error("TLV type {typ}: bad value length {len}")]
    BadTlvLength {
        /// The record type.
        typ: u64,
        /// The length found.
        len: usize,
    },
    /// A TLV length larger than the remaining input.
    #[error("TLV length {0} exceeds remaining input")]
    TlvLengthOverflow(u64),
    /// A 33-byte point that is not on the curve.
    #[error("invalid secp256k1 point")]
    InvalidPoint,
    /// A 64-byte compact signature that does not parse.
    #[error("invalid compact signature")]
    InvalidSignature,
    /// A message type that is even and unknown to us (peer must be disconnected).
    #[error("unknown even message type {0}")]
    UnknownEvenMessage(u16),
    /// A message shorter than its 2-byte type.
    #[error("message shorter than its type field")]
    MissingType,
    /// The `init` features require a bit we do not know.
    #[error("unknown required feature bit {0}")]
    UnknownRequiredFeature(usize),
    /// Bytes left over where none are allowed.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// A semantically invalid value.
    #[error("invalid value: {0}")]
    InvalidValue(&'static str),
}

/// A bounds-checked cursor over peer bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Wraps `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Takes all remaining bytes.
    pub fn rest(&mut self) -> &'a [u8] {
        let r = self.buf;
        self.buf = &[];
        r
    }

    /// Takes exactly `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::UnexpectedEof {
                needed: n - self.buf.len(),
            });
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads a byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a big-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a big-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads a BigSize (BOLT 1), rejecting non-minimal encodings.
    pub fn bigsize(&mut self) -> Result<u64, DecodeError> {
        let first = self.u8()?;
        let (v, min) = match first {
            0xfd => (u64::from(self.u16()?), 0xfd),
            0xfe => (u64::from(self.u32()?), 0x1_0000),
            0xff => (self.u64()?, 0x1_0000_0000),
            b => return Ok(u64::from(b)),
        };
        if v < min {
            return Err(DecodeError::NonCanonicalBigSize);
        }
        Ok(v)
    }

    /// Errors if any byte is left.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }
}

/// Appends a BigSize encoding of `v` to `w`.
pub fn write_bigsize(v: u64, w: &mut Vec<u8>) {
    if v < 0xfd {
        w.push(v as u8);
    } else if v <= 0xffff {
        w.push(0xfd);
        w.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= 0xffff_ffff {
        w.push(0xfe);
        w.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        w.push(0xff);
        w.extend_from_slice(&v.to_be_bytes());
    }
}

/// Length in bytes of the BigSize encoding of `v`.
pub fn bigsize_len(v: u64) -> usize {
    match v {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Minimal big-endian encoding of an unsigned integer (BOLT 1 `tu16`/`tu32`/`tu64`).
pub fn encode_truncated(v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = (v.leading_zeros() / 8) as usize;
    bytes[skip..].to_vec()
}

/// Decodes a truncated integer of at most `max_len` bytes, rejecting leading zeros.
pub fn decode_truncated(b: &[u8], max_len: usize) -> Result<u64, DecodeError> {
    if b.len() > max_len || b.len() > 8 {
        return Err(DecodeError::NonMinimalTruncatedInt);
    }
    if b.first() == Some(&0) {
        return Err(DecodeError::NonMinimalTruncatedInt);
    }
    Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

/// Minimal two's-complement big-endian encoding of a signed integer (BOLT 1 Appendix D):
/// the shortest of 1, 2, 4 or 8 bytes that holds the value.
pub fn encode_signed_minimal(v: i64) -> Vec<u8> {
    if i8::try_from(v).is_ok() {
        (v as i8).to_be_bytes().to_vec()
    } else if i16::try_from(v).is_ok() {
        (v as i16).to_be_bytes().to_vec()
    } else if i32::try_from(v).is_ok() {
        (v as i32).to_be_bytes().to_vec()
    } else {
        v.to_be_bytes().to_vec()
    }
}

/// Decodes a signed integer written as 1, 2, 4 or 8 big-endian two's-complement bytes,
/// rejecting encodings that are not the shortest possible.
pub fn decode_signed_minimal(b: &[u8]) -> Result<i64, DecodeError> {
    let v = match b.len() {
        1 => i64::from(i8::from_be_bytes([b[0]])),
        2 => i64::from(i16::from_be_bytes([b[0], b[1]])),
        4 => i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        8 => i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        _ => return Err(DecodeError::InvalidValue("signed integer length")),
    };
    if encode_signed_minimal(v).len() != b.len() {
        return Err(DecodeError::InvalidValue("signed integer not minimal"));
    }
    Ok(v)
}

/// A fixed-layout message field.
pub trait Field: Sized {
    /// Appends the encoding.
    fn write(&self, w: &mut Vec<u8>);
    /// Reads one value.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

macro_rules! int_field {
    ($($t:ty => $m:ident),*) => {$(
        impl Field for $t {
            fn write(&self, w: &mut Vec<u8>) {
                w.extend_from_slice(&self.to_be_bytes());
            }
            fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.$m()
            }
        }
    )*};
}
int_field!(u8 => u8, u16 => u16, u32 => u32, u64 => u64);

impl<const N: usize> Field for [u8; N] {
    fn write(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(self);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.array()
    }
}

impl Field for PublicKey {
    fn write(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.serialize());
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        // Gossip names the same keys again and again: see [`crate::key_cache`].
        crate::key_cache::parse_compressed(r.take(33)?).map_err(|_| DecodeError::InvalidPoint)
    }
}

impl Field for Signature {
    fn write(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.serialize_compact());
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Signature::from_compact(r.take(64)?).map_err(|_| DecodeError::InvalidSignature)
    }
}

/// A byte string with a u16 length prefix (`u16 len, len*byte`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct LenBytes(pub Vec<u8>);

impl Field for LenBytes {
    fn write(&self, w: &mut Vec<u8>) {
        // Encoders are given at most u16::MAX bytes by construction; clamp defensively.
        let n = self.0.len().min(usize::from(u16::MAX));
        w.extend_from_slice(&(n as u16).to_be_bytes());
        w.extend_from_slice(&self.0[..n]);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.u16()?;
        Ok(LenBytes(r.take(usize::from(n))?.to_vec()))
    }
}

impl Field for Vec<Signature> {
    fn write(&self, w: &mut Vec<u8>) {
        let n = self.len().min(usize::from(u16::MAX));
        w.extend_from_slice(&(n as u16).to_be_bytes());
        for s in &self[..n] {
            s.write(w);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = usize::from(r.u16()?);
        // Bound the allocation by what the input can actually hold.
        let mut out = Vec::with_capacity(n.min(r.remaining() / 64));
        for _ in 0..n {
            out.push(Signature::read(r)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_roundtrip_and_minimality() {
        for v in [0u64, 1, 255, 256, u64::MAX] {
            let e = encode_truncated(v);
            assert_eq!(decode_truncated(&e, 8).unwrap(), v);
        }
        assert!(decode_truncated(&[0, 1], 8).is_err());
        assert!(decode_truncated(&[1, 0, 0], 2).is_err());
    }

    #[test]
    fn lenbytes_truncated_is_error() {
        assert!(LenBytes::read(&mut Reader::new(&[0, 5, 1, 2])).is_err());
        assert!(Vec::<Signature>::read(&mut Reader::new(&[0xff, 0xff, 1])).is_err());
    }
}
