//! Shared test helpers: real servers, instances, waiting.

#![allow(dead_code, unreachable_pub)]

pub mod server;

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata::tiered::{InvalidationSink, SecondTier, TierError, TieredCache};
use strata::Cache;
use strata_redis::RedisTier;

#[allow(unused_imports)]
pub use server::{RedisCluster, RedisServer};

/// The instance type the tests use: string keys and values.
pub type Instance = TieredCache<String, String, RedisTier>;

/// The bound within which an invalidation must reach another instance.
pub const INVALIDATION_BOUND: Duration = Duration::from_secs(1);

pub fn l1() -> Cache<String, String> {
    Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(300))
        .build()
        .expect("an L1 cache")
}

pub async fn tier(url: &str) -> RedisTier {
    RedisTier::builder(url)
        .namespace("test")
        .timeout(Duration::from_millis(100))
        .tracking_check_interval(Duration::from_millis(200))
        .connect()
        .await
        .expect("the tier connects")
}

pub async fn instance(url: &str) -> Instance {
    TieredCache::builder(l1(), tier(url).await)
        .build()
        .expect("a tiered cache")
}

/// Polls `check` until it holds or `within` passes; how long it took.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if check() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    check().then(|| start.elapsed())
}

/// A loader that must not run.
pub async fn never() -> Result<String, String> {
    Err("the loader ran, but the value should have come from a cache".to_owned())
}

/// Fault injection: a tier whose reads return their (real) reply only
/// after `delay`, so that an invalidation can overtake them.
pub struct SlowReads<T> {
    pub inner: T,
    pub delay: Duration,
}

impl<T: SecondTier> SecondTier for SlowReads<T> {
    async fn get(&self, key: &[u8]) -> Result<Option<Bytes>, TierError> {
        let reply = self.inner.get(key).await;
        tokio::time::sleep(self.delay).await;
        reply
    }

    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Bytes>>, TierError> {
        let reply = self.inner.get_many(keys).await;
        tokio::time::sleep(self.delay).await;
        reply
    }

    fn set(
        &self,
        key: &[u8],
        record: Bytes,
        ttl: Option<Duration>,
        tags: &[&str],
    ) -> impl Future<Output = Result<(), TierError>> + Send {
        self.inner.set(key, record, ttl, tags)
    }

    fn delete(&self, key: &[u8]) -> impl Future<Output = Result<(), TierError>> + Send {
        self.inner.delete(key)
    }

    fn invalidate_tag(&self, tag: &str) -> impl Future<Output = Result<u64, TierError>> + Send {
        self.inner.invalidate_tag(tag)
    }

    fn invalidate_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Future<Output = Result<u64, TierError>> + Send {
        self.inner.invalidate_prefix(prefix)
    }

    fn attach(&self, sink: InvalidationSink) {
        self.inner.attach(sink);
    }
}
