//! Replays every stored fuzz input (the corpus and any crash artifacts
//! under `fuzz/`) through the same checks the fuzz targets run, so a plain
//! `cargo test` catches a regression of a fuzz finding without libFuzzer
//! or nightly.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

include!("../../../fuzz/common/codec_decode.rs");
include!("../../../fuzz/common/codec_roundtrip.rs");
include!("../../../fuzz/common/spill_open.rs");
include!("../../../fuzz/common/cache_ops.rs");

/// Runs `check` on every file stored for `target`; returns how many.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut failures = Vec::new();
    let mut count = 0;
    for kind in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if !path.is_file() {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            count += 1;
            if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "fuzz inputs of {target} fail: {failures:#?}"
    );
    count
}

#[test]
fn codec_decode_inputs() {
    check_codec_decode(&[]);
    assert!(replay("codec_decode", check_codec_decode) >= 10);
}

#[test]
fn codec_roundtrip_inputs() {
    check_codec_roundtrip(&[7; 64]);
    assert!(replay("codec_roundtrip", check_codec_roundtrip) >= 10);
}

#[test]
fn spill_open_inputs() {
    check_spill_open(&[]);
    assert!(replay("spill_open", check_spill_open) >= 10);
}

#[test]
fn cache_ops_inputs() {
    check_cache_ops(&[0, 1, 2, 4, 1, 0, 6, 0, 0, 4, 1, 0]);
    assert!(replay("cache_ops", check_cache_ops) >= 10);
}
