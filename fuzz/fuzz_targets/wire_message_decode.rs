//! Fuzz target: `Message::decode` on arbitrary bytes, plus the TLV and BigSize layers.
//! Must never panic; whatever decodes must re-encode to bytes that decode to the same
//! message (and, for the exact input, re-encode byte for byte).
#![no_main]

use fulmen_wire::codec::Reader;
use fulmen_wire::tlv::TlvStream;
use fulmen_wire::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        let re = m.encode();
        assert_eq!(re, data, "decode/encode is not byte exact");
        assert_eq!(Message::decode(&re).as_ref(), Ok(&m));
    }
    if let Ok(s) = TlvStream::decode(data, |t| t < 16) {
        let mut w = Vec::new();
        s.encode(&mut w);
        assert_eq!(w, data);
    }
    let _ = Reader::new(data).bigsize();
});
