//! Fuzzes the `uptime` parser: any input is a value or a ParseError, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = pveops_core::facts::parse("uptime", &text);
});
