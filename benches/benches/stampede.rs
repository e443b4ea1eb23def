//! A stampede: 64 tasks ask for one missing key at once, and the loader
//! takes 1 ms. strata's `get_or_load` against moka's `future::Cache::
//! get_with`, which also coalesces, on one tokio runtime (2 workers). Each
//! iteration is one stampede on a fresh cache; the loader must run exactly
//! once, which the bench asserts.
//!
//! ```text
//! cargo bench -p strata-benches --bench stampede
//! ```
#![forbid(unsafe_code)]
// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const CALLERS: usize = 64;
const LOAD_TIME: Duration = Duration::from_millis(1);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime")
}

/// Runs one stampede with `call` as each caller's lookup; returns its
/// duration and how many times the loader ran.
async fn stampede<F, Fut>(call: F) -> (Duration, usize)
where
    F: Fn(Arc<AtomicUsize>) -> Fut,
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    let loads = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| tokio::spawn(call(Arc::clone(&loads))))
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("caller task"), 42);
    }
    (started.elapsed(), loads.load(Ordering::SeqCst))
}

async fn load(loads: Arc<AtomicUsize>) -> u64 {
    loads.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(LOAD_TIME).await;
    42
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("stampede/64_callers_1ms_loader");
    group
        .throughput(Throughput::Elements(CALLERS as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("strata", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let cache: strata::Cache<u64, u64> = strata::Cache::new(1000);
                    let (elapsed, loads) = stampede(|loads| {
                        let cache = cache.clone();
                        async move { cache.get_or_load(1, || load(loads)).await }
                    })
                    .await;
                    assert_eq!(loads, 1, "strata ran the loader {loads} times");
                    total += elapsed;
                }
                total
            })
        });
    });
    group.bench_function("moka", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let cache: moka::future::Cache<u64, u64> = moka::future::Cache::new(1000);
                    let (elapsed, loads) = stampede(|loads| {
                        let cache = cache.clone();
                        async move { cache.get_with(1, load(loads)).await }
                    })
                    .await;
                    assert_eq!(loads, 1, "moka ran the loader {loads} times");
                    total += elapsed;
                }
                total
            })
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
