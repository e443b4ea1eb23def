//! Invalidation latency between two instances sharing one Redis: instance
//! A updates a key that instance B holds in L1; the time from the start of
//! A's write until B's L1 no longer holds the key, over 10,000 updates.
//!
//! ```sh
//! cargo run --release -p strata-benches --features redis --bin invalidation_latency
//! ```

#[path = "../../../adapter-redis/tests/support/server.rs"]
mod server;

use std::time::{Duration, Instant};

use strata::tiered::TieredCache;
use strata::Cache;
use strata_redis::RedisTier;

const UPDATES: usize = 10_000;

fn main() {
    let Some(server) = server::RedisServer::start() else {
        eprintln!("redis-server not found: nothing to measure");
        std::process::exit(1);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut micros: Vec<u64> = rt.block_on(async {
        let instance = || async {
            let tier = RedisTier::builder(server.url())
                .namespace("latency")
                .timeout(Duration::from_secs(1))
                .connect()
                .await
                .expect("tier");
            TieredCache::builder(Cache::<u64, u64>::new(100_000), tier)
                .build()
                .expect("tiered")
        };
        let (a, b) = (instance().await, instance().await);
        let mut micros = Vec::with_capacity(UPDATES);
        for i in 0..UPDATES as u64 {
            let key = i % 100;
            // B holds the key in L1 (after any invalidation still in flight
            // from the previous round has landed).
            b.l1().insert(key, i).expect("insert");
            let start = Instant::now();
            a.insert(key, i + 1).await.expect("write");
            let deadline = start + Duration::from_secs(1);
            while b.l1().contains_key(&key) {
                assert!(Instant::now() < deadline, "no invalidation within 1 s");
                std::hint::spin_loop();
                tokio::task::yield_now().await;
            }
            micros.push(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX));
        }
        micros
    });
    micros.sort_unstable();
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize];
    println!(
        "invalidation latency over {UPDATES} updates (write start -> other L1 drops the key): \
         p50 {} us, p90 {} us, p99 {} us, max {} us",
        at(0.50),
        at(0.90),
        at(0.99),
        micros[micros.len() - 1]
    );
}
