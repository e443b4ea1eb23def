//! Concurrent misses of one resource: one upstream request.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use strata_tower::CacheLayer;
use tower::{Service, ServiceExt};

async fn run(cache_control: &'static str, callers: usize) -> (usize, Vec<String>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let origin = tower::service_fn(move |_req: Request<()>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, Infallible>(
                Response::builder()
                    .header("cache-control", cache_control)
                    .header("content-length", "4")
                    .body(Full::new(Bytes::from_static(b"slow")))
                    .unwrap(),
            )
        }
    });
    let layer = CacheLayer::new(1 << 20).unwrap();
    let svc = tower::Layer::layer(&layer, origin);
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                let request = Request::get("/x")
                    .header("host", "example.com")
                    .body(())
                    .unwrap();
                let response = svc.ready().await.unwrap().call(request).await.unwrap();
                let status = response.headers()["cache-status"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                assert_eq!(
                    response.into_body().collect().await.unwrap().to_bytes(),
                    "slow"
                );
                status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    (calls.load(Ordering::SeqCst), statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_upstream_request() {
    let (calls, statuses) = run("max-age=60", 16).await;
    assert_eq!(calls, 1, "{statuses:?}");
    let collapsed = statuses.iter().filter(|s| s.contains("collapsed")).count();
    assert!(collapsed >= 1, "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_go_upstream_themselves_when_the_response_is_not_storable() {
    let (calls, _) = run("no-store", 4).await;
    assert!(
        calls >= 2,
        "every caller still gets an answer, from upstream"
    );
}
