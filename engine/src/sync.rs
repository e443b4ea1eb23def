//! The one door through which the engine reaches locks, atomics and `Arc`.
//!
//! Normally these are `parking_lot` locks and `std` atomics. Under
//! `--cfg strata_loom` they are loom's model-checked twins, so the loom tests
//! in `loom-tests/` explore the engine's real code rather than a copy of it.
//! Both sides offer one API: `read()`/`write()` return guards (no poisoning),
//! `try_write()` returns an `Option`.
//!
//! `.ci/loom-check.sh` keeps the rest of the crate from naming the
//! underlying types directly.

#[cfg(not(strata_loom))]
mod imp {
    pub(crate) use std::sync::atomic::{
        AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
    pub(crate) use std::sync::Arc;

    /// A mutex (parking_lot: no poisoning).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(parking_lot::Mutex::new(value))
        }

        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    /// A reader-writer lock (parking_lot: fair enough, no poisoning, small).
    #[derive(Debug, Default)]
    pub(crate) struct RwLock<T>(parking_lot::RwLock<T>);

    pub(crate) type ReadGuard<'a, T> = parking_lot::RwLockReadGuard<'a, T>;
    pub(crate) type WriteGuard<'a, T> = parking_lot::RwLockWriteGuard<'a, T>;

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(parking_lot::RwLock::new(value))
        }

        #[inline]
        pub(crate) fn read(&self) -> ReadGuard<'_, T> {
            self.0.read()
        }

        #[inline]
        pub(crate) fn write(&self) -> WriteGuard<'_, T> {
            self.0.write()
        }

        #[inline]
        pub(crate) fn try_write(&self) -> Option<WriteGuard<'_, T>> {
            self.0.try_write()
        }
    }

    /// This thread's number, for striping counters: the smallest number no
    /// live thread holds, taken on the thread's first call and given back
    /// when it exits (so short-lived threads do not use numbers up).
    /// `usize::MAX` while the thread is being torn down.
    #[inline]
    pub(crate) fn thread_number() -> usize {
        let number = NUMBER.with(std::cell::Cell::get);
        if number != usize::MAX {
            return number;
        }
        assign_thread_number()
    }

    thread_local! {
        // The fast path: a plain thread-local without a destructor, so it
        // stays readable while the thread is torn down.
        static NUMBER: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }

    #[cold]
    fn assign_thread_number() -> usize {
        use std::sync::atomic::AtomicUsize;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        static FREE: parking_lot::Mutex<Vec<usize>> = parking_lot::const_mutex(Vec::new());

        /// Gives the number back when the thread exits.
        struct Lease(usize);
        impl Drop for Lease {
            fn drop(&mut self) {
                // Later calls on this thread go to the shared path.
                NUMBER.with(|n| n.set(usize::MAX));
                let mut free = FREE.lock();
                free.push(self.0);
                // Lowest last, so `pop` hands out the smallest and numbers
                // stay dense.
                free.sort_unstable_by(|a, b| b.cmp(a));
            }
        }
        thread_local! {
            static LEASE: std::cell::Cell<Option<Lease>> = const { std::cell::Cell::new(None) };
        }
        let number = FREE
            .lock()
            .pop()
            .unwrap_or_else(|| NEXT.fetch_add(1, Ordering::Relaxed));
        // If the thread is already being torn down, keep to the shared path.
        if LEASE
            .try_with(|lease| lease.set(Some(Lease(number))))
            .is_err()
        {
            FREE.lock().push(number);
            return usize::MAX;
        }
        NUMBER.with(|cell| cell.set(number));
        number
    }
}

#[cfg(strata_loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{
        AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
    pub(crate) use loom::sync::Arc;

    /// loom's model-checked mutex behind the same API.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            match self.0.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            }
        }
    }

    /// loom's model-checked reader-writer lock behind the same API.
    #[derive(Debug)]
    pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

    pub(crate) type ReadGuard<'a, T> = loom::sync::RwLockReadGuard<'a, T>;
    pub(crate) type WriteGuard<'a, T> = loom::sync::RwLockWriteGuard<'a, T>;

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::RwLock::new(value))
        }

        pub(crate) fn read(&self) -> ReadGuard<'_, T> {
            match self.0.read() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            }
        }

        pub(crate) fn write(&self) -> WriteGuard<'_, T> {
            match self.0.write() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            }
        }

        pub(crate) fn try_write(&self) -> Option<WriteGuard<'_, T>> {
            match self.0.try_write() {
                Ok(guard) => Some(guard),
                Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }
    }

    /// Under loom no thread owns a counter stripe: the models then check
    /// the shared, atomic path under contention.
    pub(crate) fn thread_number() -> usize {
        usize::MAX
    }
}

pub(crate) use imp::*;

/// `std`'s `Arc`, also under loom: for data that crosses no thread
/// boundary the models check (a shared load error handed to users, tag
/// strings read only under a shard lock).
pub(crate) type PublicArc<T> = std::sync::Arc<T>;
