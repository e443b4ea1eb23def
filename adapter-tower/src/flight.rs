//! Coalescing of concurrent misses: the first request for a missing
//! resource goes upstream (the leader); requests for it that arrive
//! meanwhile wait until the leader's response is stored (or turns out not
//! to be storable) and are then answered from the store. No runtime is
//! needed: waiters are woken through their `Waker`s.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// The flights in progress, by primary key.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Arc<Flight>>>,
}

#[derive(Debug, Default)]
pub(crate) struct Flight {
    done: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

/// What [`Flights::join`] found.
pub(crate) enum Joined {
    /// No flight: this request leads; drop the guard when the response is
    /// stored or known not to be.
    Lead(Guard),
    /// Another request is fetching this resource: wait for it.
    Wait(Arc<Flight>),
}

impl Flights {
    pub(crate) fn join(self: &Arc<Self>, key: &str) -> Joined {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = map.get(key) {
            return Joined::Wait(Arc::clone(flight));
        }
        let flight = Arc::new(Flight::default());
        map.insert(key.to_owned(), Arc::clone(&flight));
        Joined::Lead(Guard {
            flights: Arc::clone(self),
            key: key.to_owned(),
            flight,
        })
    }
}

/// Held by the leader; dropping it ends the flight and wakes the waiters.
pub(crate) struct Guard {
    flights: Arc<Flights>,
    key: String,
    flight: Arc<Flight>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").field("key", &self.key).finish()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        {
            let mut map = self
                .flights
                .map
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if map
                .get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                map.remove(&self.key);
            }
        }
        self.flight.done.store(true, Ordering::Release);
        let wakers = std::mem::take(
            &mut *self
                .flight
                .wakers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Future for Wait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let flight = &self.0;
        if flight.done.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        let mut wakers = flight.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked again under the lock the leader takes to wake.
        if flight.done.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Resolves when the flight ends.
pub(crate) struct Wait(pub(crate) Arc<Flight>);
