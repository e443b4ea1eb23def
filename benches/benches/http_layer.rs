//! The HTTP caching layer on a hit, on a miss that stores, and key
//! extraction: strata-tower against tower-http-cache (latest 0.6.x), each
//! wrapping the same inner `service_fn` (a 1 KiB body, `Cache-Control:
//! max-age=3600`, a `Content-Length`), in one criterion group per case.
//! Each iteration is one `call` plus reading the body; a batch of
//! iterations runs inside one `block_on`, so the runtime costs nothing per
//! call.
//!
//! ```text
//! cargo bench -p strata-benches --features http --bench http_layer
//! ```
#![forbid(unsafe_code)]
// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt};

const BODY: &[u8] = &[b'x'; 1024];

fn origin() -> impl Service<
    Request<()>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("cache-control", "max-age=3600")
                .header("content-length", BODY.len())
                .header("content-type", "application/octet-stream")
                .body(Full::new(Bytes::from_static(BODY)))
                .expect("response"),
        )
    })
}

fn request(path: &str) -> Request<()> {
    Request::get(path)
        .header("host", "bench.example")
        .body(())
        .expect("request")
}

/// Runs `iters` calls of `one` inside one `block_on`; returns the time.
fn timed<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, mut one: F) -> Duration
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            one(i).await;
        }
        start.elapsed()
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let strata_layer = strata_tower::CacheLayer::new(256 << 20).expect("layer");
    let strata = strata_layer.layer(origin());
    let thc_layer = rt.block_on(async {
        tower_http_cache::CacheLayer::builder(
            tower_http_cache::backend::memory::InMemoryBackend::new(100_000),
        )
        .ttl(Duration::from_secs(3600))
        .build()
    });
    let thc = thc_layer.layer(origin());

    // Warm both with the hit path's entry.
    rt.block_on(async {
        let r = strata.clone().oneshot(request("/hit")).await.expect("call");
        r.into_body().collect().await.expect("body");
        let r = thc.clone().oneshot(request("/hit")).await.expect("call");
        r.into_body().collect().await.expect("body");
        // tower-http-cache may store after the response: let it settle.
        tokio::time::sleep(Duration::from_millis(50)).await;
    });

    let mut group = c.benchmark_group("http_layer/hit_1KiB");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("strata_tower", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, |_| {
                let mut svc = strata.clone();
                async move {
                    let r = svc
                        .ready()
                        .await
                        .expect("ready")
                        .call(request("/hit"))
                        .await
                        .expect("call");
                    assert!(r.headers()["cache-status"]
                        .as_bytes()
                        .starts_with(b"strata; hit"));
                    black_box(r.into_body().collect().await.expect("body").to_bytes());
                }
            })
        });
    });
    group.bench_function("tower_http_cache", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, |_| {
                let mut svc = thc.clone();
                async move {
                    let r = svc
                        .ready()
                        .await
                        .expect("ready")
                        .call(request("/hit"))
                        .await
                        .expect("call");
                    black_box(r.into_body().collect().await.expect("body").to_bytes());
                }
            })
        });
    });
    group.finish();

    let mut group = c.benchmark_group("http_layer/miss_and_store_1KiB");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut next = 0u64;
    group.bench_function("strata_tower", |b| {
        b.iter_custom(|iters| {
            let base = next;
            next += iters;
            timed(&rt, iters, |i| {
                let mut svc = strata.clone();
                async move {
                    let path = format!("/miss/{}", base + i);
                    let r = svc
                        .ready()
                        .await
                        .expect("ready")
                        .call(request(&path))
                        .await
                        .expect("call");
                    black_box(r.into_body().collect().await.expect("body").to_bytes());
                }
            })
        });
    });
    let mut next = 0u64;
    group.bench_function("tower_http_cache", |b| {
        b.iter_custom(|iters| {
            let base = next;
            next += iters;
            timed(&rt, iters, |i| {
                let mut svc = thc.clone();
                async move {
                    let path = format!("/miss/{}", base + i);
                    let r = svc
                        .ready()
                        .await
                        .expect("ready")
                        .call(request(&path))
                        .await
                        .expect("call");
                    black_box(r.into_body().collect().await.expect("body").to_bytes());
                }
            })
        });
    });
    group.finish();

    let mut group = c.benchmark_group("http_layer/key_extraction");
    let key = strata_tower::KeyExtractor::default();
    let req = request("/api/users/42?fields=name,email");
    group.bench_function("strata_tower_path_and_query", |b| {
        b.iter(|| black_box(key.key(black_box(&req))));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
