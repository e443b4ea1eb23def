//! Freshness windows: stale-while-revalidate and refresh-before, with a
//! spawner that holds background reloads until the test runs them.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata::{BackgroundTask, Cache, ConfigError, Freshness, ManualClock};
use support::block_on;

/// Background reloads, parked until `run_all`.
#[derive(Clone, Default)]
struct Parked(Arc<Mutex<Vec<BackgroundTask>>>);

impl Parked {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn run_all(&self) {
        let tasks: Vec<BackgroundTask> = self.0.lock().unwrap().drain(..).collect();
        for task in tasks {
            block_on(task);
        }
    }
}

fn cache(
    clock: &ManualClock,
    parked: &Parked,
    swr: Option<u64>,
    refresh: Option<u64>,
) -> Cache<u32, u32> {
    let sink = parked.clone();
    let mut builder = Cache::builder()
        .max_capacity(100)
        .time_to_live(Duration::from_secs(10))
        .clock(clock.clone())
        .spawner(move |task| sink.0.lock().unwrap().push(task));
    if let Some(swr) = swr {
        builder = builder.stale_while_revalidate(Duration::from_secs(swr));
    }
    if let Some(refresh) = refresh {
        builder = builder.refresh_before(Duration::from_secs(refresh));
    }
    builder.build().unwrap()
}

fn load(cache: &Cache<u32, u32>, key: u32, value: u32) -> (u32, Freshness) {
    let loaded = block_on(cache.load(key, move || async move { Ok::<_, String>(value) })).unwrap();
    (loaded.value, loaded.freshness)
}

#[test]
fn stale_is_served_within_its_window_with_one_reload() {
    let (clock, parked) = (ManualClock::new(), Parked::default());
    let cache = cache(&clock, &parked, Some(5), None);
    assert_eq!(load(&cache, 1, 10), (10, Freshness::Loaded));
    clock.advance(Duration::from_secs(9));
    assert_eq!(load(&cache, 1, 99), (10, Freshness::Fresh));
    assert_eq!(parked.count(), 0, "no reload while fresh");

    clock.advance(Duration::from_secs(2)); // t = 11: stale
    assert_eq!(cache.get(&1), None, "plain reads never see stale values");
    assert!(!cache.contains_key(&1));
    assert_eq!(load(&cache, 1, 11), (10, Freshness::Stale));
    assert_eq!(load(&cache, 1, 12), (10, Freshness::Stale));
    assert_eq!(parked.count(), 1, "exactly one reload for the stale entry");

    parked.run_all();
    assert_eq!(load(&cache, 1, 99), (11, Freshness::Fresh));
    assert_eq!(cache.get(&1), Some(11));

    // The reload at t = 11 is fresh until 21 and stale until 26.
    clock.advance(Duration::from_secs(14)); // t = 25
    assert_eq!(load(&cache, 1, 13), (11, Freshness::Stale));
    parked.run_all();
    assert_eq!(load(&cache, 1, 99), (13, Freshness::Fresh));
    // Past the stale window a load loads in the foreground: the reload at
    // t = 25 was fresh to 35 and stale to 40.
    clock.advance(Duration::from_secs(16)); // t = 41
    assert_eq!(load(&cache, 1, 14), (14, Freshness::Loaded));
    assert_eq!(parked.count(), 0);
}

#[test]
fn refresh_before_renews_a_fresh_entry_once() {
    let (clock, parked) = (ManualClock::new(), Parked::default());
    let cache = cache(&clock, &parked, None, Some(3));
    assert_eq!(load(&cache, 1, 1), (1, Freshness::Loaded));
    clock.advance(Duration::from_secs(6));
    assert_eq!(load(&cache, 1, 2), (1, Freshness::Fresh));
    assert_eq!(parked.count(), 0, "not yet in the last 3 s");
    clock.advance(Duration::from_secs(2)); // t = 8
    assert_eq!(load(&cache, 1, 2), (1, Freshness::Fresh));
    assert_eq!(load(&cache, 1, 3), (1, Freshness::Fresh));
    assert_eq!(parked.count(), 1);
    parked.run_all();
    clock.advance(Duration::from_secs(5)); // t = 13: the reload at 8 lives to 18
    assert_eq!(load(&cache, 1, 4), (2, Freshness::Fresh));
    assert_eq!(parked.count(), 0);
}

#[test]
fn a_remove_during_a_background_reload_wins() {
    let (clock, parked) = (ManualClock::new(), Parked::default());
    let cache = cache(&clock, &parked, Some(5), None);
    load(&cache, 1, 10);
    clock.advance(Duration::from_secs(12));
    assert_eq!(load(&cache, 1, 11), (10, Freshness::Stale));
    cache.remove(&1);
    parked.run_all();
    assert_eq!(cache.get(&1), None, "the reload began before the remove");
}

/// Without the `tokio` feature nothing runs reloads by default.
#[cfg(not(feature = "tokio"))]
#[test]
fn windows_need_a_way_to_run_reloads() {
    let built = Cache::<u32, u32>::builder()
        .max_capacity(10)
        .stale_while_revalidate(Duration::from_secs(1))
        .build();
    assert_eq!(built.unwrap_err(), ConfigError::NoSpawner);
}

#[test]
fn zero_windows_are_refused() {
    let built = Cache::<u32, u32>::builder()
        .max_capacity(10)
        .refresh_before(Duration::ZERO)
        .spawner(|_task| {})
        .build();
    assert!(matches!(built, Err(ConfigError::ZeroDuration { .. })));
}

/// With the `tokio` feature, no spawner is needed: reloads go to
/// `tokio::spawn`.
#[cfg(feature = "tokio")]
#[test]
fn the_tokio_feature_supplies_a_spawner() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(10)
        .time_to_live(Duration::from_secs(10))
        .stale_while_revalidate(Duration::from_secs(5))
        .clock(clock.clone())
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        cache
            .load(1, || async { Ok::<_, String>(1) })
            .await
            .unwrap();
        clock.advance(Duration::from_secs(11));
        let stale = cache
            .load(1, || async { Ok::<_, String>(2) })
            .await
            .unwrap();
        assert_eq!((stale.value, stale.freshness), (1, Freshness::Stale));
        // Let the spawned reload run.
        for _ in 0..100 {
            tokio::task::yield_now().await;
            if cache.get(&1) == Some(2) {
                return;
            }
        }
        panic!("the background reload did not run");
    });
}
