//! TLV streams (BOLT 1): strictly increasing types, minimal BigSize type and length,
//! unknown even types rejected, unknown odd types skipped (kept so they can be re-encoded).
//!
//! Owns: the generic record layer and the [`TlvValue`] trait for typed record values.
//! Must never panic or allocate beyond the input on peer bytes.

use bitcoin::secp256k1::PublicKey;

use crate::codec::{decode_truncated, encode_truncated, write_bigsize, DecodeError, Reader};

/// One TLV record: type and raw value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlvRecord {
    /// Record type.
    pub typ: u64,
    /// Raw value bytes.
    pub value: Vec<u8>,
}

/// A decoded TLV stream: records in strictly increasing type order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct TlvStream {
    /// The records, sorted by strictly increasing type.
    pub records: Vec<TlvRecord>,
}

impl TlvStream {
    /// Decodes a whole TLV stream. `is_known(t)` says which types the caller understands:
    /// an unknown even type is an error, an unknown odd type is kept but ignored.
    pub fn decode(bytes: &[u8], is_known: impl Fn(u64) -> bool) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let mut records = Vec::new();
        let mut prev: Option<u64> = None;
        while r.remaining() > 0 {
            let typ = r.bigsize()?;
            let len = r.bigsize()?;
            if len > r.remaining() as u64 {
                return Err(DecodeError::TlvLengthOverflow(len));
            }
            // `len <= remaining` so the cast cannot truncate.
            let value = r.take(len as usize)?;
            if let Some(p) = prev {
                if typ <= p {
                    return Err(DecodeError::TlvNotIncreasing { typ, prev: p });
                }
            }
            prev = Some(typ);
            if !is_known(typ) && typ % 2 == 0 {
                return Err(DecodeError::UnknownEvenTlv(typ));
            }
            records.push(TlvRecord {
                typ,
                value: value.to_vec(),
            });
        }
        Ok(TlvStream { records })
    }

    /// Appends the stream's encoding. Records must already be sorted and unique.
    pub fn encode(&self, w: &mut Vec<u8>) {
        write_records(&self.records, w);
    }

    /// Removes and returns the value of record `typ`, if present.
    pub fn take(&mut self, typ: u64) -> Option<Vec<u8>> {
        let i = self.records.iter().position(|r| r.typ == typ)?;
        Some(self.records.remove(i).value)
    }

    /// Value of record `typ`, if present.
    pub fn get(&self, typ: u64) -> Option<&[u8]> {
        self.records
            .iter()
            .find(|r| r.typ == typ)
            .map(|r| r.value.as_slice())
    }

    /// True if there are no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Appends records (already sorted, unique types) as a TLV stream.
pub fn write_records(records: &[TlvRecord], w: &mut Vec<u8>) {
    for rec in records {
        write_bigsize(rec.typ, w);
        write_bigsize(rec.value.len() as u64, w);
        w.extend_from_slice(&rec.value);
    }
}

/// A typed TLV record value.
pub trait TlvValue: Sized {
    /// Encodes the value (without type and length).
    fn to_value(&self) -> Vec<u8>;
    /// Decodes the whole value slice.
    fn from_value(b: &[u8]) -> Result<Self, DecodeError>;
}

impl TlvValue for Vec<u8> {
    fn to_value(&self) -> Vec<u8> {
        self.clone()
    }
    fn from_value(b: &[u8]) -> Result<Self, DecodeError> {
        Ok(b.to_vec())
    }
}

impl TlvValue for PublicKey {
    fn to_value(&self) -> Vec<u8> {
        self.serialize().to_vec()
    }
    fn from_value(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != 33 {
            return Err(DecodeError::InvalidPoint);
        }
        PublicKey::from_slice(b).map_err(|_| DecodeError::InvalidPoint)
    }
}

/// A `u64` stored as exactly 8 big-endian bytes (e.g. a short channel id).
impl TlvValue for u64 {
    fn to_value(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }
    fn from_value(b: &[u8]) -> Result<Self, DecodeError> {
        let a: [u8; 8] = b.try_into().map_err(|_| DecodeError::BadTlvLength {
            typ: 0,
            len: b.len(),
        })?;
        Ok(u64::from_be_bytes(a))
    }
}

/// A truncated `tu64` value (minimal big-endian, at most 8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tu64(pub u64);

impl TlvValue for Tu64 {
    fn to_value(&self) -> Vec<u8> {
        encode_truncated(self.0)
    }
    fn from_value(b: &[u8]) -> Result<Self, DecodeError> {
        decode_truncated(b, 8).map(Tu64)
    }
}

/// A list of 32-byte values (e.g. chain hashes in `init`'s `networks`).
impl TlvValue for Vec<[u8; 32]> {
    fn to_value(&self) -> Vec<u8> {
        self.iter().flatten().copied().collect()
    }
    fn from_value(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() % 32 != 0 {
            return Err(DecodeError::BadTlvLength {
                typ: 0,
                len: b.len(),
            });
        }
        Ok(b.chunks_exact(32)
            .map(|c| {
                let mut a = [0u8; 32];
                a.copy_from_slice(c);
                a
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicates_and_unknown_even() {
        assert!(TlvStream::decode(&[1, 0, 1, 0], |_| false).is_err());
        assert!(TlvStream::decode(&[2, 0], |_| false).is_err());
        assert!(TlvStream::decode(&[2, 0], |t| t == 2).is_ok());
        let s = TlvStream::decode(&[1, 1, 7, 3, 0], |_| false).unwrap();
        assert_eq!(s.records.len(), 2);
        let mut w = Vec::new();
        s.encode(&mut w);
        assert_eq!(w, vec![1, 1, 7, 3, 0]);
    }
}
