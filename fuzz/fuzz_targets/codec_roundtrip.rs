#![no_main]

include!("../common/codec_roundtrip.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_codec_roundtrip(data));
