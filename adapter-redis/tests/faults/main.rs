//! Faults with a real `redis-server`: killed during a read load, restarted,
//! the circuit breaker. Figures are printed for the closing notes
//! (`cargo test -p strata-redis --test faults -- --nocapture`).

#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata::tiered::TieredCache;
use support::{eventually, instance, l1, tier, RedisServer, INVALIDATION_BOUND};

const TIMEOUT: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_during_a_read_load_costs_no_errors() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    // A small L1, so that most reads go to Redis or the "database".
    let small = strata::Cache::builder().max_capacity(64).build().unwrap();
    let cache = TieredCache::builder(small, tier(&server.url()).await)
        .breaker(5, Duration::from_millis(500))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    let worst = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..4u64 {
        let (cache, stop, errors, calls, worst) = (
            cache.clone(),
            Arc::clone(&stop),
            Arc::clone(&errors),
            Arc::clone(&calls),
            Arc::clone(&worst),
        );
        workers.push(tokio::spawn(async move {
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                i = i
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let key = format!("user:{}", (i >> 33) % 1_000);
                let started = Instant::now();
                let result = cache
                    .try_get_or_load(key.clone(), || async move {
                        // The "database": slower than Redis, always there.
                        tokio::time::sleep(Duration::from_micros(200)).await;
                        Ok::<_, String>(format!("row {key}"))
                    })
                    .await;
                let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                worst.fetch_max(took, Ordering::Relaxed);
                calls.fetch_add(1, Ordering::Relaxed);
                match result {
                    Ok(value) if value.starts_with("row user:") => {}
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_kill = calls.load(Ordering::Relaxed);
    let worst_before = worst.swap(0, Ordering::Relaxed);
    server.kill();
    tokio::time::sleep(Duration::from_secs(7)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let total = calls.load(Ordering::Relaxed);
    let worst_after = Duration::from_micros(worst.load(Ordering::Relaxed));
    let stats = cache.stats();
    eprintln!(
        "faults/kill: {total} calls in 10 s ({before_kill} before the kill), errors {}, \
         worst call before the kill {:?}, after {worst_after:?}; tier errors {}, \
         skipped by the breaker {}, breaker opened {} times",
        errors.load(Ordering::Relaxed),
        Duration::from_micros(worst_before),
        stats.l2_errors,
        stats.l2_skipped,
        stats.breaker_opened,
    );
    assert_eq!(errors.load(Ordering::Relaxed), 0, "callers saw errors");
    assert!(total > before_kill, "reads went on after the kill");
    assert!(
        stats.breaker_opened >= 1 && stats.l2_skipped > 0,
        "{stats:?}"
    );
    // One call waits for at most one tier timeout (plus the loader and
    // scheduling on a shared 2-core machine).
    assert!(
        worst_after < TIMEOUT * 3,
        "a call took {worst_after:?}, over the {TIMEOUT:?} tier timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_gets_tracking_back_and_no_stale_read_follows() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let a = instance(&server.url()).await;
    let b = instance(&server.url()).await;
    a.insert("k".to_owned(), "v1".to_owned()).await.unwrap();
    assert!(
        eventually(INVALIDATION_BOUND, || b.tier().stats().invalidated_keys
            >= 1)
        .await
        .is_some()
    );
    assert_eq!(b.get(&"k".to_owned()).await.as_deref(), Some("v1"));
    assert!(b.l1().contains_key("k"));

    server.kill();
    let flushed = eventually(Duration::from_secs(2), || b.l1().is_empty()).await;
    assert!(flushed.is_some(), "L1 is cleared when the connection drops");
    // While Redis is down, reads are misses that fall through to the loader.
    let value = b
        .try_get_or_load("k".to_owned(), || async {
            Ok::<_, String>("from-db".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(value, "from-db");

    let restarted = Instant::now();
    server.restart();
    let back = eventually(Duration::from_secs(10), || {
        a.tier().stats().tracking_restored >= 1 && b.tier().stats().tracking_restored >= 1
    })
    .await;
    assert!(
        back.is_some(),
        "tracking was not restored: {:?}",
        b.tier().stats()
    );
    eprintln!(
        "faults/restart: tracking back on both instances {:?} after the restart",
        restarted.elapsed()
    );
    assert!(b.tier().stats().tracking_up);
    assert!(
        !b.l1().contains_key("k"),
        "what was loaded while tracking was off is dropped once it is back"
    );
    // The breaker may still be open for its cool-down; wait it out.
    let heard_before = b.tier().stats().invalidated_keys;
    let mut written = false;
    for _ in 0..50 {
        if a.insert("k".to_owned(), "v2".to_owned()).await.is_ok() {
            written = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(written, "writes reach the restarted Redis");
    // Let the write's broadcast reach b before b reads, so that it cannot
    // drop the copy b is about to promote.
    let heard = eventually(INVALIDATION_BOUND, || {
        b.tier().stats().invalidated_keys > heard_before
    })
    .await;
    assert!(heard.is_some(), "b heard of the write");
    let mut fresh = false;
    for _ in 0..100 {
        if b.get(&"k".to_owned()).await.as_deref() == Some("v2") {
            fresh = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(fresh, "b never read v2");
    // Invalidation works again: another update reaches b's L1.
    assert!(b.l1().contains_key("k"));
    a.insert("k".to_owned(), "v3".to_owned()).await.unwrap();
    assert!(eventually(INVALIDATION_BOUND, || !b.l1().contains_key("k"))
        .await
        .is_some());
    assert_eq!(b.get(&"k".to_owned()).await.as_deref(), Some("v3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_skips_a_dead_redis_and_probes_it_back() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let cache = TieredCache::builder(l1(), tier(&server.url()).await)
        .breaker(3, Duration::from_millis(300))
        .build()
        .unwrap();
    cache.insert("x".to_owned(), "1".to_owned()).await.unwrap();
    server.kill();
    for i in 0..20 {
        let started = Instant::now();
        assert_eq!(cache.get(&format!("absent{i}")).await, None);
        assert!(started.elapsed() < TIMEOUT * 3);
    }
    let stats = cache.stats();
    assert!(stats.breaker_open, "{stats:?}");
    assert!(stats.l2_errors >= 3 && stats.l2_skipped >= 10, "{stats:?}");
    let writes = cache.insert("y".to_owned(), "2".to_owned()).await;
    assert!(
        writes.is_err(),
        "a write-through to a dead tier is reported"
    );
    assert!(cache.l1().contains_key("y"), "while L1 takes it");

    server.restart();
    cache.l1().clear();
    let reopened = eventually(Duration::from_secs(5), || !cache.stats().breaker_open).await;
    assert!(reopened.is_some());
    let mut hit = false;
    for _ in 0..50 {
        cache.insert("z".to_owned(), "3".to_owned()).await.ok();
        cache.l1().clear();
        if cache.get(&"z".to_owned()).await.as_deref() == Some("3") && cache.stats().l2_hits >= 1 {
            hit = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(hit, "L2 hits resume after the probe: {:?}", cache.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_tier_lets_a_service_start_before_redis_and_joins_it_later() {
    if support::server::redis_binary().is_none() {
        return;
    }
    let port = support::server::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let lazy = || {
        strata_redis::RedisTier::builder(url.clone())
            .namespace("test")
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_millis(200))
            .tracking_check_interval(Duration::from_millis(200))
            .connect_lazy()
            .expect("settings are fine")
    };
    let a = TieredCache::builder(l1(), lazy()).build().unwrap();
    let b = TieredCache::builder(l1(), lazy()).build().unwrap();
    // No Redis yet: reads load, fast, without errors; writes report it.
    let started = Instant::now();
    let value = a
        .try_get_or_load("k".to_owned(), || async {
            Ok::<_, String>("db".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(value, "db");
    assert!(started.elapsed() < TIMEOUT, "no Redis costs no wait");
    assert!(a.insert("k".to_owned(), "v1".to_owned()).await.is_err());
    assert!(!a.tier().stats().tracking_up);

    let _server = RedisServer::start_on(port, &[]).expect("the binary was found above");
    let up = eventually(Duration::from_secs(10), || {
        a.tier().stats().tracking_up && b.tier().stats().tracking_up
    })
    .await;
    assert!(up.is_some(), "the tiers connected once Redis came up");
    assert!(a.l1().is_empty(), "L1 is cleared when tracking starts");
    // The breaker may hold calls back for its cool-down; then all works,
    // invalidation included.
    let mut written = false;
    for _ in 0..30 {
        if a.insert("k".to_owned(), "v2".to_owned()).await.is_ok() {
            written = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(written);
    let heard = eventually(INVALIDATION_BOUND, || {
        b.tier().stats().invalidated_keys >= 1
    })
    .await;
    assert!(heard.is_some());
    let mut read = None;
    for _ in 0..30 {
        read = b.get(&"k".to_owned()).await;
        if read.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read.as_deref(), Some("v2"));
    a.insert("k".to_owned(), "v3".to_owned()).await.unwrap();
    assert!(eventually(INVALIDATION_BOUND, || !b.l1().contains_key("k"))
        .await
        .is_some());
}
