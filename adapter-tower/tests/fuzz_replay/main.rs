//! Replays the stored inputs of the `http_headers` fuzz target (corpus and
//! crash artifacts under `fuzz/`) in plain `cargo test`.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

include!("../../../fuzz/common/http_headers.rs");

#[test]
fn http_headers_inputs() {
    check_http_headers(b"cache-control:max-age=1\0cache-control:max-age=60\netag:\"x\"");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut failures = Vec::new();
    let mut count = 0;
    for kind in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(kind).join("http_headers")) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                count += 1;
                let data = std::fs::read(&path).unwrap();
                if catch_unwind(AssertUnwindSafe(|| check_http_headers(&data))).is_err() {
                    failures.push(path.display().to_string());
                }
            }
        }
    }
    assert!(failures.is_empty(), "fuzz inputs fail: {failures:#?}");
    assert!(count >= 10, "only {count} stored inputs");
}
