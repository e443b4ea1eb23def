//! Stored bodies kept compressed (feature `compression`): less memory,
//! the same bytes for clients, ranges and HEAD on the original body, and
//! the compressed bytes as they are for clients that take gzip when the
//! response varies on `Accept-Encoding`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use http::Request;
use strata_tower::{CacheLayer, Compression};
use support::{get, get_with, layered, origin, reply, send, status};

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

fn decompress(coding: Compression, bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match coding {
        Compression::Gzip => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .unwrap();
        }
        Compression::Zstd => out = zstd::decode_all(bytes).unwrap(),
        _ => unreachable!("a coding this test does not know"),
    }
    out
}

#[tokio::test]
async fn clients_that_take_the_coding_get_the_stored_bytes_when_the_response_varies_on_it() {
    let body = json_body();
    let mut stored_sizes = Vec::new();
    for (coding, token) in [(Compression::Gzip, "gzip"), (Compression::Zstd, "zstd")] {
        let (origin, seen) = origin(move |_, _| {
            reply(
                body,
                &[
                    ("cache-control", "max-age=60"),
                    ("content-type", "application/json"),
                    ("vary", "Accept-Encoding"),
                    ("etag", "\"v1\""),
                    ("accept-ranges", "bytes"),
                ],
            )
        });
        let layer = CacheLayer::builder()
            .max_capacity(16 << 20)
            .compress_above(1024)
            .compression(coding)
            .build()
            .unwrap();
        let mut svc = layered(&layer, origin);
        // As browsers send it: both codings taken.
        let takes = |uri: &str| get_with(uri, "accept-encoding", "gzip, deflate, br, zstd");

        let (miss, bytes) = send(&mut svc, takes("/users")).await;
        assert!(status(&miss).contains("fwd=uri-miss"));
        assert_eq!(
            bytes, body,
            "the first response streams as the origin sent it"
        );
        let (hit, bytes) = send(&mut svc, takes("/users")).await;
        assert!(status(&hit).contains("hit"), "{}", status(&hit));
        assert_eq!(hit.headers()["content-encoding"], token);
        assert_eq!(hit.headers()["etag"], "W/\"v1\"", "not the identity bytes");
        assert!(!hit.headers().contains_key("accept-ranges"));
        assert_eq!(hit.headers()["vary"], "Accept-Encoding");
        assert_eq!(
            hit.headers()["content-length"],
            bytes.len().to_string().as_str()
        );
        assert!(
            bytes.len() * 4 < body.len(),
            "{token}: {} bytes",
            bytes.len()
        );
        assert_eq!(decompress(coding, &bytes), body.as_bytes());
        stored_sizes.push(bytes.len());

        // HEAD describes the same representation, without the body.
        let head = Request::head("/users")
            .header("host", "example.com")
            .header("accept-encoding", "gzip, deflate, br, zstd")
            .body(())
            .unwrap();
        let (head, empty) = send(&mut svc, head).await;
        assert!(empty.is_empty());
        assert_eq!(head.headers()["content-encoding"], token);
        assert_eq!(
            head.headers()["content-length"],
            hit.headers()["content-length"]
        );

        // The weak ETag still validates: a 304 that names it again.
        let mut conditional = takes("/users");
        conditional
            .headers_mut()
            .insert("if-none-match", "W/\"v1\"".parse().unwrap());
        let (not_modified, _) = send(&mut svc, conditional).await;
        assert_eq!(not_modified.status(), 304);
        assert_eq!(not_modified.headers()["etag"], "W/\"v1\"");

        // A range is served from the identity body, with the strong ETag.
        let mut ranged = takes("/users");
        ranged
            .headers_mut()
            .insert("range", "bytes=0-9".parse().unwrap());
        let (part, bytes) = send(&mut svc, ranged).await;
        assert_eq!(part.status(), 206);
        assert_eq!(bytes, &body.as_bytes()[..10]);
        assert!(!part.headers().contains_key("content-encoding"));
        assert_eq!(part.headers()["etag"], "\"v1\"");

        // Clients that do not take the stored coding are other variants;
        // their hits are decompressed.
        let refusing = if coding == Compression::Gzip {
            "gzip;q=0, br"
        } else {
            "gzip, br"
        };
        for refused in [refusing, "identity"] {
            send(&mut svc, get_with("/users", "accept-encoding", refused)).await;
            let (hit, bytes) = send(&mut svc, get_with("/users", "accept-encoding", refused)).await;
            assert!(status(&hit).contains("hit"), "{refused}");
            assert!(!hit.headers().contains_key("content-encoding"), "{refused}");
            assert_eq!(bytes, body, "{refused}");
        }
        assert_eq!(seen.count(), 3, "one origin request per variant");
    }
    let (gzip, zstd) = (stored_sizes[0], stored_sizes[1]);
    assert!(zstd < gzip, "zstd {zstd} B, gzip {gzip} B");
}

#[tokio::test]
async fn without_vary_on_accept_encoding_every_client_gets_the_identity_body() {
    let body = json_body();
    let (origin, _) = origin(move |_, _| {
        reply(
            body,
            &[
                ("cache-control", "max-age=60"),
                ("content-type", "application/json"),
            ],
        )
    });
    let layer = layer(true);
    let mut svc = layered(&layer, origin);
    send(&mut svc, get("/users")).await;
    // A downstream cache would store a gzip answer for every client, since
    // nothing says it depends on Accept-Encoding.
    let (hit, bytes) = send(&mut svc, get_with("/users", "accept-encoding", "gzip")).await;
    assert!(status(&hit).contains("hit"));
    assert!(!hit.headers().contains_key("content-encoding"));
    assert_eq!(bytes, body);
}
