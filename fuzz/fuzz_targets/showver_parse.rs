//! Feeds arbitrary text to the `show version` parser and, when it succeeds,
//! to the UDI check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::smi::showver;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(parsed) = showver::parse(&text) {
        let _ = parsed.udi();
    }
});
