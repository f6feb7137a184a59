//! Fuzz target: the stored-record decoders — `Record::decode` (channel records) and
//! `MonitorRecord::decode` — on arbitrary bytes, in both the binary form and the older JSON
//! one (a stored file may be corrupt). Must never panic or allocate beyond the input; a
//! record that decodes must re-encode to bytes that decode to the same record. Owns nothing
//! else.
#![no_main]

use fulmen_channel::machine::Record;
use fulmen_channel::monitor::MonitorRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Record::decode(data) {
        assert_eq!(Record::decode(&r.encode()).ok(), Some(r));
    }
    if let Ok(r) = MonitorRecord::decode(data) {
        assert_eq!(MonitorRecord::decode(&r.encode()).ok(), Some(r));
    }
});
