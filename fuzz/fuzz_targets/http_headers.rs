#![no_main]

include!("../common/http_headers.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_http_headers(data));
