//! Single-flight loading: concurrent misses, a cancelled leader, errors,
//! and a write racing a load.
#![cfg(strata_loom)]
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use loom::future::block_on;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use strata::{LoadError, ManualClock};
use strata_loom::{model, small_cache};

/// Invariant: three callers missing one key get the same value and the
/// loader runs once. (This model found callers that missed just before
/// the first load stored its value and then loaded again.)
#[test]
fn three_misses_one_load() {
    model(|| {
        let cache = small_cache(8, &ManualClock::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let caller = |cache: strata::Cache<u64, u64, strata_loom::Hasher>,
                      calls: Arc<AtomicUsize>| {
            block_on(cache.get_or_load(7, || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                70
            }))
        };
        let others: Vec<_> = (0..2)
            .map(|_| {
                let (cache, calls) = (cache.clone(), Arc::clone(&calls));
                thread::spawn(move || caller(cache, calls))
            })
            .collect();
        assert_eq!(caller(cache.clone(), Arc::clone(&calls)), 70);
        for other in others {
            assert_eq!(other.join().unwrap(), 70);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one load for three misses");
    });
}

/// A future that is never ready (a loader still running).
struct Forever;

impl Future for Forever {
    type Output = u64;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u64> {
        Poll::Pending
    }
}

/// Invariant: when the leading caller is dropped mid-load, a caller
/// waiting on it (or arriving after) does not hang: it loads itself.
#[test]
fn a_cancelled_leader_hands_over() {
    model(|| {
        let cache = small_cache(8, &ManualClock::new());
        let mut leader = Box::pin(cache.get_or_load(7, || Forever));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(leader.as_mut().poll(&mut cx).is_pending());
        let waiter = {
            let cache = cache.clone();
            thread::spawn(move || block_on(cache.get_or_load(7, || async { 71 })))
        };
        drop(leader);
        assert_eq!(waiter.join().unwrap(), 71);
    });
}

/// Invariant: a failed load reaches its waiter as the same shared error,
/// and is not cached.
#[test]
fn a_load_error_is_shared() {
    model(|| {
        let cache = small_cache(8, &ManualClock::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let load = |cache: strata::Cache<u64, u64, strata_loom::Hasher>,
                    calls: Arc<AtomicUsize>| {
            block_on(cache.try_get_or_load(7, || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<u64, _>("down")
            }))
        };
        let other = {
            let (cache, calls) = (cache.clone(), Arc::clone(&calls));
            thread::spawn(move || load(cache, calls))
        };
        let mine = load(cache.clone(), Arc::clone(&calls));
        let theirs = other.join().unwrap();
        let (Err(LoadError::Failed(a)), Err(LoadError::Failed(b))) = (&mine, &theirs) else {
            panic!("both fail: {mine:?} {theirs:?}");
        };
        assert_eq!((**a, **b), ("down", "down"));
        // One load shared by both, or two loads one after the other.
        let calls = calls.load(Ordering::SeqCst);
        assert!(calls == 2 || std::sync::Arc::ptr_eq(a, b), "calls {calls}");
        assert!(!cache.contains_key(&7), "errors are not cached");
    });
}

/// Invariant: a load never stores a value older than a write of its key
/// that happened while it ran. Whatever the interleaving, the write's
/// value is what stays: either the loader never ran (the write came
/// first and the load found it), or its result was discarded.
#[test]
fn a_load_never_overwrites_a_newer_write() {
    model(|| {
        let cache = small_cache(8, &ManualClock::new());
        let loader = {
            let cache = cache.clone();
            thread::spawn(move || block_on(cache.get_or_load(7, || async { 1 })))
        };
        cache.insert(7, 2).unwrap();
        let loaded = loader.join().unwrap();
        assert!(loaded == 1 || loaded == 2);
        assert_eq!(cache.get(&7), Some(2), "the newer write stays");
    });
}
