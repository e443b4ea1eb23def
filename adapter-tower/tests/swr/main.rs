//! Stale-while-revalidate: the stale copy at once, one revalidation in the
//! background.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use strata_tower::CacheLayer;
use tower::{Service, ServiceExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_copies_are_served_at_once_and_revalidated_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let origin = tower::service_fn(move |req: Request<()>| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let revalidating = req.headers().contains_key("if-none-match");
        async move {
            if n > 1 {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let mut response = Response::builder()
                .header("cache-control", "max-age=0, stale-while-revalidate=60")
                .header("etag", "\"v1\"");
            let body = if revalidating {
                response = response
                    .status(StatusCode::NOT_MODIFIED)
                    .header("x-refreshed", "yes");
                Bytes::new()
            } else {
                Bytes::from_static(b"hello")
            };
            Ok::<_, Infallible>(
                response
                    .header("content-length", body.len())
                    .body(Full::new(body))
                    .unwrap(),
            )
        }
    });
    let layer = CacheLayer::builder()
        .spawner(|task| {
            tokio::spawn(task);
        })
        .build()
        .unwrap();
    let svc = tower::Layer::layer(&layer, origin);
    let get = || {
        Request::get("/s")
            .header("host", "example.com")
            .body(())
            .unwrap()
    };
    let first = svc.clone().oneshot(get()).await.unwrap();
    first.into_body().collect().await.unwrap();

    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let mut svc = svc.clone();
        let response = svc.ready().await.unwrap().call(get()).await.unwrap();
        statuses.push(
            response.headers()["cache-status"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "hello"
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "none waited for the origin"
    );
    assert!(statuses[0].contains("detail=revalidating"), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| s.contains("hit; stale")),
        "{statuses:?}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one background revalidation"
    );
    let after = svc.clone().oneshot(get()).await.unwrap();
    assert_eq!(
        after.headers()["x-refreshed"],
        "yes",
        "the 304 refreshed the entry"
    );
}

#[tokio::test]
async fn without_a_spawner_stale_copies_are_revalidated_first() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let origin = tower::service_fn(move |_req: Request<()>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", "max-age=0, stale-while-revalidate=60")
                    .header("content-length", "2")
                    .body(Full::new(Bytes::from_static(b"hi")))
                    .unwrap(),
            )
        }
    });
    let layer = CacheLayer::new(1 << 20).unwrap();
    let svc = tower::Layer::layer(&layer, origin);
    let get = || {
        Request::get("/s")
            .header("host", "example.com")
            .body(())
            .unwrap()
    };
    for _ in 0..2 {
        let r = svc.clone().oneshot(get()).await.unwrap();
        r.into_body().collect().await.unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_before_revalidates_fresh_entries_about_to_expire() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let origin = tower::service_fn(move |req: Request<()>| {
        counter.fetch_add(1, Ordering::SeqCst);
        let revalidating = req.headers().contains_key("if-none-match");
        async move {
            let response = Response::builder()
                .header("cache-control", "max-age=100")
                .header("etag", "\"v1\"");
            let (response, body) = if revalidating {
                (response.status(StatusCode::NOT_MODIFIED), Bytes::new())
            } else {
                (response.header("age", "95"), Bytes::from_static(b"hello"))
            };
            Ok::<_, Infallible>(
                response
                    .header("content-length", body.len())
                    .body(Full::new(body))
                    .unwrap(),
            )
        }
    });
    let layer = CacheLayer::builder()
        .refresh_before(Duration::from_secs(10))
        .spawner(|task| {
            tokio::spawn(task);
        })
        .build()
        .unwrap();
    let svc = tower::Layer::layer(&layer, origin);
    let get = || {
        Request::get("/r")
            .header("host", "example.com")
            .body(())
            .unwrap()
    };
    let first = svc.clone().oneshot(get()).await.unwrap();
    first.into_body().collect().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Five seconds of freshness left (Age 95 of 100): a hit, and one
    // background revalidation.
    let second = svc.clone().oneshot(get()).await.unwrap();
    let status = second.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        status.contains("hit") && status.contains("refreshing"),
        "{status}"
    );
    assert_eq!(
        second.into_body().collect().await.unwrap().to_bytes(),
        "hello"
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while calls.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "no background revalidation");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The 304 renewed it (its Age is now the 304's, 0): plain hits follow.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let third = svc.clone().oneshot(get()).await.unwrap();
    let status = third.headers()["cache-status"].to_str().unwrap().to_owned();
    assert!(
        status.contains("hit") && !status.contains("refreshing"),
        "{status}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_refresh_keeps_hot_responses_fresh_and_leaves_cold_ones() {
    use strata_tower::{AutoRefresh, AutoRefreshError};
    let calls = Arc::new(std::sync::Mutex::new(Vec::<(String, bool)>::new()));
    let seen = Arc::clone(&calls);
    let origin = tower::service_fn(move |req: Request<()>| {
        let conditional = req.headers().contains_key("if-none-match");
        seen.lock()
            .unwrap()
            .push((req.uri().path().to_owned(), conditional));
        async move {
            let response = Response::builder()
                .header("cache-control", "max-age=2")
                .header("etag", "\"v1\"");
            let (response, body) = if conditional {
                (response.status(StatusCode::NOT_MODIFIED), Bytes::new())
            } else {
                (response, Bytes::from_static(b"hello"))
            };
            Ok::<_, Infallible>(
                response
                    .header("content-length", body.len())
                    .body(Full::new(body))
                    .unwrap(),
            )
        }
    });
    let unconfigured = CacheLayer::builder().build().unwrap();
    assert_eq!(
        unconfigured.init_auto_refresh(origin.clone()),
        Err(AutoRefreshError::NotConfigured)
    );
    let layer = CacheLayer::builder()
        .auto_refresh(
            AutoRefresh::default()
                .min_hits_per_minute(60.0)
                .check_interval(Duration::from_millis(100))
                .max_concurrent(2)
                .window(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    layer.init_auto_refresh(origin.clone()).unwrap();
    assert_eq!(
        layer.init_auto_refresh(origin.clone()),
        Err(AutoRefreshError::AlreadyRunning)
    );
    let svc = tower::Layer::layer(&layer, origin);
    let get = |path: &str| {
        Request::get(path)
            .header("host", "example.com")
            .body(())
            .unwrap()
    };
    let read = |path: &'static str| {
        let svc = svc.clone();
        async move {
            let response = svc.oneshot(get(path)).await.unwrap();
            let status = response.headers()["cache-status"]
                .to_str()
                .unwrap()
                .to_owned();
            response.into_body().collect().await.unwrap();
            status
        }
    };
    read("/cold").await;
    read("/hot").await;
    for _ in 0..5 {
        assert!(read("/hot").await.contains("hit"));
    }
    // Past the two seconds of freshness: the hot one was revalidated in
    // the background within its last second, the cold one was not.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let hot = read("/hot").await;
    assert!(hot.contains("hit"), "{hot}");
    let cold = read("/cold").await;
    assert!(!cold.contains("hit"), "{cold}");
    let calls = calls.lock().unwrap().clone();
    let refreshed = calls
        .iter()
        .filter(|(path, conditional)| path == "/hot" && *conditional)
        .count();
    assert!(refreshed >= 1, "{calls:?}");
    assert_eq!(
        calls.iter().filter(|(path, _)| path == "/hot").count(),
        1 + refreshed,
        "no client request for /hot went upstream: {calls:?}"
    );
}

#[tokio::test]
async fn the_auto_refresh_loop_ends_when_the_layer_is_dropped() {
    use strata_tower::AutoRefresh;
    // The loop owns a clone of the service; it is dropped when the loop
    // ends, which the marker's count shows.
    let marker = Arc::new(());
    let held = Arc::clone(&marker);
    let origin = tower::service_fn(move |_: Request<()>| {
        let _held = &held;
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))) }
    });
    let layer = CacheLayer::builder()
        .auto_refresh(AutoRefresh::default().check_interval(Duration::from_millis(20)))
        .build()
        .unwrap();
    layer.init_auto_refresh(origin.clone()).unwrap();
    drop(origin);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        Arc::strong_count(&marker),
        2,
        "the loop runs while the layer lives"
    );
    drop(layer);
    let started = Instant::now();
    while Arc::strong_count(&marker) > 1 && started.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(Arc::strong_count(&marker), 1, "the loop ended");
}
