//! The Redis tier against a real 3-master Redis Cluster: keys over every
//! slot range, multi-key reads and tags across slots, invalidation from
//! every master, and a master killed under load.

#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use strata::tiered::TieredCache;
use strata_redis::RedisTier;
use support::{eventually, l1, never, Instance, RedisCluster, INVALIDATION_BOUND};

async fn cluster_instance(cluster: &RedisCluster) -> Instance {
    let tier = RedisTier::cluster_builder(cluster.urls())
        .namespace("test")
        .timeout(Duration::from_millis(200))
        .tracking_check_interval(Duration::from_millis(200))
        .connect()
        .await
        .expect("the cluster tier connects");
    TieredCache::builder(l1(), tier)
        .breaker(1_000, Duration::from_millis(100))
        .build()
        .expect("a tiered cache")
}

/// Which node serves `redis_key`: the one that does not answer MOVED.
fn owner(cluster: &RedisCluster, redis_key: &str) -> usize {
    cluster
        .nodes
        .iter()
        .position(|node| {
            node.command(&format!("EXISTS {redis_key}"))
                .is_some_and(|reply| reply.starts_with(':'))
        })
        .expect("some node owns the slot")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tier_works_across_slots_and_masters() {
    let Some(cluster) = RedisCluster::start(3) else {
        return;
    };
    let a = cluster_instance(&cluster).await;
    let b = cluster_instance(&cluster).await;
    let keys: Vec<String> = (0..60).map(|i| format!("user:{i}")).collect();
    for key in &keys {
        a.insert_with_tags(key.clone(), format!("v-{key}"), &["all-users"])
            .await
            .unwrap();
    }
    let owners: std::collections::HashSet<usize> = keys
        .iter()
        .map(|k| owner(&cluster, &format!("test:d:{k}")))
        .collect();
    assert_eq!(owners.len(), 3, "the keys spread over all three masters");

    // One multi-key read over every slot.
    let values = b.get_many(&keys).await;
    for (key, value) in keys.iter().zip(&values) {
        assert_eq!(value.as_deref(), Some(format!("v-{key}").as_str()));
    }
    assert_eq!(b.stats().l2_hits, 60);
    assert_eq!(b.l1().len(), 60);

    // Updates on every master reach b's L1.
    for key in keys.iter().take(9) {
        a.insert(key.clone(), "updated".to_owned()).await.unwrap();
    }
    let gone = eventually(INVALIDATION_BOUND, || {
        keys.iter().take(9).all(|k| !b.l1().contains_key(k))
    })
    .await;
    assert!(gone.is_some(), "tracking is on for every master");
    assert_eq!(b.get(&keys[0]).await.as_deref(), Some("updated"));

    // A prefix over every master.
    a.insert("other:1".to_owned(), "o".to_owned())
        .await
        .unwrap();
    let prefixed: Vec<String> = (0..30).map(|i| format!("temp:{i}")).collect();
    for key in &prefixed {
        a.insert(key.clone(), "t".to_owned()).await.unwrap();
    }
    let owners: std::collections::HashSet<usize> = prefixed
        .iter()
        .map(|k| owner(&cluster, &format!("test:d:{k}")))
        .collect();
    assert_eq!(owners.len(), 3);
    {
        use strata::tiered::SecondTier;
        assert_eq!(a.tier().invalidate_prefix(b"temp:").await.unwrap(), 30);
    }
    assert_eq!(b.get_many(&prefixed).await.iter().flatten().count(), 0);
    assert_eq!(b.get(&"other:1".to_owned()).await.as_deref(), Some("o"));

    // A tag spanning every slot.
    assert_eq!(a.invalidate_tag("all-users").await.unwrap(), 60);
    let gone = eventually(INVALIDATION_BOUND, || {
        keys.iter().all(|k| !b.l1().contains_key(k))
    })
    .await;
    assert!(gone.is_some(), "{} keys left in b's L1", b.l1().len());
    assert_eq!(b.get_many(&keys).await.iter().flatten().count(), 0);
    assert_eq!(
        b.try_get_or_load("user:1".to_owned(), || async {
            Ok::<_, String>("db".to_owned())
        })
        .await
        .unwrap(),
        "db"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_costs_misses_on_its_slots_only() {
    let Some(mut cluster) = RedisCluster::start(3) else {
        return;
    };
    let a = cluster_instance(&cluster).await;
    let keys: Vec<String> = (0..60).map(|i| format!("k{i}")).collect();
    for key in &keys {
        a.insert(key.clone(), "v".to_owned()).await.unwrap();
    }
    let victim = owner(&cluster, &format!("test:d:{}", keys[0]));
    let on_victim: Vec<&String> = keys
        .iter()
        .filter(|k| owner(&cluster, &format!("test:d:{k}")) == victim)
        .collect();
    let elsewhere: Vec<&String> = keys
        .iter()
        .filter(|k| owner(&cluster, &format!("test:d:{k}")) != victim)
        .collect();
    cluster.nodes[victim].kill();
    // The lost connection clears L1; reads go to the cluster.
    assert!(eventually(Duration::from_secs(3), || a.l1().is_empty())
        .await
        .is_some());

    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut from_db = 0;
    for key in &keys {
        let call = Instant::now();
        let value = a
            .try_get_or_load((*key).clone(), || async {
                Ok::<_, String>("db".to_owned())
            })
            .await
            .unwrap();
        worst = worst.max(call.elapsed());
        if value == "db" {
            from_db += 1;
        }
    }
    eprintln!(
        "cluster/kill: {} keys on the dead master, {} elsewhere; {from_db} loaded from the db; \
         {:?} for 60 reads, worst {worst:?}",
        on_victim.len(),
        elsewhere.len(),
        started.elapsed()
    );
    assert!(
        from_db >= on_victim.len(),
        "keys on the dead master are misses"
    );
    assert!(
        from_db < keys.len(),
        "keys on live masters are still L2 hits"
    );
    // One tier timeout (200 ms) per call at most, with some slack for a
    // shared 2-core machine.
    assert!(
        worst < Duration::from_millis(350),
        "a call took {worst:?}: more than one tier timeout"
    );
    // Nothing from the dead node is wrong, only missing.
    for key in &elsewhere {
        let value = a.try_get_or_load((*key).clone(), never).await;
        assert!(value.is_ok(), "{key} should be cached by now");
    }
}
