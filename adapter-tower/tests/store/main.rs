//! What is stored and for whom: shared-cache rules, headers never stored,
//! Vary, authorities, HEAD.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use http::Request;
use strata_tower::{CacheLayer, KeyExtractor};
use support::{get, layer, layered, origin, reply, send, status};

fn request(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::get(uri).header("host", "example.com");
    for (n, v) in headers {
        builder = builder.header(*n, *v);
    }
    builder.body(()).unwrap()
}

#[tokio::test]
async fn no_store_and_private_are_not_stored_in_a_shared_cache() {
    for cc in ["no-store, max-age=60", "private, max-age=60"] {
        let (origin, seen) = origin(move |_, _| reply("x", &[("cache-control", cc)]));
        let mut svc = layered(&layer(), origin);
        send(&mut svc, get("/a")).await;
        send(&mut svc, get("/a")).await;
        assert_eq!(seen.count(), 2, "{cc}");
    }
    let (origin, seen) = origin(|_, _| reply("x", &[("cache-control", "private, max-age=60")]));
    let private = CacheLayer::builder().private().build().unwrap();
    let mut svc = layered(&private, origin);
    send(&mut svc, get("/a")).await;
    send(&mut svc, get("/a")).await;
    assert_eq!(seen.count(), 1, "a private cache stores private responses");
}

#[tokio::test]
async fn a_request_no_store_stores_nothing() {
    let (origin, seen) = origin(|_, _| reply("x", &[("cache-control", "max-age=60")]));
    let mut svc = layered(&layer(), origin);
    send(&mut svc, request("/a", &[("cache-control", "no-store")])).await;
    send(&mut svc, get("/a")).await;
    assert_eq!(seen.count(), 2);
}

#[tokio::test]
async fn authorized_requests_are_stored_only_when_the_response_allows() {
    let (origin, seen) = origin(|r, _| {
        let cc = if r.uri().path() == "/public" {
            "public, max-age=60"
        } else {
            "max-age=60"
        };
        reply("secret", &[("cache-control", cc)])
    });
    let mut svc = layered(&layer(), origin);
    let auth = [("authorization", "Bearer x")];
    send(&mut svc, request("/plain", &auth)).await;
    send(&mut svc, request("/plain", &auth)).await;
    assert_eq!(seen.count(), 2, "max-age alone does not allow it");
    send(&mut svc, request("/public", &auth)).await;
    send(&mut svc, request("/public", &auth)).await;
    assert_eq!(seen.count(), 3, "public does");
}

#[tokio::test]
async fn set_cookie_and_hop_by_hop_fields_are_never_replayed() {
    let (origin, _) = origin(|_, _| {
        reply(
            "x",
            &[
                ("cache-control", "max-age=60"),
                ("set-cookie", "session=alice"),
                ("connection", "x-per-hop"),
                ("x-per-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("x-kept", "yes"),
            ],
        )
    });
    let mut svc = layered(&layer(), origin);
    let (first, _) = send(&mut svc, get("/a")).await;
    assert_eq!(
        first.headers()["set-cookie"],
        "session=alice",
        "the first client gets it"
    );
    let (second, _) = send(&mut svc, get("/a")).await;
    assert!(status(&second).contains("hit"));
    for gone in ["set-cookie", "x-per-hop", "keep-alive", "connection"] {
        assert!(second.headers().get(gone).is_none(), "{gone} replayed");
    }
    assert_eq!(second.headers()["x-kept"], "yes");
}

#[tokio::test]
async fn vary_selects_a_variant_and_star_never_matches() {
    let (origin, seen) = origin(|r, n| {
        let lang = r
            .headers()
            .get("accept-language")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: &'static str = if lang.as_deref() == Some("fr") {
            "bonjour"
        } else {
            "hello"
        };
        let vary = if r.uri().path() == "/star" {
            "*"
        } else {
            "Accept-Language"
        };
        let _ = n;
        reply(body, &[("cache-control", "max-age=60"), ("vary", vary)])
    });
    let mut svc = layered(&layer(), origin);
    let fr = || request("/v", &[("accept-language", "fr")]);
    let en = || request("/v", &[("accept-language", "en")]);
    assert_eq!(send(&mut svc, fr()).await.1, "bonjour");
    let (r, body) = send(&mut svc, en()).await;
    assert_eq!(body, "hello");
    assert!(status(&r).contains("fwd=vary-miss"), "{}", status(&r));
    assert_eq!(send(&mut svc, fr()).await.1, "bonjour");
    assert_eq!(send(&mut svc, en()).await.1, "hello");
    assert_eq!(seen.count(), 2, "both variants stored");
    send(&mut svc, request("/star", &[])).await;
    send(&mut svc, request("/star", &[])).await;
    assert_eq!(seen.count(), 4, "Vary: * is never reused");
}

#[tokio::test]
async fn two_authorities_are_two_resources() {
    let (origin, seen) = origin(|r, _| {
        let host = r.headers()["host"].to_str().unwrap().to_owned();
        let body: &'static str = if host == "a.example" { "a" } else { "b" };
        reply(body, &[("cache-control", "max-age=60")])
    });
    let mut svc = layered(&layer(), origin);
    let on = |host: &str| Request::get("/same").header("host", host).body(()).unwrap();
    assert_eq!(send(&mut svc, on("a.example")).await.1, "a");
    assert_eq!(send(&mut svc, on("b.example")).await.1, "b");
    assert_eq!(send(&mut svc, on("A.EXAMPLE")).await.1, "a");
    assert_eq!(seen.count(), 2);
}

#[tokio::test]
async fn head_is_answered_from_a_stored_get_and_never_stored_itself() {
    let (origin, seen) = origin(|r, _| {
        if r.method() == http::Method::HEAD {
            let mut response = reply("", &[("cache-control", "max-age=60")]);
            response
                .headers_mut()
                .insert("content-length", "5".parse().unwrap());
            response
        } else {
            reply("hello", &[("cache-control", "max-age=60")])
        }
    });
    let mut svc = layered(&layer(), origin);
    let head = || {
        Request::head("/h")
            .header("host", "example.com")
            .body(())
            .unwrap()
    };
    // A HEAD first must not leave an empty body for a later GET.
    send(&mut svc, head()).await;
    let (_, body) = send(&mut svc, get("/h")).await;
    assert_eq!(body, "hello");
    assert_eq!(seen.count(), 2);
    let (response, body) = send(&mut svc, head()).await;
    assert_eq!(seen.count(), 2, "HEAD from the stored GET");
    assert!(body.is_empty());
    assert_eq!(response.headers()["content-length"], "5");
}

#[tokio::test]
async fn key_extractors() {
    let (path_origin, seen) = origin(|_, _| reply("x", &[("cache-control", "max-age=60")]));
    let path_only = CacheLayer::builder()
        .key(KeyExtractor::Path)
        .build()
        .unwrap();
    let mut svc = layered(&path_only, path_origin);
    send(&mut svc, get("/p?x=1")).await;
    send(&mut svc, get("/p?x=2")).await;
    assert_eq!(seen.count(), 1, "the query is ignored");

    let (origin, seen) = origin(|_, _| reply("x", &[("cache-control", "max-age=60")]));
    let custom = CacheLayer::builder()
        .key(KeyExtractor::custom(|parts| {
            (parts.uri.path() != "/nocache").then(|| parts.uri.path().to_owned())
        }))
        .build()
        .unwrap();
    let mut svc = layered(&custom, origin);
    send(&mut svc, get("/nocache")).await;
    let (r, _) = send(&mut svc, get("/nocache")).await;
    assert_eq!(seen.count(), 2);
    assert!(status(&r).contains("fwd=bypass"));
}

#[tokio::test]
async fn bodies_outside_the_size_bounds_are_not_stored() {
    let (origin, seen) = origin(|r, _| {
        let body: &'static str = if r.uri().path() == "/big" {
            "0123456789"
        } else {
            "1"
        };
        reply(body, &[("cache-control", "max-age=60")])
    });
    let layer = CacheLayer::builder()
        .max_body_size(5)
        .min_body_size(2)
        .build()
        .unwrap();
    let mut svc = layered(&layer, origin);
    for path in ["/big", "/big", "/small", "/small"] {
        send(&mut svc, get(path)).await;
    }
    assert_eq!(seen.count(), 4);
}

#[tokio::test]
async fn header_allowlist_keeps_only_named_fields() {
    let (origin, _) = origin(|_, _| {
        reply(
            "x",
            &[("cache-control", "max-age=60"), ("x-a", "1"), ("x-b", "2")],
        )
    });
    let layer = CacheLayer::builder()
        .header_allowlist([http::HeaderName::from_static("x-a")])
        .build()
        .unwrap();
    let mut svc = layered(&layer, origin);
    send(&mut svc, get("/a")).await;
    let (hit, _) = send(&mut svc, get("/a")).await;
    assert_eq!(hit.headers()["x-a"], "1");
    assert!(hit.headers().get("x-b").is_none());
    assert_eq!(hit.headers()["cache-control"], "max-age=60");
}

#[tokio::test]
async fn tags_from_a_header_and_invalidation_by_tag_or_key() {
    let (origin, seen) = origin(|r, _| {
        let tag: &'static str = if r.uri().path().starts_with("/users") {
            "users, people"
        } else {
            "teams"
        };
        reply("x", &[("cache-control", "max-age=60"), ("cache-tag", tag)])
    });
    let layer = CacheLayer::builder()
        .tags_from_header(http::HeaderName::from_static("cache-tag"))
        .build()
        .unwrap();
    let mut svc = layered(&layer, origin);
    for path in ["/users/1", "/users/2", "/teams/1"] {
        send(&mut svc, get(path)).await;
    }
    assert_eq!(layer.invalidate_tag("people"), 2);
    for path in ["/users/1", "/users/2", "/teams/1"] {
        send(&mut svc, get(path)).await;
    }
    assert_eq!(seen.count(), 5, "the two users refetched, the team not");
    let key = KeyExtractor::default().key(&get("/teams/1")).unwrap();
    assert!(layer.invalidate(&key));
    send(&mut svc, get("/teams/1")).await;
    assert_eq!(seen.count(), 6);
}

#[tokio::test]
async fn only_the_configured_statuses_are_stored() {
    let (origin, seen) = origin(|r, _| {
        let mut response = reply("x", &[("cache-control", "max-age=60")]);
        if r.uri().path() == "/missing" {
            *response.status_mut() = http::StatusCode::NOT_FOUND;
        }
        response
    });
    let layer = CacheLayer::builder()
        .cacheable_statuses([http::StatusCode::OK])
        .build()
        .unwrap();
    let mut svc = layered(&layer, origin);
    for path in ["/ok", "/ok", "/missing", "/missing"] {
        send(&mut svc, get(path)).await;
    }
    assert_eq!(seen.count(), 3, "the 404 is not stored");
}

#[tokio::test]
async fn accept_language_and_encoding_are_compared_as_preference_lists() {
    let (origin, seen) = origin(|r, _| {
        let lang = r.headers().get("accept-language");
        let body = if lang.is_some() { "lang" } else { "other" };
        let vary = if lang.is_some() {
            "Accept-Language"
        } else {
            "Accept-Encoding"
        };
        reply(body, &[("cache-control", "max-age=60"), ("vary", vary)])
    });
    let mut svc = layered(&layer(), origin);
    let lang = |v: &str| request("/l", &[("accept-language", v)]);
    send(&mut svc, lang("en, de")).await;
    for same in [
        "de, en",
        "eN, De",
        " en ,   de",
        "de;q=1, en;q=1.000",
        "EN,de;Q=1",
    ] {
        let (r, _) = send(&mut svc, lang(same)).await;
        assert!(status(&r).contains("hit"), "{same:?}: {}", status(&r));
    }
    assert_eq!(seen.count(), 1);
    let (r, _) = send(&mut svc, lang("en, de;q=0.5")).await;
    assert!(status(&r).contains("fwd=vary-miss"), "{}", status(&r));
    let (r, _) = send(&mut svc, lang("de;q=0.50, EN")).await;
    assert!(status(&r).contains("hit"), "{}", status(&r));
    assert_eq!(seen.count(), 2);

    let encoding = |v: &str| request("/e", &[("accept-encoding", v)]);
    send(&mut svc, encoding("gzip, br;q=0.8, deflate;q=0.8")).await;
    let (r, _) = send(&mut svc, encoding("Deflate;q=0.80,GZIP;q=1, br;q=0.8")).await;
    assert!(status(&r).contains("hit"), "{}", status(&r));
    let (r, _) = send(&mut svc, encoding("br, gzip, deflate")).await;
    assert!(status(&r).contains("fwd=vary-miss"), "{}", status(&r));
    assert_eq!(seen.count(), 4);
}

#[tokio::test]
async fn a_content_language_serves_requests_that_prefer_it() {
    let (origin, seen) = origin(|_, _| {
        reply(
            "hallo",
            &[
                ("cache-control", "max-age=60"),
                ("vary", "Accept-Language"),
                ("content-language", "de"),
            ],
        )
    });
    let mut svc = layered(&layer(), origin);
    let lang = |v: &str| request("/g", &[("accept-language", v)]);
    send(&mut svc, lang("en, de")).await;
    let (r, body) = send(&mut svc, lang("fr;q=0.5, de;q=1.0")).await;
    assert!(status(&r).contains("hit"), "{}", status(&r));
    assert_eq!(body, "hallo");
    assert_eq!(seen.count(), 1);
    for other in ["fr, de;q=0.9", "de-AT", "*", "de;q=0"] {
        send(&mut svc, lang(other)).await;
    }
    assert_eq!(seen.count(), 5, "de is not their first choice");
}

#[tokio::test]
async fn a_method_predicate_narrows_what_is_cached() {
    let respond = |r: &Request<()>, _: usize| {
        if r.method() == http::Method::HEAD {
            let mut response = reply("", &[("cache-control", "max-age=60")]);
            response
                .headers_mut()
                .insert("content-length", "5".parse().unwrap());
            response
        } else {
            reply("hello", &[("cache-control", "max-age=60")])
        }
    };
    let head = || {
        Request::head("/m")
            .header("host", "example.com")
            .body(())
            .unwrap()
    };
    let defaults = CacheLayer::builder().build().unwrap();
    assert!(defaults.config().methods.caches(&http::Method::GET));
    assert!(defaults.config().methods.caches(&http::Method::HEAD));
    assert!(!defaults.config().methods.caches(&http::Method::POST));

    let get_only = CacheLayer::builder()
        .methods([http::Method::GET])
        .build()
        .unwrap();
    let (get_origin, seen) = origin(respond);
    let mut svc = layered(&get_only, get_origin);
    send(&mut svc, get("/m")).await;
    let (r, body) = send(&mut svc, get("/m")).await;
    assert_eq!(
        (status(&r).contains("hit"), body.as_ref()),
        (true, &b"hello"[..])
    );
    let (r, _) = send(&mut svc, head()).await;
    assert!(status(&r).contains("fwd=bypass"), "{}", status(&r));
    send(&mut svc, head()).await;
    assert_eq!(seen.count(), 3, "HEAD always upstream, GET cached");

    let nothing = CacheLayer::builder()
        .method_predicate(|_| false)
        .build()
        .unwrap();
    let (none_origin, seen) = origin(respond);
    let mut svc = layered(&nothing, none_origin);
    for _ in 0..2 {
        let (r, _) = send(&mut svc, get("/m")).await;
        assert!(status(&r).contains("fwd=bypass"), "{}", status(&r));
    }
    assert_eq!(seen.count(), 2, "nothing stored");
}
