//! Stored bodies kept compressed (feature `compression`): less memory,
//! the same bytes for clients, ranges and HEAD on the original body.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use http::Request;
use strata_tower::CacheLayer;
use support::{get, layered, origin, reply, send, status};

fn json_body() -> &'static str {
    let rows: Vec<String> = (0..300)
        .map(|i| {
            format!(r#"{{"id":{i},"name":"user {i}","email":"user{i}@example.com","active":true}}"#)
        })
        .collect();
    Box::leak(format!("[{}]", rows.join(",")).into_boxed_str())
}

fn layer(compress: bool) -> CacheLayer {
    let builder = CacheLayer::builder().max_capacity(16 << 20);
    let builder = if compress {
        builder.compress_above(1024)
    } else {
        builder
    };
    builder.build().unwrap()
}

#[tokio::test]
async fn textual_bodies_take_less_memory_and_come_back_unchanged() {
    let body = json_body();
    let mut weights = Vec::new();
    for compress in [false, true] {
        let (origin, seen) = origin(move |_, _| {
            reply(
                body,
                &[
                    ("cache-control", "max-age=60"),
                    ("content-type", "application/json"),
                ],
            )
        });
        let layer = layer(compress);
        let mut svc = layered(&layer, origin);
        send(&mut svc, get("/users")).await;
        let (hit, bytes) = send(&mut svc, get("/users")).await;
        assert!(status(&hit).contains("hit"));
        assert_eq!(seen.count(), 1);
        assert_eq!(bytes, body, "clients get the bytes the origin sent");
        assert_eq!(
            hit.headers()["content-length"],
            body.len().to_string().as_str()
        );
        assert!(!hit.headers().contains_key("content-encoding"));

        let ranged = Request::get("/users")
            .header("host", "example.com")
            .header("range", "bytes=100-199")
            .body(())
            .unwrap();
        let (part, bytes) = send(&mut svc, ranged).await;
        assert_eq!(part.status(), 206);
        assert_eq!(bytes, &body.as_bytes()[100..200]);
        let head = Request::head("/users")
            .header("host", "example.com")
            .body(())
            .unwrap();
        let (head, bytes) = send(&mut svc, head).await;
        assert!(bytes.is_empty());
        assert_eq!(
            head.headers()["content-length"],
            body.len().to_string().as_str()
        );
        weights.push(layer.stats().weighted_size);
    }
    let (plain, packed) = (weights[0], weights[1]);
    assert!(packed * 4 < plain, "compressed {packed} bytes vs {plain}");
}

#[tokio::test]
async fn binary_encoded_and_small_bodies_are_stored_as_they_are() {
    let big = json_body();
    for (content_type, encoding, body) in [
        ("image/png", None, big),
        ("application/json", Some("br"), big),
        ("application/json", None, "{\"small\":true}"),
    ] {
        let (origin, _) = origin(move |_, _| {
            let mut headers = vec![
                ("cache-control", "max-age=60"),
                ("content-type", content_type),
            ];
            if let Some(encoding) = encoding {
                headers.push(("content-encoding", encoding));
            }
            reply(body, &headers)
        });
        let compressed = layer(true);
        let plain = layer(false);
        for layer in [&compressed, &plain] {
            let mut svc = layered(layer, origin.clone());
            send(&mut svc, get("/x")).await;
            let (_, bytes) = send(&mut svc, get("/x")).await;
            assert_eq!(bytes, body);
        }
        assert_eq!(
            compressed.stats().weighted_size,
            plain.stats().weighted_size,
            "{content_type} {encoding:?} {}",
            body.len()
        );
    }
}
