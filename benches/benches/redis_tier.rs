//! The Redis tier side by side with the raw `redis` crate, against a real
//! `redis-server` this bench starts on a loopback port:
//!
//! - `redis_tier/read_1KiB`: a strata L1 hit, an L2 hit (L1 never holds the
//!   key: promotion is off), and a plain `GET` of the same key on a
//!   `redis::aio::ConnectionManager`;
//! - `redis_tier/get_100`: 100 keys through `TieredCache::get_many` (one
//!   `MGET`, no promotion) vs 100 sequential `GET`s vs one raw `MGET`.
//!
//! ```sh
//! cargo bench -p strata-benches --features redis --bench redis_tier
//! ```

#[path = "../../adapter-redis/tests/support/server.rs"]
mod server;

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use redis::AsyncCommands;
use strata::tiered::{Promotion, TieredCache};
use strata::Cache;
use strata_redis::RedisTier;

fn bench(c: &mut Criterion) {
    let Some(server) = server::RedisServer::start() else {
        eprintln!("redis-server not found: nothing to measure");
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let value = Bytes::from(vec![b'x'; 1024]);
    let (promoting, l2_only, mut raw) = rt.block_on(async {
        let tier = |ns: &'static str| {
            RedisTier::builder(server.url())
                .namespace(ns)
                .timeout(Duration::from_secs(1))
                .connect()
        };
        let l1 = || Cache::<String, Bytes>::new(100_000);
        let promoting = TieredCache::builder(l1(), tier("bench").await.expect("tier"))
            .build()
            .expect("tiered");
        let l2_only = TieredCache::builder(l1(), tier("bench").await.expect("tier"))
            .promotion(Promotion::AfterHits(u32::MAX))
            .build()
            .expect("tiered");
        let raw = redis::Client::open(server.url())
            .expect("client")
            .get_connection_manager()
            .await
            .expect("raw connection");
        (promoting, l2_only, raw)
    });
    rt.block_on(async {
        promoting
            .insert("one".to_owned(), value.clone())
            .await
            .expect("insert");
        for i in 0..100 {
            promoting
                .insert(format!("k{i}"), value.clone())
                .await
                .expect("insert");
        }
    });
    let key = "one".to_owned();
    let raw_key = "bench:d:one";

    let mut group = c.benchmark_group("redis_tier/read_1KiB");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("strata_l1_hit", |b| {
        b.iter(|| rt.block_on(async { black_box(promoting.get(&key).await) }));
    });
    group.bench_function("strata_l2_hit", |b| {
        b.iter(|| rt.block_on(async { black_box(l2_only.get(&key).await) }));
    });
    group.bench_function("redis_get", |b| {
        b.iter(|| {
            rt.block_on(async {
                let v: Option<Vec<u8>> = raw.get(raw_key).await.expect("get");
                black_box(v)
            })
        });
    });
    group.finish();

    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let raw_keys: Vec<String> = keys.iter().map(|k| format!("bench:d:{k}")).collect();
    let mut group = c.benchmark_group("redis_tier/get_100");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("strata_get_many", |b| {
        b.iter(|| rt.block_on(async { black_box(l2_only.get_many(&keys).await) }));
    });
    group.bench_function("redis_100_sequential_gets", |b| {
        b.iter(|| {
            rt.block_on(async {
                for key in &raw_keys {
                    let v: Option<Vec<u8>> = raw.get(key).await.expect("get");
                    black_box(v);
                }
            })
        });
    });
    group.bench_function("redis_mget", |b| {
        b.iter(|| {
            rt.block_on(async {
                let v: Vec<Option<Vec<u8>>> = raw.mget(&raw_keys).await.expect("mget");
                black_box(v)
            })
        });
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
