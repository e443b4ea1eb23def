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

/// The inner service: `body` with `content_type`, fresh for an hour,
/// varying on `Accept-Encoding` when `vary`.
fn origin_with(
    body: Bytes,
    content_type: &'static str,
    vary: bool,
) -> impl Service<
    Request<()>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(move |_req: Request<()>| {
        let body = body.clone();
        async move {
            let builder = Response::builder();
            let builder = if vary {
                builder.header("vary", "accept-encoding")
            } else {
                builder
            };
            Ok::<_, Infallible>(
                builder
                    .header("cache-control", "max-age=3600")
                    .header("content-length", body.len())
                    .header("content-type", content_type)
                    .body(Full::new(body))
                    .expect("response"),
            )
        }
    })
}

fn origin() -> impl Service<
    Request<()>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
       + Sync
       + 'static {
    origin_with(Bytes::from_static(BODY), "application/octet-stream", false)
}

/// About 24 KiB of JSON rows, the kind of API response compression is for.
fn json_rows() -> Bytes {
    let rows: Vec<String> = (0..300)
        .map(|i| {
            format!(
                r#"{{"id":{i},"name":"user {i}","email":"user{i}@example.com","active":{}}}"#,
                i % 3 == 0
            )
        })
        .collect();
    Bytes::from(format!("[{}]", rows.join(",")))
}

fn request(path: &str) -> Request<()> {
    Request::get(path)
        .header("host", "bench.example")
        .body(())
        .expect("request")
}

/// A request from a client that takes gzip and zstd, as browsers send it.
fn browser_request(path: &str) -> Request<()> {
    Request::get(path)
        .header("host", "bench.example")
        .header("accept-encoding", "gzip, deflate, br, zstd")
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

/// One bench function: `svc` answering `/hit` (the warmed entry) or, with
/// `fresh_keys`, a new path per iteration (a miss that stores).
fn compare<S>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    svc: &S,
    fresh_keys: bool,
    make: fn(&str) -> Request<()>,
) where
    S: Service<Request<()>> + Clone,
    S::Response: IntoBody,
    S::Error: std::fmt::Debug,
{
    let mut next = 0u64;
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let base = next;
            next += iters;
            timed(rt, iters, |i| {
                let mut svc = svc.clone();
                async move {
                    let path = if fresh_keys {
                        format!("/miss/{}", base + i)
                    } else {
                        "/hit".to_owned()
                    };
                    let r = svc
                        .ready()
                        .await
                        .expect("ready")
                        .call(make(&path))
                        .await
                        .expect("call");
                    black_box(r.collect_body().await);
                }
            })
        });
    });
}

/// A response whose body the bench reads to its end.
trait IntoBody {
    fn collect_body(self) -> impl std::future::Future<Output = Bytes>;
}

impl<B> IntoBody for Response<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    async fn collect_body(self) -> Bytes {
        self.into_body().collect().await.expect("body").to_bytes()
    }
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

    for (name, fresh_keys) in [
        ("http_layer/hit_1KiB", false),
        ("http_layer/miss_and_store_1KiB", true),
    ] {
        let mut group = c.benchmark_group(name);
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        compare(
            &mut group,
            &rt,
            "strata_tower",
            &strata,
            fresh_keys,
            request,
        );
        compare(
            &mut group,
            &rt,
            "tower_http_cache",
            &thc,
            fresh_keys,
            request,
        );
        group.finish();
    }

    // Compression of stored bodies: the memory saved, and what a hit costs.
    let json = json_rows();
    let compressing = |coding| {
        strata_tower::CacheLayer::builder()
            .max_capacity(256 << 20)
            .compress_above(1024)
            .compression(coding)
            .build()
            .expect("layer")
    };
    let plain_layer = strata_tower::CacheLayer::new(256 << 20).expect("layer");
    let gzip_layer = compressing(strata_tower::Compression::Gzip);
    let zstd_layer = compressing(strata_tower::Compression::Zstd);
    let gzip_varied_layer = compressing(strata_tower::Compression::Gzip);
    let zstd_varied_layer = compressing(strata_tower::Compression::Zstd);
    let json_origin = |vary| origin_with(json.clone(), "application/json", vary);
    let plain = plain_layer.layer(json_origin(false));
    let gzip = gzip_layer.layer(json_origin(false));
    let zstd = zstd_layer.layer(json_origin(false));
    let gzip_varied = gzip_varied_layer.layer(json_origin(true));
    let zstd_varied = zstd_varied_layer.layer(json_origin(true));
    rt.block_on(async {
        for svc in [&plain, &gzip, &zstd] {
            let r = svc.clone().oneshot(request("/hit")).await.expect("call");
            r.into_body().collect().await.expect("body");
        }
        for (svc, coding) in [(&gzip_varied, "gzip"), (&zstd_varied, "zstd")] {
            for check in [false, true] {
                let r = svc
                    .clone()
                    .oneshot(browser_request("/hit"))
                    .await
                    .expect("call");
                if check {
                    assert_eq!(
                        r.headers().get("content-encoding").map(|v| v.as_bytes()),
                        Some(coding.as_bytes()),
                        "a client that takes the coding gets the stored bytes"
                    );
                }
                r.into_body().collect().await.expect("body");
            }
        }
    });
    let plain_bytes = plain_layer.stats().weighted_size;
    for (name, layer) in [("gzip", &gzip_layer), ("zstd", &zstd_layer)] {
        let packed_bytes = layer.stats().weighted_size;
        eprintln!(
            "http_layer/compression: a {} B JSON response weighs {plain_bytes} B stored plain, \
             {packed_bytes} B stored {name} ({:.1}x less)",
            json.len(),
            plain_bytes as f64 / packed_bytes.max(1) as f64
        );
    }
    let mut group = c.benchmark_group("http_layer/hit_json_24KiB");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    compare(
        &mut group,
        &rt,
        "strata_tower_plain",
        &plain,
        false,
        request,
    );
    // Stored compressed, decompressed for a client that takes no coding.
    compare(&mut group, &rt, "strata_tower_gzip", &gzip, false, request);
    compare(&mut group, &rt, "strata_tower_zstd", &zstd, false, request);
    // Stored compressed, sent as such to a client that takes the coding.
    compare(
        &mut group,
        &rt,
        "strata_tower_gzip_to_browser",
        &gzip_varied,
        false,
        browser_request,
    );
    compare(
        &mut group,
        &rt,
        "strata_tower_zstd_to_browser",
        &zstd_varied,
        false,
        browser_request,
    );
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
