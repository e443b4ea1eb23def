//! The Redis tier against a real `redis-server`: read-through, promotion,
//! write modes, tags, TTLs, garbage, and invalidation between instances.

#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strata::tiered::{Promotion, TieredCache, WriteMode};
use strata::Cache;
use support::{eventually, instance, l1, never, tier, RedisServer, SlowReads, INVALIDATION_BOUND};

macro_rules! server {
    () => {
        match RedisServer::start() {
            Some(server) => server,
            None => return,
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_loaded_by_one_instance_is_an_l2_hit_for_another() {
    let server = server!();
    let a = instance(&server.url()).await;
    let b = instance(&server.url()).await;
    let loads = AtomicUsize::new(0);
    let value = a
        .try_get_or_load("user:1".to_owned(), || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>("ada".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(value, "ada");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(a.stats().l2_writes, 1);
    // a's write is broadcast to b too; had it landed during b's read, that
    // read's fill would (rightly) have been dropped.
    let heard = eventually(INVALIDATION_BOUND, || {
        b.tier().stats().invalidated_keys >= 1
    })
    .await;
    assert!(heard.is_some());

    let from_b = b.try_get_or_load("user:1".to_owned(), never).await.unwrap();
    assert_eq!(from_b, "ada");
    let stats = b.stats();
    assert_eq!((stats.l2_hits, stats.promotions, stats.loads), (1, 1, 0));
    assert_eq!(
        b.l1().peek("user:1").as_deref(),
        Some("ada"),
        "promoted into L1"
    );
    assert_eq!(b.get(&"user:1".to_owned()).await.as_deref(), Some("ada"));
    assert_eq!(b.stats().l1_hits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_on_one_instance_leaves_no_stale_copy_on_another() {
    let server = server!();
    let a = instance(&server.url()).await;
    let b = instance(&server.url()).await;
    a.insert("k".to_owned(), "v1".to_owned()).await.unwrap();
    // The write's own broadcast reaches b too; let it land first.
    let heard = eventually(INVALIDATION_BOUND, || {
        b.tier().stats().invalidated_keys >= 1
    })
    .await;
    assert!(heard.is_some());
    assert_eq!(b.get(&"k".to_owned()).await.as_deref(), Some("v1"));
    assert!(b.l1().contains_key("k"));

    a.insert("k".to_owned(), "v2".to_owned()).await.unwrap();
    let took = eventually(INVALIDATION_BOUND, || !b.l1().contains_key("k")).await;
    assert!(
        took.is_some(),
        "b still holds v1 after {INVALIDATION_BOUND:?}"
    );
    assert_eq!(b.get(&"k".to_owned()).await.as_deref(), Some("v2"));
    assert!(
        a.l1().contains_key("k"),
        "NOLOOP: the writer's own L1 keeps the value it wrote"
    );

    a.remove(&"k".to_owned()).await.unwrap();
    assert!(eventually(INVALIDATION_BOUND, || !b.l1().contains_key("k"))
        .await
        .is_some());
    assert_eq!(b.get(&"k".to_owned()).await, None);
    assert_eq!(server.command("EXISTS test:d:k").as_deref(), Some(":0\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_redis_sets_and_invalidate_everywhere() {
    let server = server!();
    let a = instance(&server.url()).await;
    let b = instance(&server.url()).await;
    for i in 0..5 {
        a.insert_with_tags(format!("t{i}"), format!("v{i}"), &["team:red"])
            .await
            .unwrap();
    }
    a.insert_with_tags("other".to_owned(), "x".to_owned(), &["team:blue"])
        .await
        .unwrap();
    let members = server.command("SCARD test:t:team:red").unwrap();
    assert_eq!(members, ":5\r\n");
    let ttl: i64 = server
        .command("PTTL test:t:team:red")
        .unwrap()
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap();
    assert!(
        ttl > 0 && ttl <= 300_000,
        "the tag set expires with its members: {ttl}"
    );
    for i in 0..5 {
        assert!(b.get(&format!("t{i}")).await.is_some());
    }

    assert_eq!(a.invalidate_tag("team:red").await.unwrap(), 5);
    assert!(a.l1().peek("t0").is_none());
    let gone = eventually(INVALIDATION_BOUND, || {
        (0..5).all(|i| !b.l1().contains_key(&format!("t{i}")))
    })
    .await;
    assert!(gone.is_some(), "b's L1 still holds tagged entries");
    for i in 0..5 {
        assert_eq!(b.get(&format!("t{i}")).await, None);
    }
    assert_eq!(b.get(&"other".to_owned()).await.as_deref(), Some("x"));
    assert_eq!(
        server.command("EXISTS test:t:team:red").as_deref(),
        Some(":0\r\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_is_invalidated_literally_over_the_whole_keyspace() {
    use strata::tiered::SecondTier;
    let server = server!();
    let a = instance(&server.url()).await;
    let b = instance(&server.url()).await;
    // More keys than one SCAN page, so the walk takes several round trips.
    let users: Vec<String> = (0..2_500).map(|i| format!("user:{i}")).collect();
    for key in &users {
        a.insert(key.clone(), "u".to_owned()).await.unwrap();
    }
    for key in ["user:*glob", "user:[x]", "userx", "order:1", "other:user:1"] {
        a.insert(key.to_owned(), "o".to_owned()).await.unwrap();
    }
    for key in users.iter().take(10) {
        assert!(b.get(key).await.is_some());
    }

    // Glob characters in the prefix match only themselves.
    assert_eq!(a.tier().invalidate_prefix(b"user:*").await.unwrap(), 1);
    assert_eq!(a.tier().invalidate_prefix(b"user:[").await.unwrap(), 1);
    assert_eq!(a.tier().invalidate_prefix(b"nothing:").await.unwrap(), 0);
    assert_eq!(a.invalidate_prefix(b"user:").await.unwrap(), 2_500);
    assert!(a.l1().peek("user:0").is_none(), "gone from the caller's L1");
    assert!(a.l1().peek("userx").is_some());
    assert_eq!(server.command("DBSIZE").as_deref(), Some(":3\r\n"));
    for key in ["userx", "order:1", "other:user:1"] {
        let exists = server.command(&format!("EXISTS test:d:{key}"));
        assert_eq!(exists.as_deref(), Some(":1\r\n"), "{key}");
    }
    // The deletes reach the other instance's L1 like any write.
    let gone = eventually(INVALIDATION_BOUND, || {
        users.iter().take(10).all(|k| !b.l1().contains_key(k))
    })
    .await;
    assert!(gone.is_some(), "b's L1 still holds invalidated users");
    assert_eq!(b.get(&users[0]).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_naming_several_keys_and_a_flush_with_no_keys() {
    let server = server!();
    let a = instance(&server.url()).await;
    for key in ["m1", "m2", "m3", "m4"] {
        a.insert(key.to_owned(), "v".to_owned()).await.unwrap();
    }
    let b = instance(&server.url()).await;
    for key in ["m1", "m2", "m3", "m4"] {
        assert!(b.get(&key.to_owned()).await.is_some());
    }
    let before = b.tier().stats();
    // Another client deletes three keys in one command: Redis sends one
    // broadcast message naming all three.
    assert_eq!(
        server
            .command("DEL test:d:m1 test:d:m2 test:d:m3")
            .as_deref(),
        Some(":3\r\n")
    );
    let gone = eventually(INVALIDATION_BOUND, || {
        ["m1", "m2", "m3"].iter().all(|k| !b.l1().contains_key(*k))
    })
    .await;
    assert!(gone.is_some());
    let after = b.tier().stats();
    assert_eq!(after.invalidated_keys - before.invalidated_keys, 3);
    assert_eq!(
        after.invalidation_messages - before.invalidation_messages,
        1,
        "three keys, one message"
    );
    assert!(b.l1().contains_key("m4"), "an unnamed key stays");

    let flushes = b.stats().flushes;
    assert_eq!(server.command("FLUSHALL").as_deref(), Some("+OK\r\n"));
    assert!(eventually(INVALIDATION_BOUND, || b.l1().is_empty())
        .await
        .is_some());
    assert_eq!(
        b.stats().flushes,
        flushes + 1,
        "a flush arrives with no keys"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_overtaken_by_an_invalidation_is_not_put_into_l1() {
    let server = server!();
    let writer = instance(&server.url()).await;
    writer
        .insert("race".to_owned(), "old".to_owned())
        .await
        .unwrap();
    let slow = SlowReads {
        inner: tier(&server.url()).await,
        delay: Duration::from_millis(300),
    };
    let reader = TieredCache::builder(l1(), slow).build().unwrap();
    let read = {
        let reader = reader.clone();
        tokio::spawn(async move { reader.get(&"race".to_owned()).await })
    };
    // The reader has its reply ("old") and is held back; the write lands
    // and its invalidation reaches the reader first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    writer
        .insert("race".to_owned(), "new".to_owned())
        .await
        .unwrap();
    let seen = read.await.unwrap();
    assert_eq!(seen.as_deref(), Some("old"), "the caller gets what it read");
    assert_eq!(reader.l1().peek("race"), None, "but L1 never holds it");
    assert_eq!(reader.stats().fills_dropped, 1);
    assert_eq!(reader.get(&"race".to_owned()).await.as_deref(), Some("new"));

    // The same for a loader's value: a write that lands while it loads wins.
    let loading = {
        let reader = reader.clone();
        tokio::spawn(async move {
            reader
                .try_get_or_load("loaded".to_owned(), || async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok::<_, String>("from-db-old".to_owned())
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    writer
        .insert("loaded".to_owned(), "from-db-new".to_owned())
        .await
        .unwrap();
    assert_eq!(loading.await.unwrap().unwrap(), "from-db-old");
    assert_eq!(reader.l1().peek("loaded"), None);
    assert_eq!(
        reader.get(&"loaded".to_owned()).await.as_deref(),
        Some("from-db-new"),
        "the overtaken load did not overwrite the newer value in Redis"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_wrong_types_in_redis_are_misses() {
    let server = server!();
    let a = instance(&server.url()).await;
    assert_eq!(
        server.command("SET test:d:junk hello").as_deref(),
        Some("+OK\r\n")
    );
    assert_eq!(
        server.command("RPUSH test:d:list x").as_deref(),
        Some(":1\r\n")
    );
    let value = a
        .try_get_or_load("junk".to_owned(), || async {
            Ok::<_, String>("loaded".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(value, "loaded");
    assert_eq!(a.stats().l2_corrupt, 1);
    let value = a
        .try_get_or_load("list".to_owned(), || async {
            Ok::<_, String>("loaded".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(value, "loaded", "a WRONGTYPE reply is a miss, not an error");
    assert!(a.stats().l2_errors >= 1);
    // An error reply shows Redis is up: it does not open the breaker
    // (5 failures by default), however often it comes.
    for _ in 0..10 {
        a.l1().remove("list");
        assert_eq!(a.get(&"list".to_owned()).await, None);
    }
    let stats = a.stats();
    assert!(
        stats.l2_errors >= 10 && !stats.breaker_open && stats.breaker_opened == 0,
        "{stats:?}"
    );
    // A record for another key, copied under this one, is refused too.
    a.insert("real".to_owned(), "v".to_owned()).await.unwrap();
    let moved = server.command("COPY test:d:real test:d:copy");
    assert_eq!(moved.as_deref(), Some(":1\r\n"));
    assert_eq!(a.get(&"copy".to_owned()).await, None);
    assert_eq!(a.stats().l2_corrupt, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_expire_in_redis_and_promotions_keep_the_remaining_ttl() {
    let server = server!();
    let short = TieredCache::builder(l1(), tier(&server.url()).await)
        .l2_ttl(Some(Duration::from_millis(1500)))
        .build()
        .unwrap();
    short
        .insert("ttl".to_owned(), "v".to_owned())
        .await
        .unwrap();
    let pttl: i64 = server
        .command("PTTL test:d:ttl")
        .unwrap()
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap();
    assert!(pttl > 0 && pttl <= 1500, "server-side TTL set: {pttl}");
    let other = instance(&server.url()).await;
    assert_eq!(other.get(&"ttl".to_owned()).await.as_deref(), Some("v"));
    // L1's TTL is 300 s, but the promoted copy ends with the record.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(
        other.l1().get("ttl"),
        None,
        "promoted with the record's remaining TTL"
    );
    assert_eq!(other.get(&"ttl".to_owned()).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_reads_the_misses_in_one_call() {
    let server = server!();
    let a = instance(&server.url()).await;
    for i in 0..100 {
        a.insert(format!("k{i}"), format!("v{i}")).await.unwrap();
    }
    let b = instance(&server.url()).await;
    assert!(b.get(&"k0".to_owned()).await.is_some());
    let mut keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    keys.push("absent".to_owned());
    let values = b.get_many(&keys).await;
    assert_eq!(values.len(), 101);
    for (i, value) in values.iter().take(100).enumerate() {
        assert_eq!(value.as_deref(), Some(format!("v{i}").as_str()));
    }
    assert_eq!(values[100], None);
    let stats = b.stats();
    assert_eq!((stats.l1_hits, stats.l2_hits, stats.l2_misses), (1, 100, 1));
    assert_eq!(b.l1().len(), 100, "every hit promoted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_behind_returns_first_and_writes_soon_after() {
    let server = server!();
    let l1: Cache<String, String> = Cache::builder()
        .max_capacity(1000)
        .spawner(|task| {
            tokio::spawn(task);
        })
        .build()
        .unwrap();
    let a = TieredCache::builder(l1, tier(&server.url()).await)
        .write_mode(WriteMode::Behind { max_pending: 64 })
        .build()
        .unwrap();
    a.insert("wb".to_owned(), "v".to_owned()).await.unwrap();
    assert!(a.l1().contains_key("wb"));
    let written = eventually(Duration::from_secs(2), || {
        server.command("EXISTS test:d:wb").as_deref() == Some(":1\r\n")
    })
    .await;
    assert!(written.is_some());
    assert!(
        eventually(Duration::from_secs(1), || a.stats().l2_writes == 1)
            .await
            .is_some()
    );

    let no_spawner = TieredCache::builder(support::l1(), tier(&server.url()).await)
        .write_mode(WriteMode::Behind { max_pending: 1 })
        .build();
    assert!(no_spawner.is_err(), "write-behind needs a spawner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_after_n_hits_keeps_cold_keys_out_of_l1() {
    let server = server!();
    let a = instance(&server.url()).await;
    a.insert("cold".to_owned(), "v".to_owned()).await.unwrap();
    let b = TieredCache::builder(l1(), tier(&server.url()).await)
        .promotion(Promotion::AfterHits(3))
        .build()
        .unwrap();
    for hit in 1..=3 {
        assert_eq!(b.get(&"cold".to_owned()).await.as_deref(), Some("v"));
        assert_eq!(b.l1().contains_key("cold"), hit == 3, "after L2 hit {hit}");
    }
    assert_eq!(b.stats().l2_hits, 3);
    assert_eq!(b.stats().promotions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_redis_read_and_one_load() {
    let server = server!();
    let a = instance(&server.url()).await;
    let loads = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let a = a.clone();
        let loads = Arc::clone(&loads);
        tasks.push(tokio::spawn(async move {
            a.try_get_or_load("hot".to_owned(), || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, String>("v".to_owned())
            })
            .await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "v");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let stats = a.stats();
    assert_eq!(stats.l2_misses, 1, "one Redis read for 16 callers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_typed_errors() {
    let bad_url = strata_redis::RedisTier::builder("not a url")
        .connect()
        .await;
    assert!(
        matches!(bad_url, Err(strata_redis::Error::Address { .. })),
        "{bad_url:?}"
    );
    let bad_ns = strata_redis::RedisTier::builder("redis://127.0.0.1:1")
        .namespace("a:b")
        .connect()
        .await;
    assert!(matches!(bad_ns, Err(strata_redis::Error::Namespace(_))));
    let started = std::time::Instant::now();
    let nobody = strata_redis::RedisTier::builder("redis://127.0.0.1:1")
        .connect_timeout(Duration::from_millis(200))
        .connect()
        .await;
    assert!(
        matches!(
            nobody,
            Err(strata_redis::Error::Connect(_) | strata_redis::Error::ConnectTimeout(_))
        ),
        "{nobody:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_entry_is_served_while_one_background_reload_refreshes_both_tiers() {
    let server = server!();
    let swr: Cache<String, String> = Cache::builder()
        .max_capacity(1000)
        .time_to_live(Duration::from_secs(2))
        .stale_while_revalidate(Duration::from_secs(30))
        .spawner(|task| {
            tokio::spawn(task);
        })
        .build()
        .unwrap();
    let a = TieredCache::builder(swr, tier(&server.url()).await)
        .l2_ttl(Some(Duration::from_secs(60)))
        .build()
        .unwrap();
    let first = a
        .load("swr".to_owned(), || async {
            Ok::<_, String>("v1".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(
        (first.value.as_str(), first.freshness),
        ("v1", strata::Freshness::Loaded)
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let reloads = Arc::new(AtomicUsize::new(0));
    // A slow source that counts its loads.
    let reload = || {
        let reloads = Arc::clone(&reloads);
        || async move {
            reloads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, String>("v2".to_owned())
        }
    };
    let started = std::time::Instant::now();
    let stale = a.load("swr".to_owned(), reload()).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "answered without waiting"
    );
    assert_eq!(
        (stale.value.as_str(), stale.freshness),
        ("v1", strata::Freshness::Stale)
    );
    // A second stale read while the reload runs starts no other reload.
    // (Either read's reload may be the one that leads, as the two
    // background tasks race to start, so both load the same value.)
    let again = a.load("swr".to_owned(), reload()).await.unwrap();
    assert_eq!(again.freshness, strata::Freshness::Stale);

    let refreshed = eventually(Duration::from_secs(2), || {
        a.l1().get("swr").as_deref() == Some("v2")
    })
    .await;
    assert!(refreshed.is_some(), "the background reload stored v2 in L1");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        reloads.load(Ordering::SeqCst),
        1,
        "one reload for two stale reads"
    );
    let b = instance(&server.url()).await;
    assert_eq!(
        b.get(&"swr".to_owned()).await.as_deref(),
        Some("v2"),
        "and wrote it to Redis"
    );
}
