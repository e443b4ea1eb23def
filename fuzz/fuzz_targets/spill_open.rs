#![no_main]

include!("../common/spill_open.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_spill_open(data));
