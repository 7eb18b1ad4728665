#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lacre_fuzz::verify_pipeline(data));
