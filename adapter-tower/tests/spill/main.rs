//! Stored responses on local disk (feature `spill`): found again by a layer
//! built on the same directory, with their variants, validators and age;
//! a damaged directory costs responses, never a panic.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use strata::spill::SpillConfig;
use strata_tower::CacheLayer;
use support::{get, get_with, layered, origin, reply, send, status};

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("strata-tower-spill-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn spilling(dir: &PathBuf) -> CacheLayer {
    CacheLayer::builder()
        .max_capacity(16 << 20)
        .spill(SpillConfig::new(dir, 64 << 20).segment_size(1 << 20))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_layer_built_again_on_the_directory_serves_what_the_last_one_stored() {
    let dir = temp_dir("restart");
    let (first_origin, seen) = origin(|request, _| match request.uri().path() {
        "/doc" => reply(
            "the document",
            &[("cache-control", "max-age=3600"), ("etag", "\"v1\"")],
        ),
        _ => {
            let language = request
                .headers()
                .get("accept-language")
                .map_or("en", |v| v.to_str().unwrap_or("en"));
            let body = if language.starts_with("de") {
                "hallo"
            } else {
                "hello"
            };
            reply(
                body,
                &[
                    ("cache-control", "max-age=3600"),
                    ("vary", "Accept-Language"),
                    (
                        "content-language",
                        if body == "hallo" { "de" } else { "en" },
                    ),
                ],
            )
        }
    });
    {
        let layer = spilling(&dir);
        let mut svc = layered(&layer, first_origin);
        send(&mut svc, get("/doc")).await;
        send(&mut svc, get_with("/greeting", "accept-language", "en")).await;
        send(&mut svc, get_with("/greeting", "accept-language", "de")).await;
        assert_eq!(seen.count(), 3);
        let (_, body) = send(&mut svc, get("/doc")).await;
        assert_eq!(body, "the document");
        assert_eq!(seen.count(), 3, "a hit before the restart");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // A new layer, a new origin that must not be asked.
    let (second_origin, asked) = origin(|_, _| reply("the origin was asked", &[]));
    let layer = spilling(&dir);
    assert!(
        layer.stats().spill.entries >= 2,
        "{:?}",
        layer.stats().spill
    );
    let mut svc = layered(&layer, second_origin);
    let (response, body) = send(&mut svc, get("/doc")).await;
    assert_eq!(body, "the document");
    assert!(status(&response).contains("hit"), "{}", status(&response));
    assert_eq!(response.headers()["etag"], "\"v1\"");
    let age: u64 = response.headers()["age"].to_str().unwrap().parse().unwrap();
    assert!(age >= 1, "the age counts from the first arrival: {age}");
    let (_, german) = send(&mut svc, get_with("/greeting", "accept-language", "de")).await;
    let (_, english) = send(&mut svc, get_with("/greeting", "accept-language", "en")).await;
    assert_eq!(
        (german.as_ref(), english.as_ref()),
        (&b"hallo"[..], &b"hello"[..])
    );
    // Validators survive: a conditional request is a 304 from the store.
    let (not_modified, _) = send(&mut svc, get_with("/doc", "if-none-match", "\"v1\"")).await;
    assert_eq!(not_modified.status(), 304);
    assert_eq!(asked.count(), 0, "everything came from the spilled store");
    drop(svc);
    drop(layer);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_damaged_spill_directory_costs_responses_not_a_panic() {
    let dir = temp_dir("damaged");
    {
        let (origin, _) = origin(|_, n| {
            let body: &'static str = Box::leak(format!("body {n}").into_boxed_str());
            reply(body, &[("cache-control", "max-age=3600")])
        });
        let layer = spilling(&dir);
        let mut svc = layered(&layer, origin);
        for i in 0..50 {
            send(&mut svc, get(&format!("/r{i}"))).await;
        }
    }
    // Flip bytes in the middle of every segment file.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("seg-") && name.ends_with(".dat") {
            let mut bytes = std::fs::read(&path).unwrap();
            let len = bytes.len();
            for i in (len / 4..len * 3 / 4).step_by(97) {
                bytes[i] ^= 0x5a;
            }
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let (origin, asked) = origin(|_, _| reply("fresh", &[("cache-control", "max-age=3600")]));
    let layer = spilling(&dir);
    let mut svc = layered(&layer, origin);
    let mut from_disk = 0;
    for i in 0..50 {
        let (response, body) = send(&mut svc, get(&format!("/r{i}"))).await;
        assert_eq!(response.status(), 200);
        if status(&response).contains("hit") {
            assert!(body.starts_with(b"body "), "a hit is never a damaged body");
            from_disk += 1;
        } else {
            assert_eq!(body, "fresh");
        }
    }
    assert_eq!(from_disk + asked.count(), 50);
    assert!(asked.count() > 0, "some records were damaged");
    drop(svc);
    drop(layer);
    let _ = std::fs::remove_dir_all(&dir);
}
