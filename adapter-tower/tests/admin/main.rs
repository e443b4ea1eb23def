//! The admin API (feature `admin`) on a real listener, with a real client.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use strata_tower::admin::AdminError;
use strata_tower::CacheLayer;
use support::{get, layered, origin, reply, send};

const TOKEN: &str = "s3cret-token";

/// Serves the admin router of `layer` under `/admin` on a free port.
async fn serve_admin(layer: &CacheLayer) -> String {
    let router = axum::Router::new().nest("/admin", layer.admin_router(TOKEN).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}/admin")
}

async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let response = client
        .request(
            request
                .body(Full::new(Bytes::from(body.to_owned())))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[tokio::test]
async fn no_token_no_router() {
    let layer = CacheLayer::new(1 << 20).unwrap();
    assert_eq!(layer.admin_router("").err(), Some(AdminError::NoToken));
}

#[tokio::test]
async fn every_route_needs_the_token() {
    let layer = CacheLayer::new(1 << 20).unwrap();
    let admin = serve_admin(&layer).await;
    for (method, route) in [
        ("GET", "health"),
        ("GET", "stats"),
        ("GET", "hot-keys"),
        ("GET", "tags"),
        ("POST", "invalidate"),
    ] {
        let url = format!("{admin}/{route}");
        for token in [None, Some("wrong"), Some("s3cret-token-and-more"), Some("")] {
            let (status, _) = call(method, &url, token, "").await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {route} with {token:?}"
            );
        }
    }
    let (status, body) = call("GET", &format!("{admin}/health"), Some(TOKEN), "").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
}

#[tokio::test]
async fn stats_hot_keys_tags_and_invalidation() {
    let layer = CacheLayer::builder()
        .max_capacity(16 << 20)
        .tags_from_header(http::HeaderName::from_static("cache-tag"))
        .build()
        .unwrap();
    let (origin, seen) = origin(|request, _| {
        let tag = if request.uri().path().starts_with("/api/") {
            "api"
        } else {
            "static"
        };
        let tag: &'static str = tag;
        reply(
            "body",
            &[("cache-control", "max-age=600"), ("cache-tag", tag)],
        )
    });
    let mut svc = layered(&layer, origin);
    for path in ["/api/a", "/api/b", "/static/c", "/static/d"] {
        send(&mut svc, get(path)).await;
    }
    for _ in 0..9 {
        send(&mut svc, get("/api/a")).await;
    }
    for _ in 0..5 {
        send(&mut svc, get("/static/c")).await;
    }
    assert_eq!(seen.count(), 4);
    let admin = serve_admin(&layer).await;

    let (status, stats) = call("GET", &format!("{admin}/stats"), Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["entries"], 4);
    assert_eq!(stats["hits"], 14);
    assert!(stats["second_tier"].is_null(), "no second tier");
    assert!(stats["weighted_size"].as_u64().unwrap() > 0);

    let (_, hot) = call("GET", &format!("{admin}/hot-keys?limit=2"), Some(TOKEN), "").await;
    let keys: Vec<&str> = hot["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["example.com/api/a", "example.com/static/c"], "{hot}");

    let (_, tags) = call("GET", &format!("{admin}/tags"), Some(TOKEN), "").await;
    assert_eq!(
        tags["tags"],
        serde_json::json!([{"tag": "api", "entries": 2}, {"tag": "static", "entries": 2}])
    );

    let url = format!("{admin}/invalidate");
    let (status, done) = call("POST", &url, Some(TOKEN), r#"{"key":"example.com/api/b"}"#).await;
    assert_eq!(
        (status, done["invalidated"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    let (_, done) = call("POST", &url, Some(TOKEN), r#"{"tag":"static"}"#).await;
    assert_eq!(done["invalidated"], 2);
    let (_, done) = call(
        "POST",
        &url,
        Some(TOKEN),
        r#"{"prefix":"example.com/api/"}"#,
    )
    .await;
    assert_eq!(done["invalidated"], 1, "only /api/a was left");
    assert_eq!(layer.stats().entries, 0);
    send(&mut svc, get("/api/a")).await;
    assert_eq!(seen.count(), 5, "invalidated resources go upstream again");

    for bad in [
        "",
        "{}",
        r#"{"key":"a","tag":"b"}"#,
        r#"{"prefix":""}"#,
        r#"{"nonsense":1}"#,
        "not json",
    ] {
        let (status, _) = call("POST", &url, Some(TOKEN), bad).await;
        assert!(status.is_client_error(), "{bad:?} gave {status}");
    }
}
