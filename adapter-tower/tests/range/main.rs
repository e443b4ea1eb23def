//! Range requests answered from a stored complete response.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use http::{Request, StatusCode};
use support::{layer, layered, origin, reply, send};

fn ranged(range: &str, extra: Option<(&str, &str)>) -> Request<()> {
    let mut builder = Request::get("/file")
        .header("host", "example.com")
        .header("range", range);
    if let Some((n, v)) = extra {
        builder = builder.header(n, v);
    }
    builder.body(()).unwrap()
}

#[tokio::test]
async fn ranges_of_a_stored_response() {
    let (origin, seen) = origin(|_, _| {
        reply(
            "0123456789",
            &[("cache-control", "max-age=60"), ("etag", "\"v1\"")],
        )
    });
    let mut svc = layered(&layer(), origin);
    send(&mut svc, support::get("/file")).await;

    let (r, body) = send(&mut svc, ranged("bytes=2-4", None)).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, "234");
    assert_eq!(r.headers()["content-range"], "bytes 2-4/10");
    assert_eq!(r.headers()["content-length"], "3");

    let (r, body) = send(&mut svc, ranged("bytes=-3", None)).await;
    assert_eq!(
        (r.status(), &body[..]),
        (StatusCode::PARTIAL_CONTENT, &b"789"[..])
    );

    let (r, body) = send(&mut svc, ranged("bytes=10-", None)).await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["content-range"], "bytes */10");
    assert!(body.is_empty());

    let (r, body) = send(&mut svc, ranged("bytes=0-1,5-6", None)).await;
    assert_eq!(
        (r.status(), &body[..]),
        (StatusCode::OK, &b"0123456789"[..])
    );

    let (r, _) = send(&mut svc, ranged("bytes=0-1", Some(("if-range", "\"v2\"")))).await;
    assert_eq!(r.status(), StatusCode::OK, "If-Range does not match");
    let (r, body) = send(&mut svc, ranged("bytes=0-1", Some(("if-range", "\"v1\"")))).await;
    assert_eq!(
        (r.status(), &body[..]),
        (StatusCode::PARTIAL_CONTENT, &b"01"[..])
    );

    let (r, _) = send(&mut svc, ranged("bytes=garbage-\t,", None)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(seen.count(), 1, "all from the store");
}

const OBJECT: &[u8; 20] = b"abcdefghijklmnopqrst";

/// An origin that answers `Range` requests for a 20-byte object with 206s
/// (its ETag given by `etag(n)` for the n-th request), or the whole object
/// when the `If-Range` does not match.
fn ranged_origin(
    etag: impl Fn(usize) -> &'static str + Send + Sync + 'static,
) -> (support::Origin, support::Seen) {
    origin(move |request, n| {
        let tag = etag(n);
        let headers = request.headers();
        let if_range_fails = headers
            .get("if-range")
            .is_some_and(|v| v.to_str().unwrap() != tag);
        let range = headers
            .get("range")
            .map(|v| v.to_str().unwrap().trim_start_matches("bytes=").to_owned());
        let cc = ("cache-control", "max-age=3600");
        match range {
            Some(range) if !if_range_fails => {
                let (first, last) = range.split_once('-').unwrap();
                let (first, last): (usize, usize) = if first.is_empty() {
                    (20 - last.parse::<usize>().unwrap(), 19)
                } else if last.is_empty() {
                    (first.parse().unwrap(), 19)
                } else {
                    (
                        first.parse().unwrap(),
                        last.parse::<usize>().unwrap().min(19),
                    )
                };
                let body: &'static [u8] = &OBJECT[first..=last];
                let content_range: &'static str =
                    Box::leak(format!("bytes {first}-{last}/20").into_boxed_str());
                let mut response = reply(
                    std::str::from_utf8(body).unwrap(),
                    &[cc, ("etag", tag), ("content-range", content_range)],
                );
                *response.status_mut() = StatusCode::PARTIAL_CONTENT;
                response
            }
            _ => reply(std::str::from_utf8(OBJECT).unwrap(), &[cc, ("etag", tag)]),
        }
    })
}

fn partial_layer() -> strata_tower::CacheLayer {
    strata_tower::CacheLayer::builder()
        .max_capacity(16 << 20)
        .partial_content(Some(4))
        .build()
        .unwrap()
}

#[tokio::test]
async fn partial_responses_are_kept_in_chunks_and_only_missing_chunks_are_fetched() {
    let (origin, seen) = ranged_origin(|_| "\"v1\"");
    let mut svc = layered(&partial_layer(), origin);

    let (first, body) = send(&mut svc, ranged("bytes=0-11", None)).await;
    assert_eq!(
        (first.status(), body.as_ref()),
        (StatusCode::PARTIAL_CONTENT, &b"abcdefghijkl"[..])
    );
    assert!(support::status(&first).contains("stored"));

    let (inside, body) = send(&mut svc, ranged("bytes=5-9", None)).await;
    assert_eq!(
        (inside.status(), body.as_ref()),
        (StatusCode::PARTIAL_CONTENT, &b"fghij"[..])
    );
    assert_eq!(inside.headers()["content-range"], "bytes 5-9/20");
    assert_eq!(inside.headers()["etag"], "\"v1\"");
    assert!(inside.headers().contains_key("age"));
    assert!(
        support::status(&inside).contains("hit"),
        "{}",
        support::status(&inside)
    );
    assert_eq!(seen.count(), 1);

    // 8..12 is stored; 12..16 is fetched, for this version only.
    let (overlap, body) = send(&mut svc, ranged("bytes=8-15", None)).await;
    assert_eq!(
        (overlap.status(), body.as_ref()),
        (StatusCode::PARTIAL_CONTENT, &b"ijklmnop"[..])
    );
    assert_eq!(seen.count(), 2);
    let asked = seen.last();
    assert_eq!(asked["range"], "bytes=12-15", "only the missing chunk");
    assert_eq!(asked["if-range"], "\"v1\"");
    assert!(support::status(&overlap).contains("fwd=partial"));

    let (suffix, body) = send(&mut svc, ranged("bytes=-3", None)).await;
    assert_eq!(
        (suffix.status(), body.as_ref()),
        (StatusCode::PARTIAL_CONTENT, &b"rst"[..])
    );
    assert_eq!(
        seen.last()["range"],
        "bytes=16-19",
        "the aligned tail chunk"
    );
    assert_eq!(seen.count(), 3);

    let (whole, body) = send(&mut svc, ranged("bytes=0-", None)).await;
    assert_eq!(
        (whole.status(), body.as_ref()),
        (StatusCode::PARTIAL_CONTENT, &OBJECT[..])
    );
    assert_eq!(whole.headers()["content-range"], "bytes 0-19/20");
    let (past, _) = send(&mut svc, ranged("bytes=30-", None)).await;
    assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.headers()["content-range"], "bytes */20");
    assert_eq!(seen.count(), 3, "every chunk is present now");
}

#[tokio::test]
async fn pieces_of_two_versions_are_never_combined() {
    // The object changes after the first request.
    let (origin, seen) = ranged_origin(|n| if n == 1 { "\"v1\"" } else { "\"v2\"" });
    let mut svc = layered(&partial_layer(), origin);
    send(&mut svc, ranged("bytes=0-7", None)).await;
    // 0..8 stored for v1; asking 4..12 fetches 8..12 with If-Range "v1",
    // which no longer matches: the origin answers with the whole v2.
    let (changed, body) = send(&mut svc, ranged("bytes=4-11", None)).await;
    assert_eq!(seen.count(), 2);
    assert_eq!(seen.last()["if-range"], "\"v1\"");
    assert_eq!(changed.status(), StatusCode::OK, "the new version, whole");
    assert_eq!(body.as_ref(), &OBJECT[..]);
    assert_eq!(changed.headers()["etag"], "\"v2\"");
    // The v1 pieces are gone; the new complete response is stored and
    // answers ranges itself.
    let (again, body) = send(&mut svc, ranged("bytes=0-3", None)).await;
    assert_eq!(
        (again.status(), body.as_ref()),
        (StatusCode::PARTIAL_CONTENT, &b"abcd"[..])
    );
    assert_eq!(again.headers()["etag"], "\"v2\"");
    assert_eq!(seen.count(), 2);
}

#[tokio::test]
async fn unusable_206_responses_are_not_kept() {
    for (content_range, etag) in [
        ("bytes 0-3/*", "\"v1\""),
        ("bytes 0-3", "\"v1\""),
        ("bytes 0-9/20", "\"v1\""),
        ("bytes 0-3/20", "W/\"weak\""),
    ] {
        let (origin, seen) = origin(move |_, _| {
            let mut response = reply(
                "abcd",
                &[
                    ("cache-control", "max-age=3600"),
                    ("etag", etag),
                    ("content-range", content_range),
                ],
            );
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            response
        });
        let mut svc = layered(&partial_layer(), origin);
        let (first, _) = send(&mut svc, ranged("bytes=0-3", None)).await;
        assert_eq!(first.status(), StatusCode::PARTIAL_CONTENT);
        send(&mut svc, ranged("bytes=0-3", None)).await;
        assert_eq!(seen.count(), 2, "{content_range} {etag}: not kept");
    }
    // And with partial content turned off, a good 206 is not kept either.
    let (origin, seen) = ranged_origin(|_| "\"v1\"");
    let off = strata_tower::CacheLayer::builder()
        .max_capacity(1 << 20)
        .partial_content(None)
        .build()
        .unwrap();
    let mut svc = layered(&off, origin);
    send(&mut svc, ranged("bytes=0-3", None)).await;
    send(&mut svc, ranged("bytes=0-3", None)).await;
    assert_eq!(seen.count(), 2);
}

#[tokio::test]
async fn a_fill_shorter_than_its_content_range_is_a_502_not_a_panic() {
    // The first answer is honest; the fill claims 4 bytes and sends 2.
    let (origin, seen) = origin(|request, n| {
        let (body, content_range): (&'static str, &'static str) = if n == 1 {
            ("abcdefgh", "bytes 0-7/16")
        } else {
            assert_eq!(request.headers()["range"], "bytes=8-11");
            ("ij", "bytes 8-11/16")
        };
        let mut response = support::reply(
            body,
            &[
                ("cache-control", "max-age=3600"),
                ("etag", "\"v1\""),
                ("content-range", content_range),
            ],
        );
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        response
    });
    let mut svc = layered(&partial_layer(), origin);
    send(&mut svc, ranged("bytes=0-7", None)).await;
    let (short, _) = send(&mut svc, ranged("bytes=6-9", None)).await;
    assert_eq!(short.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(seen.count(), 2);
}
