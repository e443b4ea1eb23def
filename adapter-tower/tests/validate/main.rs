//! Conditional requests, revalidation with stored validators, and
//! invalidation by unsafe methods.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use http::{Method, Request, Response, StatusCode};
use support::{get, head, head_reply, layer, layered, origin, reply, send, status};

fn conditional(name: &str, value: &str) -> Request<()> {
    Request::get("/c")
        .header("host", "example.com")
        .header(name, value)
        .body(())
        .unwrap()
}

#[tokio::test]
async fn conditionals_against_a_fresh_entry_get_304_from_the_store() {
    let (origin, seen) = origin(|_, _| {
        reply(
            "body",
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"v1\""),
                ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ],
        )
    });
    let mut svc = layered(&layer(), origin);
    send(&mut svc, get("/c")).await;
    let (r, body) = send(&mut svc, conditional("if-none-match", "\"x\", W/\"v1\"")).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    assert_eq!(r.headers()["etag"], "\"v1\"");
    let (r, _) = send(&mut svc, conditional("if-none-match", "\"other\"")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (r, _) = send(
        &mut svc,
        conditional("if-modified-since", "Tue, 02 Jan 2024 00:00:00 GMT"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let (r, _) = send(
        &mut svc,
        conditional("if-modified-since", "Sun, 31 Dec 2023 00:00:00 GMT"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(seen.count(), 1, "all answered from the store");
}

#[tokio::test]
async fn a_stale_entry_is_revalidated_and_a_304_refreshes_it() {
    let (origin, seen) = origin(|r, n| {
        if n > 1 {
            assert_eq!(
                r.headers()["if-none-match"],
                "\"v1\"",
                "stored validator sent"
            );
            let mut response = Response::new(http_body_util::Full::new(bytes::Bytes::new()));
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            response
                .headers_mut()
                .insert("cache-control", "max-age=60".parse().unwrap());
            response
                .headers_mut()
                .insert("x-fresh", "new".parse().unwrap());
            return response;
        }
        reply(
            "stored body",
            &[
                ("cache-control", "max-age=0"),
                ("etag", "\"v1\""),
                ("x-fresh", "old"),
            ],
        )
    });
    let mut svc = layered(&layer(), origin);
    send(&mut svc, get("/r")).await;
    let (r, body) = send(&mut svc, get("/r")).await;
    assert_eq!(body, "stored body");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-fresh"], "new", "headers updated by the 304");
    assert!(
        status(&r).contains("fwd=stale; fwd-status=304"),
        "{}",
        status(&r)
    );
    let (r, _) = send(&mut svc, get("/r")).await;
    assert_eq!(seen.count(), 2, "fresh again after the 304");
    assert!(status(&r).contains("hit"));
}

#[tokio::test]
async fn a_200_on_revalidation_replaces_the_entry() {
    let (origin, _) = origin(|_, n| {
        if n == 1 {
            reply("one", &[("cache-control", "max-age=0"), ("etag", "\"1\"")])
        } else {
            reply("two", &[("cache-control", "max-age=60"), ("etag", "\"2\"")])
        }
    });
    let mut svc = layered(&layer(), origin);
    send(&mut svc, get("/r")).await;
    assert_eq!(send(&mut svc, get("/r")).await.1, "two");
    assert_eq!(send(&mut svc, get("/r")).await.1, "two");
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_target_and_its_locations() {
    let (origin, seen) = origin(|r, _| {
        if r.method() == Method::POST {
            return reply(
                "",
                &[
                    ("location", "/b"),
                    ("content-location", "http://example.com/c"),
                ],
            );
        }
        reply("x", &[("cache-control", "max-age=60")])
    });
    let mut svc = layered(&layer(), origin);
    for path in ["/a", "/b", "/c", "/d"] {
        send(&mut svc, get(path)).await;
    }
    assert_eq!(seen.count(), 4);
    let post = Request::post("/a")
        .header("host", "example.com")
        .body(())
        .unwrap();
    let (r, _) = send(&mut svc, post).await;
    assert!(status(&r).contains("fwd=method"));
    for path in ["/a", "/b", "/c", "/d"] {
        send(&mut svc, get(path)).await;
    }
    assert_eq!(seen.count(), 8, "/a, /b and /c refetched, /d not");
}

#[tokio::test]
async fn every_unsafe_method_invalidates_but_failures_do_not() {
    for method in ["PUT", "DELETE", "PATCH", "FROBNICATE"] {
        let (origin, seen) = origin(|r, _| {
            if r.method() == Method::GET {
                reply("x", &[("cache-control", "max-age=60")])
            } else {
                reply("", &[])
            }
        });
        let mut svc = layered(&layer(), origin);
        send(&mut svc, get("/a")).await;
        let unsafe_request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri("/a")
            .header("host", "example.com")
            .body(())
            .unwrap();
        send(&mut svc, unsafe_request).await;
        send(&mut svc, get("/a")).await;
        assert_eq!(seen.count(), 3, "{method}");
    }
    let (origin, seen) = origin(|r, _| {
        if r.method() == Method::GET {
            reply("x", &[("cache-control", "max-age=60")])
        } else {
            let mut response = reply("", &[]);
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    });
    let mut svc = layered(&layer(), origin);
    send(&mut svc, get("/a")).await;
    send(
        &mut svc,
        Request::post("/a")
            .header("host", "example.com")
            .body(())
            .unwrap(),
    )
    .await;
    send(&mut svc, get("/a")).await;
    assert_eq!(seen.count(), 2, "a failed POST changed nothing");
}

#[tokio::test]
async fn locations_on_other_authorities_are_left_alone() {
    let (origin, seen) = origin(|r, _| {
        if r.method() == Method::POST {
            return reply("", &[("location", "http://elsewhere.example/b")]);
        }
        reply("x", &[("cache-control", "max-age=60")])
    });
    let mut svc = layered(&layer(), origin);
    send(&mut svc, get("/b")).await;
    send(
        &mut svc,
        Request::post("/a")
            .header("host", "example.com")
            .body(())
            .unwrap(),
    )
    .await;
    send(&mut svc, get("/b")).await;
    assert_eq!(seen.count(), 2);
}

/// What a later GET finds after a HEAD's 200 (RFC 9111 §4.3.5).
#[derive(Debug, PartialEq)]
enum After {
    /// Answered from the store with the HEAD's fields.
    Updated,
    /// Answered from the store as it was.
    Kept,
    /// Fetched again: the HEAD invalidated the stored response.
    Invalidated,
}

/// Header pairs.
type Fields<'a> = &'a [(&'a str, &'a str)];

/// Owned copies of header pairs, plus `extra`, for an origin closure.
fn owned(fields: &[(&str, &str)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .chain(extra)
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn borrowed(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// Stores a fresh GET response of "stored body" (11 bytes) with `stored`
/// fields, sends a `no-cache` HEAD answered with `answer` fields (plus
/// `x-version: new`), then a GET: what did it find? Also the HEAD's
/// response.
async fn after_head(stored: &[(&str, &str)], answer: &[(&str, &str)]) -> (After, Response<()>) {
    let stored = owned(
        stored,
        &[("cache-control", "max-age=60"), ("x-version", "old")],
    );
    let answer = owned(answer, &[("x-version", "new")]);
    let (origin, seen) = origin(move |r, _| {
        if r.method() == Method::HEAD {
            head_reply(&borrowed(&answer))
        } else {
            reply("stored body", &borrowed(&stored))
        }
    });
    let mut svc = layered(&layer(), origin);
    send(&mut svc, get("/h")).await;
    let no_cache = head("/h", &[("cache-control", "no-cache")]);
    let (head_response, body) = send(&mut svc, no_cache).await;
    assert!(body.is_empty(), "a HEAD has no body");
    assert_eq!(head_response.headers()["x-version"], "new");
    let (r, body) = send(&mut svc, get("/h")).await;
    assert_eq!(body, "stored body");
    let after = match (seen.count(), r.headers()["x-version"].to_str().unwrap()) {
        (2, "new") => After::Updated,
        (2, _) => After::Kept,
        _ => After::Invalidated,
    };
    (after, head_response)
}

#[tokio::test]
async fn a_head_200_updates_or_invalidates_the_stored_get() {
    let etag = ("etag", "\"v1\"");
    let modified = ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT");
    let cases: [(Fields<'_>, Fields<'_>, After); 11] = [
        (&[etag], &[etag, ("content-length", "11")], After::Updated),
        (&[etag], &[etag], After::Updated),
        (&[modified], &[modified], After::Updated),
        (
            &[modified],
            &[("last-modified", "Monday, 01-Jan-24 00:00:00 GMT")],
            After::Updated,
        ),
        (&[], &[("content-length", "11")], After::Updated),
        (&[etag], &[("etag", "\"v2\"")], After::Invalidated),
        (&[], &[etag], After::Invalidated),
        (
            &[etag],
            &[etag, ("content-length", "12")],
            After::Invalidated,
        ),
        (&[], &[("content-length", "3")], After::Invalidated),
        (
            &[("etag", "W/\"v1\"")],
            &[("etag", "W/\"v1\"")],
            After::Kept,
        ),
        (&[], &[("content-length", "eleven")], After::Kept),
    ];
    for (stored, head, expected) in cases {
        let (after, _) = after_head(stored, head).await;
        assert_eq!(after, expected, "stored {stored:?}, HEAD {head:?}");
    }
    let (_, response) = after_head(&[("x-kept", "1")], &[("content-length", "11")]).await;
    assert_eq!(
        response.headers()["x-kept"],
        "1",
        "the HEAD is answered from the updated response"
    );
    assert_eq!(response.headers()["content-length"], "11");
    assert!(status(&response).contains("fwd=request; fwd-status=200"));
}

#[tokio::test]
async fn a_head_200_refreshes_a_stale_get() {
    let (origin, seen) = origin(|r, _| {
        if r.method() == Method::HEAD {
            return head_reply(&[
                ("cache-control", "max-age=60"),
                ("etag", "\"v1\""),
                ("content-length", "4"),
                ("x-fresh", "new"),
            ]);
        }
        let mut response = reply(
            "body",
            &[
                ("cache-control", "max-age=0"),
                ("etag", "\"v1\""),
                ("x-fresh", "old"),
            ],
        );
        if r.headers().contains_key("if-none-match") {
            // Not a revalidation: a GET must not be needed again.
            *response.status_mut() = StatusCode::IM_A_TEAPOT;
        }
        response
    });
    let mut svc = layered(&layer(), origin);
    send(&mut svc, get("/s")).await;
    let (r, _) = send(&mut svc, head("/s", &[])).await;
    assert!(
        status(&r).contains("fwd=stale; fwd-status=200"),
        "{}",
        status(&r)
    );
    assert_eq!(seen.last()["if-none-match"], "\"v1\"", "a conditional HEAD");
    let (r, body) = send(&mut svc, get("/s")).await;
    assert_eq!(seen.count(), 2, "fresh again after the HEAD");
    assert!(status(&r).contains("hit"), "{}", status(&r));
    assert_eq!(body, "body");
    assert_eq!(r.headers()["x-fresh"], "new");
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn unsafe_methods_invalidate_whatever_the_method_predicate() {
    let (origin, seen) = origin(|r, _| {
        if r.method() == Method::GET {
            reply("x", &[("cache-control", "max-age=60")])
        } else {
            reply("", &[])
        }
    });
    let layer = strata_tower::CacheLayer::builder()
        .method_predicate(|method| method == Method::GET)
        .build()
        .unwrap();
    let mut svc = layered(&layer, origin);
    send(&mut svc, get("/a")).await;
    send(&mut svc, get("/a")).await;
    assert_eq!(seen.count(), 1);
    let post = Request::post("/a")
        .header("host", "example.com")
        .body(())
        .unwrap();
    let (r, _) = send(&mut svc, post).await;
    assert!(status(&r).contains("fwd=method"), "{}", status(&r));
    send(&mut svc, get("/a")).await;
    assert_eq!(seen.count(), 3, "the POST invalidated /a");
}
