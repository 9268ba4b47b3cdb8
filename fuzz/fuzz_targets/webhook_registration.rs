#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medex::fuzzing::webhook_registration(data));
