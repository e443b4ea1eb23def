//! Loading through the cache: `get_or_load` and `try_get_or_load`.
//!
//! These are plain `async fn`s on [`Cache`]: the engine polls the loader's
//! future inside the caller's future and needs no runtime of its own, so
//! they work on tokio, async-std, smol or a hand-rolled executor alike.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::panic::resume_unwind;

use crate::cache::{Cache, Negative};
use crate::shard::Lookup;
use crate::single_flight::{catch_unwind, wait, Joined, Lead};
use crate::sync::{Ordering, PublicArc as Arc};

/// Why [`Cache::try_get_or_load`] returned no value.
#[non_exhaustive]
pub enum LoadError<E> {
    /// The loader returned this error. Every caller that waited on the same
    /// load gets the same `Arc`. Errors are not cached (the next call loads
    /// again) unless [`negative_ttl`](crate::CacheBuilder::negative_ttl) is
    /// set.
    Failed(Arc<E>),
    /// The loader panicked in another caller's task (that caller sees the
    /// panic itself).
    Panicked,
}

impl<E> Clone for LoadError<E> {
    fn clone(&self) -> Self {
        match self {
            Self::Failed(error) => Self::Failed(Arc::clone(error)),
            Self::Panicked => Self::Panicked,
        }
    }
}

/// Equal errors, compared by value (not by `Arc` identity).
impl<E: PartialEq> PartialEq for LoadError<E> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Failed(a), Self::Failed(b)) => a == b,
            (Self::Panicked, Self::Panicked) => true,
            _ => false,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(error) => f.debug_tuple("Failed").field(error).finish(),
            Self::Panicked => f.write_str("Panicked"),
        }
    }
}

impl<E: fmt::Display> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(error) => write!(f, "loading the value failed: {error}"),
            Self::Panicked => f.write_str("the loader panicked in another task; retry the call"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for LoadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Failed(error) => Some(&**error),
            Self::Panicked => None,
        }
    }
}

/// How fresh a value from [`Cache::load`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Freshness {
    /// Cached and within its time-to-live (a reload may have been started
    /// in the background if it was in its `refresh_before` window).
    Fresh,
    /// Cached, past its time-to-live but inside `stale_while_revalidate`;
    /// one background reload was started (or was running already).
    Stale,
    /// Not cached: loaded now (by this call or one it waited on).
    Loaded,
}

/// A value from [`Cache::load`], and how fresh it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded<V> {
    /// The value.
    pub value: V,
    /// Where it came from.
    pub freshness: Freshness,
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Like [`Cache::try_get_or_load`], honouring the freshness windows:
    /// an entry in its `refresh_before` window is returned as fresh while one
    /// background reload starts; an entry past its time-to-live but inside
    /// `stale_while_revalidate` is returned marked stale while one
    /// background reload starts; otherwise the value is loaded now. The
    /// result says which. Background reloads run on the builder's
    /// [`spawner`](crate::CacheBuilder::spawner), one per key at a time
    /// (single flight), and store their value unless a write of the key
    /// came first.
    ///
    /// # Errors
    ///
    /// As [`Cache::try_get_or_load`], when the value is loaded now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use strata::{Cache, Freshness, ManualClock};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let clock = ManualClock::new();
    /// let cache: Cache<u32, u32> = Cache::builder()
    ///     .max_capacity(100)
    ///     .time_to_live(Duration::from_secs(10))
    ///     .stale_while_revalidate(Duration::from_secs(5))
    ///     .spawner(|task| { tokio::spawn(task); })
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let first = cache.load(1, || async { Ok::<_, String>(10) }).await.unwrap();
    /// assert_eq!(first.freshness, Freshness::Loaded);
    /// clock.advance(Duration::from_secs(12));
    /// let stale = cache.load(1, || async { Ok::<_, String>(11) }).await.unwrap();
    /// assert_eq!((stale.value, stale.freshness), (10, Freshness::Stale));
    /// # Ok::<(), strata::ConfigError>(())
    /// # }).map_err(|e| std::io::Error::other(e.to_string()))?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn load<F, Fut, E>(&self, key: K, loader: F) -> Result<Loaded<V>, LoadError<E>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let hash = self.hash(&key);
        let (value, freshness, refresh) = match self.lookup(self.slot(hash), hash, &key, true) {
            Lookup::Hit(value) => (value, Freshness::Fresh, false),
            Lookup::RefreshDue(value) => (value, Freshness::Fresh, true),
            Lookup::Stale(value) => (value, Freshness::Stale, true),
            Lookup::Miss | Lookup::Expired => {
                let value = self.try_get_or_load(key, loader).await?;
                return Ok(Loaded {
                    value,
                    freshness: Freshness::Loaded,
                });
            }
        };
        self.record_request(true);
        if refresh {
            self.reload_in_background(hash, key, loader);
        }
        Ok(Loaded { value, freshness })
    }

    /// Starts one reload of `key` on the spawner, unless one is running.
    fn reload_in_background<F, Fut, E>(&self, hash: u64, key: K, loader: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let Some(spawner) = self.spawner() else {
            return;
        };
        let Joined::Lead(flight) = self
            .flights()
            .join_or_lead::<V, E>(hash, &key, |k| self.hash(k))
        else {
            return;
        };
        let cache = self.clone();
        spawner.spawn(Box::pin(async move {
            let lead = Lead::<K, V, E>::new(cache.flights(), hash, &key, flight);
            let outcome = match catch_unwind(loader()).await {
                Ok(Ok(value)) => {
                    let _ =
                        cache.insert_loaded(key.clone(), value.clone(), &[], Some(&lead.flight));
                    Ok(value)
                }
                Ok(Err(error)) => Err(LoadError::Failed(Arc::new(error))),
                // A background reload has no caller to re-raise in.
                Err(_) => Err(LoadError::Panicked),
            };
            lead.complete(outcome);
        }));
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// The value for `key`, loading it with `loader` on a miss. Concurrent
    /// misses of one key run one loader; the others wait for its value.
    ///
    /// # Panics
    ///
    /// If the loader panics, in this caller's task; callers that were
    /// waiting on that load panic too (with a message saying so), rather
    /// than hang. Use [`Cache::try_get_or_load`] to get an error instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use strata::Cache;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let cache: Cache<u32, String> = Cache::new(100);
    /// let user = cache.get_or_load(7, || async { format!("user-{}", 7) }).await;
    /// assert_eq!(user, "user-7");
    /// // Now cached: this loader does not run.
    /// let again = cache.get_or_load(7, || async { unreachable!() }).await;
    /// assert_eq!(again, "user-7");
    /// # });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn get_or_load<F, Fut>(&self, key: K, loader: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let load = self.try_get_or_load(key, || async {
            Ok::<V, std::convert::Infallible>(loader().await)
        });
        match load.await {
            Ok(value) => value,
            Err(LoadError::Failed(never)) => match *never {},
            Err(LoadError::Panicked) => panic!("the loader for this key panicked in another task"),
        }
    }

    /// The value for `key`, loading it with the fallible `loader` on a
    /// miss. Concurrent misses of one key run one loader; the others wait
    /// for its outcome, value or error.
    ///
    /// A value loaded here is stored only if no `insert`, `remove` or
    /// `clear` touched the key after the load started, so a slow load never
    /// puts back a value that an invalidation removed. If the task running
    /// the load is dropped, a waiting caller runs its own loader instead.
    ///
    /// # Errors
    ///
    /// [`LoadError::Failed`] with the loader's error (shared by every caller
    /// of that load; cached only with a `negative_ttl`), or
    /// [`LoadError::Panicked`] if the loader panicked in another caller's
    /// task.
    ///
    /// # Panics
    ///
    /// If the loader panics in this caller's task (after the waiters were
    /// told).
    ///
    /// # Examples
    ///
    /// ```
    /// use strata::{Cache, LoadError};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let cache: Cache<u32, String> = Cache::new(100);
    /// let missing = cache
    ///     .try_get_or_load(1, || async { Err::<String, _>("no such user") })
    ///     .await;
    /// assert!(matches!(missing, Err(LoadError::Failed(e)) if *e == "no such user"));
    /// assert!(!cache.contains_key(&1), "errors are not cached");
    /// # });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn try_get_or_load<F, Fut, E>(&self, key: K, loader: F) -> Result<V, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        self.try_get_or_load_with_tags(key, &[], loader).await
    }

    /// Like [`Cache::try_get_or_load`], storing a loaded value with `tags`
    /// (see [`Cache::insert_with_tags`]).
    ///
    /// # Errors
    ///
    /// As [`Cache::try_get_or_load`].
    ///
    /// # Panics
    ///
    /// As [`Cache::try_get_or_load`].
    ///
    /// # Examples
    ///
    /// ```
    /// use strata::Cache;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
    /// let cache: Cache<u32, &str> = Cache::new(100);
    /// let loaded = cache
    ///     .try_get_or_load_with_tags(1, &["users"], || async { Ok::<_, String>("ada") })
    ///     .await;
    /// assert_eq!(loaded, Ok("ada"));
    /// assert_eq!(cache.invalidate_tag("users"), 1);
    /// # });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn try_get_or_load_with_tags<F, Fut, E>(
        &self,
        key: K,
        tags: &[&str],
        loader: F,
    ) -> Result<V, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        let hash = self.hash(&key);
        let flights = self.flights();
        let flight = loop {
            if let Some(value) = self.get(&key) {
                return Ok(value);
            }
            if let Some(error) = self.negatives().and_then(|n| n.get(&key)) {
                // A cached error of another type is no answer for this call.
                if let Ok(error) = error.downcast::<E>() {
                    return Err(LoadError::Failed(error));
                }
            }
            match flights.join_or_lead::<V, E>(hash, &key, |k| self.hash(k)) {
                Joined::Lead(flight) => break Some(flight),
                Joined::Foreign => break None,
                Joined::Wait(flight) => {
                    if let Some(outcome) = wait::<V, E>(flight).await {
                        return outcome;
                    }
                    // The leader was dropped: look again, maybe lead.
                }
            }
        };
        let lead = flight.map(|flight| Lead::<K, V, E>::new(flights, hash, &key, flight));
        if let Some(lead) = lead {
            // A write of the key may have landed between the miss above
            // and the flight's registration (every later write invalidates
            // the flight): that value is the answer, and a load would
            // overwrite it. Found by loom (loom-tests/tests/single_flight.rs).
            if let Some(value) = self.peek(&key) {
                lead.complete(Ok(value.clone()));
                return Ok(value);
            }
            return self.run_load(&key, tags, loader, Some(lead)).await;
        }
        self.run_load(&key, tags, loader, None).await
    }

    /// Runs `loader` (as the flight's leader when `lead` is given), stores
    /// its value unless a write of the key invalidated the flight, and
    /// hands the outcome to the waiters.
    async fn run_load<F, Fut, E>(
        &self,
        key: &K,
        tags: &[&str],
        loader: F,
        lead: Option<Lead<'_, K, V, E>>,
    ) -> Result<V, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        match catch_unwind(loader()).await {
            Ok(Ok(value)) => {
                let own = lead.as_ref().map(|lead| &lead.flight);
                // Refused only when too heavy: the value still answers the
                // callers, it just is not cached.
                let _ = self.insert_loaded(key.clone(), value.clone(), tags, own);
                if let Some(lead) = lead {
                    lead.complete(Ok(value.clone()));
                }
                Ok(value)
            }
            Ok(Err(error)) => {
                let error = Arc::new(error);
                let invalidated = lead
                    .as_ref()
                    .is_some_and(|lead| lead.flight.invalidated.load(Ordering::SeqCst));
                if let (Some(negatives), false) = (self.negatives(), invalidated) {
                    // Refused only when too heavy, which an error never is.
                    let _ = negatives.insert(key.clone(), Arc::clone(&error) as Negative);
                }
                let error = LoadError::Failed(error);
                if let Some(lead) = lead {
                    lead.complete(Err(error.clone()));
                }
                Err(error)
            }
            Err(panic) => {
                if let Some(lead) = lead {
                    lead.complete(Err(LoadError::Panicked));
                }
                resume_unwind(panic)
            }
        }
    }
}
