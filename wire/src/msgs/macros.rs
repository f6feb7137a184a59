//! The `wire_message!` macro: declares a BOLT message struct from its field list, with
//! fixed fields (any [`crate::codec::Field`]) followed either by a TLV extension stream
//! (known records become typed `Option` fields, unknown odd records are kept in
//! `extra_tlvs`) or, for gossip, by raw `excess` bytes that are covered by signatures.
//!
//! Owns: code generation only. Generated decoders never panic.

/// Declares a message struct with `TYPE`, `encode_payload` and `decode_payload`.
macro_rules! wire_message {
    (
        $(#[$m:meta])*
        $name:ident = $ty:literal {
            $( $(#[$fm:meta])* $f:ident : $ft:ty ),* $(,)?
        }
        tlvs {
            $( $(#[$tm:meta])* $tt:literal => $tf:ident : $tft:ty ),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fm])* pub $f: $ft, )*
            $( $(#[$tm])* pub $tf: Option<$tft>, )*
            /// Unknown odd TLV records received in the extension (kept for re-encoding;
            /// must not contain known types).
            pub extra_tlvs: $crate::tlv::TlvStream,
        }

        impl $name {
            /// BOLT message type number.
            pub const TYPE: u16 = $ty;
            /// TLV types of the extension that this implementation understands.
            pub const KNOWN_TLVS: &'static [u64] = &[$($tt),*];

            /// Appends the payload (everything after the 2-byte type).
            pub fn encode_payload(&self, w: &mut Vec<u8>) {
                $( $crate::codec::Field::write(&self.$f, w); )*
                #[allow(unused_mut)]
                let mut recs = self.extra_tlvs.records.clone();
                $(
                    if let Some(v) = &self.$tf {
                        recs.push($crate::tlv::TlvRecord {
                            typ: $tt,
                            value: $crate::tlv::TlvValue::to_value(v),
                        });
                    }
                )*
                recs.sort_by_key(|r| r.typ);
                $crate::tlv::write_records(&recs, w);
            }

            /// Decodes the payload (everything after the 2-byte type).
            pub fn decode_payload(
                r: &mut $crate::codec::Reader<'_>,
            ) -> Result<Self, $crate::codec::DecodeError> {
                $( let $f = <$ft as $crate::codec::Field>::read(r)?; )*
                #[allow(unused_mut)]
                let mut extra_tlvs =
                    $crate::tlv::TlvStream::decode(r.rest(), |t| Self::KNOWN_TLVS.contains(&t))?;
                $(
                    let $tf = match extra_tlvs.take($tt) {
                        Some(v) => Some(<$tft as $crate::tlv::TlvValue>::from_value(&v)?),
                        None => None,
                    };
                )*
                Ok(Self { $($f,)* $($tf,)* extra_tlvs })
            }
        }
    };
    (
        $(#[$m:meta])*
        $name:ident = $ty:literal {
            $( $(#[$fm:meta])* $f:ident : $ft:ty ),* $(,)?
        }
        excess
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fm])* pub $f: $ft, )*
            /// Bytes after the known fields (future extensions). They are covered by the
            /// message signature, so they are kept verbatim.
            pub excess: Vec<u8>,
        }

        impl $name {
            /// BOLT message type number.
            pub const TYPE: u16 = $ty;

            /// Appends the payload (everything after the 2-byte type).
            pub fn encode_payload(&self, w: &mut Vec<u8>) {
                $( $crate::codec::Field::write(&self.$f, w); )*
                w.extend_from_slice(&self.excess);
            }

            /// Decodes the payload (everything after the 2-byte type).
            pub fn decode_payload(
                r: &mut $crate::codec::Reader<'_>,
            ) -> Result<Self, $crate::codec::DecodeError> {
                $( let $f = <$ft as $crate::codec::Field>::read(r)?; )*
                let excess = r.rest().to_vec();
                Ok(Self { $($f,)* excess })
            }
        }
    };
}
