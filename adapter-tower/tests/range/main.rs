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
