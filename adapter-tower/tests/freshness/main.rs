//! Freshness: explicit lifetimes, Age, request directives, and what is
//! never reused without revalidation.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, SystemTime};

use http::Request;
use strata_tower::CacheLayer;
use support::{get, get_with, layer, layered, origin, reply, send, status};

#[tokio::test]
async fn max_age_serves_from_cache_with_an_age() {
    let (origin, seen) = origin(|_, _| reply("hello", &[("cache-control", "max-age=60")]));
    let mut svc = layered(&layer(), origin);
    let (first, body) = send(&mut svc, get("/a")).await;
    assert_eq!(body, "hello");
    assert!(status(&first).contains("stored"), "{}", status(&first));
    assert!(first.headers().get("age").is_none(), "not from cache");
    let (second, body) = send(&mut svc, get("/a")).await;
    assert_eq!(body, "hello");
    assert_eq!(seen.count(), 1);
    assert!(
        status(&second).starts_with("strata; hit; ttl="),
        "{}",
        status(&second)
    );
    assert_eq!(second.headers()["age"], "0");
}

#[tokio::test]
async fn an_incoming_age_counts_against_the_lifetime() {
    let (origin, seen) =
        origin(|_, _| reply("x", &[("cache-control", "max-age=60"), ("age", "100")]));
    let mut svc = layered(&layer(), origin);
    send(&mut svc, get("/a")).await;
    let (second, _) = send(&mut svc, get("/a")).await;
    assert_eq!(seen.count(), 2, "already stale when stored");
    assert!(!status(&second).contains("hit"));
}

#[tokio::test]
async fn s_maxage_wins_in_a_shared_cache_only() {
    let respond =
        |_: &Request<()>, _: usize| reply("x", &[("cache-control", "max-age=60, s-maxage=0")]);
    let (shared_origin, shared_seen) = origin(respond);
    let mut shared = layered(&layer(), shared_origin);
    send(&mut shared, get("/a")).await;
    send(&mut shared, get("/a")).await;
    assert_eq!(shared_seen.count(), 2, "s-maxage=0 makes it stale");

    let (private_origin, private_seen) = origin(respond);
    let private = CacheLayer::builder().private().build().unwrap();
    let mut private = layered(&private, private_origin);
    send(&mut private, get("/a")).await;
    send(&mut private, get("/a")).await;
    assert_eq!(private_seen.count(), 1, "a private cache ignores s-maxage");
}

#[tokio::test]
async fn expires_and_date_give_a_lifetime() {
    let (origin, seen) = origin(|_, _| {
        let now = SystemTime::now();
        let date = httpdate::fmt_http_date(now);
        let expires = httpdate::fmt_http_date(now + Duration::from_secs(120));
        let mut response = reply("x", &[]);
        response.headers_mut().insert("date", date.parse().unwrap());
        response
            .headers_mut()
            .insert("expires", expires.parse().unwrap());
        response
    });
    let mut svc = layered(&layer(), origin);
    send(&mut svc, get("/a")).await;
    send(&mut svc, get("/a")).await;
    assert_eq!(seen.count(), 1);
}

#[tokio::test]
async fn an_invalid_expires_means_stale() {
    let (origin, seen) = origin(|_, _| reply("x", &[("expires", "0"), ("etag", "\"a\"")]));
    let mut svc = layered(&layer(), origin);
    send(&mut svc, get("/a")).await;
    send(&mut svc, get("/a")).await;
    assert_eq!(seen.count(), 2);
}

#[tokio::test]
async fn heuristic_freshness_only_from_last_modified() {
    let (origin, seen) = origin(|_, _| {
        let long_ago = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(100_000));
        let mut response = reply("x", &[]);
        response
            .headers_mut()
            .insert("last-modified", long_ago.parse().unwrap());
        response
    });
    let mut svc = layered(&layer(), origin);
    send(&mut svc, get("/a")).await;
    let (second, _) = send(&mut svc, get("/a")).await;
    assert_eq!(seen.count(), 1, "10% of 100,000 s is fresh");
    assert!(status(&second).contains("hit"));
}

#[tokio::test]
async fn no_freshness_and_no_validator_is_never_reused() {
    let (origin, seen) = origin(|_, _| reply("x", &[]));
    let mut svc = layered(&layer(), origin);
    let (first, _) = send(&mut svc, get("/a")).await;
    send(&mut svc, get("/a")).await;
    assert_eq!(seen.count(), 2);
    assert!(!status(&first).contains("stored"));
}

#[tokio::test]
async fn request_directives_are_honoured() {
    let (origin, seen) =
        origin(|_, _| reply("x", &[("cache-control", "max-age=60"), ("age", "10")]));
    let mut svc = layered(&layer(), origin);
    send(&mut svc, get("/a")).await;
    let with = |cc: &str| get_with("/a", "cache-control", cc);
    let (r, _) = send(&mut svc, with("no-cache")).await;
    assert_eq!(seen.count(), 2);
    assert!(status(&r).contains("fwd=request"), "{}", status(&r));
    let (_, _) = send(&mut svc, with("max-age=5")).await;
    assert_eq!(seen.count(), 3, "10 s old is older than max-age=5");
    let (_, _) = send(&mut svc, with("min-fresh=3600")).await;
    assert_eq!(seen.count(), 4, "not fresh for another hour");
    let pragma = get_with("/a", "pragma", "no-cache");
    send(&mut svc, pragma).await;
    assert_eq!(seen.count(), 5, "Pragma: no-cache without Cache-Control");
    send(&mut svc, with("max-age=3600")).await;
    assert_eq!(seen.count(), 5, "fresh enough");
}

#[tokio::test]
async fn max_stale_and_only_if_cached() {
    let (origin, seen) = origin(|_, _| reply("x", &[("cache-control", "max-age=0")]));
    let mut svc = layered(&layer(), origin);
    let with = |cc: &str| get_with("/a", "cache-control", cc);
    let (miss, _) = send(&mut svc, with("only-if-cached")).await;
    assert_eq!(miss.status(), 504);
    assert_eq!(seen.count(), 0);
    send(&mut svc, get("/a")).await;
    let (stale, _) = send(&mut svc, with("max-stale=600")).await;
    assert_eq!(seen.count(), 1, "stale accepted");
    assert!(status(&stale).contains("hit; stale"));
}

#[tokio::test]
async fn must_revalidate_forbids_stale_serving() {
    let (origin, seen) =
        origin(|_, _| reply("x", &[("cache-control", "max-age=0, must-revalidate")]));
    let mut svc = layered(&layer(), origin);
    send(&mut svc, get("/a")).await;
    send(&mut svc, get_with("/a", "cache-control", "max-stale")).await;
    assert_eq!(seen.count(), 2);
}

#[tokio::test]
async fn response_no_cache_revalidates_every_time() {
    let (origin, seen) = origin(|_, _| reply("x", &[("cache-control", "no-cache, max-age=60")]));
    let mut svc = layered(&layer(), origin);
    send(&mut svc, get("/a")).await;
    send(&mut svc, get("/a")).await;
    assert_eq!(seen.count(), 2);
}

#[tokio::test]
async fn a_configured_ttl_covers_responses_without_freshness() {
    let (origin, seen) = origin(|_, _| reply("x", &[]));
    let layer = CacheLayer::builder()
        .ttl(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut svc = layered(&layer, origin);
    send(&mut svc, get("/a")).await;
    send(&mut svc, get("/a")).await;
    assert_eq!(seen.count(), 1);
}

#[tokio::test]
async fn garbage_cache_control_and_age_never_panic() {
    let (origin, seen) = origin(|_, n| {
        let mut r = reply("x", &[]);
        let junk: &[&[u8]] = &[
            b"max-age=\xff\xfe",
            b"=,=,;;\"",
            b"max-age=-1",
            b"max-age=99999999999999999999",
        ];
        r.headers_mut().insert(
            "cache-control",
            http::HeaderValue::from_bytes(junk[n % junk.len()]).unwrap(),
        );
        r.headers_mut()
            .insert("age", http::HeaderValue::from_bytes(b"\xff 12a").unwrap());
        r
    });
    let mut svc = layered(&layer(), origin);
    for _ in 0..8 {
        let request = Request::get("/a")
            .header("host", "example.com")
            .header(
                "cache-control",
                http::HeaderValue::from_bytes(b"max-stale=\xff, ,").unwrap(),
            )
            .header(
                "if-none-match",
                http::HeaderValue::from_bytes(b"\"\xff, W/").unwrap(),
            )
            .header("if-modified-since", "yesterday")
            .body(())
            .unwrap();
        let (response, _) = send(&mut svc, request).await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(seen.count(), 8, "nothing readable enough to reuse");
}

#[tokio::test]
async fn negative_ttl_covers_errors_and_cache_control_can_be_overridden() {
    // Errors without freshness: stored for negative_ttl (not ttl).
    let (origin_404, seen) = origin(|_, _| {
        let mut response = reply("not here", &[]);
        *response.status_mut() = http::StatusCode::NOT_FOUND;
        response
    });
    let layer = CacheLayer::builder()
        .ttl(Duration::from_secs(600))
        .negative_ttl(Duration::from_secs(7))
        .build()
        .unwrap();
    let mut svc = layered(&layer, origin_404);
    send(&mut svc, get("/missing")).await;
    let (hit, _) = send(&mut svc, get("/missing")).await;
    assert_eq!(seen.count(), 1);
    assert_eq!(hit.status(), 404);
    assert!(
        status(&hit).contains("ttl=7") || status(&hit).contains("ttl=6"),
        "{}",
        status(&hit)
    );

    // respect_cache_control(false): the layer's ttl decides, whatever the
    // response says about its freshness.
    let (origin_0, seen) = origin(|_, _| reply("x", &[("cache-control", "max-age=0")]));
    let respecting = CacheLayer::builder()
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut svc = layered(&respecting, origin_0.clone());
    send(&mut svc, get("/a")).await;
    send(&mut svc, get("/a")).await;
    assert_eq!(seen.count(), 2, "max-age=0 is respected by default");
    let overriding = CacheLayer::builder()
        .ttl(Duration::from_secs(60))
        .respect_cache_control(false)
        .build()
        .unwrap();
    let mut svc = layered(&overriding, origin_0);
    send(&mut svc, get("/a")).await;
    let (hit, _) = send(&mut svc, get("/a")).await;
    assert_eq!(seen.count(), 3, "overridden: the ttl keeps it");
    assert!(status(&hit).contains("hit"));
}
