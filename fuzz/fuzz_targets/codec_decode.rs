#![no_main]

include!("../common/codec_decode.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_codec_decode(data));
