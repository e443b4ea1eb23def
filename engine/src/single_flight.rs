//! Coalescing concurrent loads of one key into one (single flight).
//!
//! The first caller to miss a key registers a *flight* for it and runs its
//! loader (the leader); callers that miss the same key meanwhile find the
//! flight and wait for its outcome. The map of flights is sharded like the
//! cache; each flight is type-erased there (`dyn Any`) because the error
//! type is chosen per call, and carries an `invalidated` flag that writes of
//! the same key set, so that a load which started before a `remove` or a
//! newer `insert` never stores its older result (the check and the store
//! happen under the shard's write lock; see `Cache::insert_inner`).
//!
//! ```text
//!   caller ──get── miss ──► flights[key]?
//!        none: register Flight, run loader ──► store unless invalidated ──► Done, wake
//!        some: wait ──► Done(result)  → return it
//!                   └─► Abandoned (leader dropped) → try again; maybe lead
//! ```

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crossbeam_utils::CachePadded;
use hashbrown::HashTable;

use crate::load::LoadError;
use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering};

/// One load in progress (or just finished), as the map holds it.
pub(crate) struct Flight {
    /// Set by a write of the key while the load runs: do not store.
    pub(crate) invalidated: AtomicBool,
    typed: Box<dyn Any + Send + Sync>,
}

/// The typed part of a flight.
struct Outcome<V, E> {
    phase: Mutex<Phase<V, E>>,
}

enum Phase<V, E> {
    Running(Vec<Waker>),
    Done(Result<V, LoadError<E>>),
    /// The leader was dropped before it finished.
    Abandoned,
}

/// What [`Flights::join_or_lead`] found.
pub(crate) enum Joined {
    /// No flight: the caller registered this one and must run the load.
    Lead(Arc<Flight>),
    /// A flight of the same types is running: wait for it.
    Wait(Arc<Flight>),
    /// A flight with another error type is running: load without
    /// coalescing.
    Foreign,
}

type FlightShard<K> = CachePadded<Mutex<HashTable<(K, Arc<Flight>)>>>;

pub(crate) struct Flights<K> {
    shards: Box<[FlightShard<K>]>,
    active: AtomicUsize,
}

impl<K> Flights<K> {
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1))
                .map(|_| CachePadded::new(Mutex::new(HashTable::new())))
                .collect(),
            active: AtomicUsize::new(0),
        }
    }

    fn shard(&self, hash: u64) -> &Mutex<HashTable<(K, Arc<Flight>)>> {
        &self.shards[(hash >> 32) as usize & (self.shards.len() - 1)]
    }

    /// Marks the flight of `key`, if any (other than `except`), invalidated.
    /// Callers hold the key's cache-shard write lock.
    pub(crate) fn invalidate<Q>(&self, hash: u64, key: &Q, except: Option<&Arc<Flight>>)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if self.active.load(Ordering::SeqCst) == 0 {
            return;
        }
        let shard = self.shard(hash).lock();
        if let Some((_, flight)) = shard.find(hash, |(k, _)| k.borrow() == key) {
            if !except.is_some_and(|own| Arc::ptr_eq(own, flight)) {
                flight.invalidated.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Marks every running flight invalidated (for `clear`).
    pub(crate) fn invalidate_all(&self) {
        if self.active.load(Ordering::SeqCst) == 0 {
            return;
        }
        for shard in self.shards.iter() {
            for (_, flight) in shard.lock().iter() {
                flight.invalidated.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Joins the flight of `key` or registers a new one.
    pub(crate) fn join_or_lead<V, E>(
        &self,
        hash: u64,
        key: &K,
        rehash: impl Fn(&K) -> u64,
    ) -> Joined
    where
        K: Eq + Clone,
        V: Send + 'static,
        E: Send + Sync + 'static,
    {
        let mut shard = self.shard(hash).lock();
        if let Some((_, flight)) = shard.find(hash, |(k, _)| k == key) {
            return if flight.typed.is::<Outcome<V, E>>() {
                Joined::Wait(Arc::clone(flight))
            } else {
                Joined::Foreign
            };
        }
        let flight = Arc::new(Flight {
            invalidated: AtomicBool::new(false),
            typed: Box::new(Outcome::<V, E> {
                phase: Mutex::new(Phase::Running(Vec::new())),
            }),
        });
        shard.insert_unique(hash, (key.clone(), Arc::clone(&flight)), |(k, _)| rehash(k));
        self.active.fetch_add(1, Ordering::SeqCst);
        Joined::Lead(flight)
    }

    /// Takes `flight` out of the map (if it is still the key's flight).
    fn retire(&self, hash: u64, key: &K, flight: &Arc<Flight>)
    where
        K: Eq,
    {
        let mut shard = self.shard(hash).lock();
        if let Ok(entry) = shard.find_entry(hash, |(k, f)| k == key && Arc::ptr_eq(f, flight)) {
            entry.remove();
            self.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn outcome<V: 'static, E: 'static>(flight: &Flight) -> Option<&Outcome<V, E>> {
    flight.typed.downcast_ref::<Outcome<V, E>>()
}

/// Waits for a flight's outcome: `Some(result)`, or `None` if its leader
/// was dropped (the caller should try again and may become the leader).
pub(crate) fn wait<V, E>(
    flight: Arc<Flight>,
) -> impl Future<Output = Option<Result<V, LoadError<E>>>>
where
    V: Clone + 'static,
    E: 'static,
{
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        let Some(outcome) = outcome::<V, E>(&flight) else {
            return Poll::Ready(None);
        };
        let mut phase = outcome.phase.lock();
        match &mut *phase {
            Phase::Done(result) => Poll::Ready(Some(result.clone())),
            Phase::Abandoned => Poll::Ready(None),
            Phase::Running(wakers) => {
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    })
}

/// The leader's side of a flight: completes it, or abandons it if dropped
/// first (the leader's task was cancelled or its loader panicked), so that
/// no waiter hangs.
pub(crate) struct Lead<'a, K: Eq, V: 'static, E: 'static> {
    flights: &'a Flights<K>,
    hash: u64,
    key: &'a K,
    pub(crate) flight: Arc<Flight>,
    finished: bool,
    _types: std::marker::PhantomData<fn() -> (V, E)>,
}

impl<'a, K: Eq, V: 'static, E: 'static> Lead<'a, K, V, E> {
    pub(crate) fn new(flights: &'a Flights<K>, hash: u64, key: &'a K, flight: Arc<Flight>) -> Self {
        Self {
            flights,
            hash,
            key,
            flight,
            finished: false,
            _types: std::marker::PhantomData,
        }
    }

    /// Publishes the result to every waiter.
    pub(crate) fn complete(mut self, result: Result<V, LoadError<E>>) {
        self.finish(Phase::Done(result));
    }

    fn finish(&mut self, end: Phase<V, E>) {
        self.finished = true;
        // Out of the map first, so that a woken waiter that tries again
        // never finds this flight.
        self.flights.retire(self.hash, self.key, &self.flight);
        if let Some(outcome) = outcome::<V, E>(&self.flight) {
            let previous = std::mem::replace(&mut *outcome.phase.lock(), end);
            if let Phase::Running(wakers) = previous {
                wakers.into_iter().for_each(Waker::wake);
            }
        }
    }
}

impl<K: Eq, V: 'static, E: 'static> Drop for Lead<'_, K, V, E> {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(Phase::Abandoned);
        }
    }
}

/// Runs `future`, turning a panic inside it into `Err(payload)`.
pub(crate) fn catch_unwind<F: Future>(
    future: F,
) -> impl Future<Output = std::thread::Result<F::Output>> {
    let mut future = Box::pin(future);
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Pin::as_mut(&mut future).poll(cx)
        })) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
}

impl<K> std::fmt::Debug for Flights<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field("active", &self.active.load(Ordering::Relaxed))
            .finish()
    }
}
