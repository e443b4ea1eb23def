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
    let tier = RedisTier::builder(url)
        .namespace("http")
        .timeout(Duration::from_millis(200))
        .tracking_check_interval(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    CacheLayer::builder()
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
