#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lacre_fuzz::envelope_parse(data));
