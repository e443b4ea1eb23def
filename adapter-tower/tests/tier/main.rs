//! The layer over a second tier: two layers ("instances") sharing one real
//! `redis-server` through `strata_redis::RedisTier`.
#![allow(clippy::unwrap_used)]

#[path = "../../../adapter-redis/tests/support/server.rs"]
mod server;
#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use http::Request;
use strata_redis::RedisTier;
use strata_tower::CacheLayer;
use support::{get, layered, origin, reply, send, status};

async fn instance(url: &str) -> CacheLayer {
    instance_with(url, CacheLayer::builder()).await
}

async fn instance_with(url: &str, builder: strata_tower::CacheLayerBuilder) -> CacheLayer {
    let tier = RedisTier::builder(url)
        .namespace("http")
        .timeout(Duration::from_millis(200))
        .tracking_check_interval(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    builder
        .max_capacity(16 << 20)
        .spawner(|task| {
            tokio::spawn(task);
        })
        .second_tier(tier)
        .build()
        .unwrap()
}

async fn until(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    check()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_layers_share_responses_through_redis_and_invalidate_each_other() {
    let Some(server) = server::RedisServer::start() else {
        return;
    };
    let url = server.url();
    let (a, b) = (instance(&url).await, instance(&url).await);
    let (origin, seen) = origin(|_, _| {
        reply(
            "the document",
            &[("cache-control", "max-age=600"), ("etag", "\"v1\"")],
        )
    });
    let mut svc_a = layered(&a, origin.clone());
    let mut svc_b = layered(&b, origin);

    let (first, _) = send(&mut svc_a, get("/doc")).await;
    assert!(status(&first).contains("stored"));
    let written = until(Duration::from_secs(2), || {
        server.command("EXISTS http:d:example.com/doc").as_deref() == Some(":1\r\n")
    })
    .await;
    assert!(written, "the stored response reached Redis");

    // The other instance has nothing in memory: Redis answers, not the origin.
    let (from_redis, body) = send(&mut svc_b, get("/doc")).await;
    assert_eq!(body, "the document");
    assert!(
        status(&from_redis).contains("hit"),
        "{}",
        status(&from_redis)
    );
    assert_eq!(from_redis.headers()["etag"], "\"v1\"");
    assert_eq!(seen.count(), 1);
    let b_stats = b.second_tier_stats().unwrap();
    assert_eq!((b_stats.hits, b_stats.misses, b_stats.errors), (1, 0, 0));
    assert_eq!(a.second_tier_stats().unwrap().misses, 1);
    // Counted when the write's reply is in, a moment after Redis has it.
    let counted = until(Duration::from_secs(2), || {
        a.second_tier_stats().unwrap().writes == 1
    })
    .await;
    assert!(counted, "{:?}", a.second_tier_stats());

    // An unsafe method through one instance invalidates everywhere.
    let post = Request::post("/doc")
        .header("host", "example.com")
        .body(())
        .unwrap();
    send(&mut svc_a, post).await;
    assert_eq!(seen.count(), 2);
    let gone = until(Duration::from_secs(2), || {
        server.command("EXISTS http:d:example.com/doc").as_deref() == Some(":0\r\n")
            && b.stats().entries == 0
    })
    .await;
    assert!(
        gone,
        "deleted in Redis and dropped from the other instance's memory"
    );
    let (again, _) = send(&mut svc_b, get("/doc")).await;
    assert!(!status(&again).contains("hit"), "{}", status(&again));
    assert_eq!(seen.count(), 3, "the other instance went upstream");
    // `gone` saw the delete in Redis; the purge is counted on its reply.
    let purged = until(Duration::from_secs(2), || {
        a.second_tier_stats().unwrap().purges == 1
    })
    .await;
    assert!(purged, "{:?}", a.second_tier_stats());
    assert!(b.second_tier_stats().unwrap().invalidations_heard >= 1);

    // The admin API shows the same counters.
    let admin = b.admin_router("secret").unwrap();
    let request = Request::get("/stats")
        .header("authorization", "Bearer secret")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(admin, request).await.unwrap();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let stats: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(stats["second_tier"]["hits"], 1);
    assert_eq!(
        stats["second_tier"]["invalidations_heard"],
        b.second_tier_stats().unwrap().invalidations_heard
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_tier_needs_a_spawner_and_a_dead_one_is_a_miss() {
    let Some(mut server) = server::RedisServer::start() else {
        return;
    };
    let tier = RedisTier::builder(server.url())
        .namespace("http")
        .connect()
        .await
        .unwrap();
    let no_spawner = CacheLayer::builder().second_tier(tier).build();
    assert!(no_spawner.is_err());

    let layer = instance(&server.url()).await;
    server.kill();
    let (origin, seen) = origin(|_, _| reply("x", &[("cache-control", "max-age=600")]));
    let mut svc = layered(&layer, origin);
    let started = Instant::now();
    let (response, body) = send(&mut svc, get("/a")).await;
    assert_eq!(
        (response.status().as_u16(), body.as_ref()),
        (200, &b"x"[..])
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "bounded by the tier's timeout"
    );
    let (hit, _) = send(&mut svc, get("/a")).await;
    assert!(status(&hit).contains("hit"), "memory still works");
    assert_eq!(seen.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_by_key_tag_and_prefix_reaches_redis_and_every_instance() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let Some(server) = server::RedisServer::start() else {
        return;
    };
    let url = server.url();
    let tagged =
        || CacheLayer::builder().tags_from_header(http::HeaderName::from_static("cache-tag"));
    let (a, b) = (
        instance_with(&url, tagged()).await,
        instance_with(&url, tagged()).await,
    );
    // The origin's current version of every document.
    let version = Arc::new(AtomicUsize::new(1));
    let current = Arc::clone(&version);
    let (origin, _) = origin(move |request, _| {
        let tag = if request.uri().path().starts_with("/team/") {
            "team"
        } else {
            "solo"
        };
        let body: &'static str =
            Box::leak(format!("v{}", current.load(Ordering::SeqCst)).into_boxed_str());
        reply(
            body,
            &[("cache-control", "max-age=600"), ("cache-tag", tag)],
        )
    });
    let mut svc_a = layered(&a, origin.clone());
    let mut svc_b = layered(&b, origin);
    let paths = [
        "/team/1",
        "/team/2",
        "/docs/1",
        "/docs/2",
        "/docs-old",
        "/key",
    ];
    let in_redis = |path: &str| {
        server
            .command(&format!("EXISTS http:d:example.com{path}"))
            .as_deref()
            == Some(":1\r\n")
    };
    for path in paths {
        send(&mut svc_a, get(path)).await;
    }
    assert!(until(Duration::from_secs(2), || paths.iter().all(|p| in_redis(p))).await);
    assert_eq!(
        server.command("SCARD http:t:team").as_deref(),
        Some(":2\r\n"),
        "tags travel with the responses"
    );
    // b reads them all from Redis into its memory, with their tags.
    for path in paths {
        let (hit, body) = send(&mut svc_b, get(path)).await;
        assert!(status(&hit).contains("hit"), "{path}: {}", status(&hit));
        assert_eq!(body, "v1");
    }

    // Each kind of invalidation, made on b (which got the responses from
    // Redis, so only the tags it gave them in memory can find them) or on
    // a, after the origin's documents changed.
    type Invalidate<'a> = &'a dyn Fn() -> usize;
    let cases: [(&str, &[&str], Invalidate<'_>, bool); 3] = [
        (
            "tag",
            &["/team/1", "/team/2"],
            &|| b.invalidate_tag("team"),
            false,
        ),
        (
            "prefix",
            &["/docs/1", "/docs/2"],
            &|| a.invalidate_prefix("example.com/docs/"),
            true,
        ),
        (
            "key",
            &["/key"],
            &|| usize::from(b.invalidate("example.com/key")),
            false,
        ),
    ];
    for (generation, (kind, gone, invalidate, on_a)) in (2..).zip(cases) {
        version.store(generation, Ordering::SeqCst);
        let new = format!("v{generation}");
        assert_eq!(invalidate(), gone.len(), "{kind}: in memory");
        let (made, heard) = if on_a {
            (&mut svc_a, &mut svc_b)
        } else {
            (&mut svc_b, &mut svc_a)
        };
        // The instance that invalidated never serves the old version: not
        // from memory, and not back from Redis while the delete runs there.
        for path in gone {
            let (response, body) = send(made, get(path)).await;
            assert_eq!(body, new, "{kind}: {path}: {}", status(&response));
        }
        // The other one hears of the deletes from Redis.
        for path in gone {
            let mut latest = false;
            for _ in 0..200 {
                if send(heard, get(path)).await.1 == new {
                    latest = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(latest, "{kind}: the other instance still serves {path}");
        }
    }
    assert!(
        in_redis("/docs-old"),
        "the prefix ends with a slash; /docs-old is not under it"
    );
    assert_eq!(send(&mut svc_a, get("/docs-old")).await.1, "v1");
    assert_eq!(send(&mut svc_b, get("/docs-old")).await.1, "v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_queued_before_an_invalidation_does_not_undo_it() {
    use std::sync::{Arc, Mutex};
    use strata_tower::BackgroundTask;
    let Some(server) = server::RedisServer::start() else {
        return;
    };
    // A spawner that holds its tasks, so the test picks their order.
    let queued: Arc<Mutex<Vec<BackgroundTask>>> = Arc::default();
    let queue = Arc::clone(&queued);
    let tier = RedisTier::builder(server.url())
        .namespace("http")
        .connect()
        .await
        .unwrap();
    let layer = CacheLayer::builder()
        .spawner(move |task| queue.lock().unwrap().push(task))
        .second_tier(tier)
        .build()
        .unwrap();
    let (origin, _) = origin(|_, _| reply("old", &[("cache-control", "max-age=600")]));
    let mut svc = layered(&layer, origin);
    send(&mut svc, get("/doc")).await;
    let write = queued
        .lock()
        .unwrap()
        .pop()
        .expect("the write to Redis, queued");
    assert!(layer.invalidate("example.com/doc"));
    let purge = queued.lock().unwrap().pop().expect("the delete, queued");
    // The worst order: the delete first, then the older write.
    purge.await;
    write.await;
    assert_eq!(
        server.command("EXISTS http:d:example.com/doc").as_deref(),
        Some(":0\r\n"),
        "the invalidated response is not put back"
    );
    let stats = layer.second_tier_stats().unwrap();
    assert_eq!(
        (stats.writes, stats.writes_dropped, stats.purges),
        (0, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_tier_opens_the_breaker_and_a_probe_closes_it_when_back() {
    let Some(mut server) = server::RedisServer::start() else {
        return;
    };
    let tier = RedisTier::builder(server.url())
        .namespace("http")
        .timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let layer = CacheLayer::builder()
        .spawner(|task| {
            tokio::spawn(task);
        })
        .second_tier(tier)
        .second_tier_breaker(3, Duration::from_millis(300))
        .build()
        .unwrap();
    let (origin, _) = origin(|_, _| reply("x", &[("cache-control", "max-age=600")]));
    let mut svc = layered(&layer, origin);
    server.kill();
    for i in 0..20 {
        let (response, _) = send(&mut svc, get(&format!("/down/{i}"))).await;
        assert_eq!(response.status(), 200, "the origin still answers");
    }
    let down = layer.second_tier_stats().unwrap();
    assert!(down.breaker_open, "{down:?}");
    // Three failures (reads, or writes in the background) open it; at
    // most one more read may probe if the loop outlasts the cool-down.
    assert!(
        down.errors + down.write_errors >= 3 && down.errors <= 4,
        "{down:?}"
    );
    assert!(down.breaker_skipped >= 16, "{down:?}");

    server.restart();
    // After the cool-down one memory miss probes Redis; once the
    // connection is back, the probe succeeds and reads go on.
    let mut read = false;
    for i in 0..100 {
        send(&mut svc, get(&format!("/up/{i}"))).await;
        let stats = layer.second_tier_stats().unwrap();
        if stats.misses > down.misses && !stats.breaker_open {
            read = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(read, "reads Redis again: {:?}", layer.second_tier_stats());
}
