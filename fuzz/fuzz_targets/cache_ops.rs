#![no_main]

include!("../common/spill_open.rs");
include!("../common/cache_ops.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_cache_ops(data));
