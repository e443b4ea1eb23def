//! Typed cache-aside in front of a slow store, from two threads.
//!
//! ```text
//! cargo run --release -p strata --example quickstart
//! ```
//!
//! A "database" answers in about 50 µs (a loopback Redis round trip is
//! about 30 µs on this machine). Two worker threads look users up by id,
//! with skewed popularity, through a strata cache holding 10% of them; the
//! example prints how many lookups the cache answered and what it evicted.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata::{Cache, RemovalCause};

#[derive(Clone, Debug)]
struct User {
    id: u64,
    name: String,
}

/// The slow origin.
fn load_user(id: u64) -> User {
    std::thread::sleep(Duration::from_micros(50));
    User {
        id,
        name: format!("user-{id}"),
    }
}

fn main() {
    let evicted = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&evicted);
    let cache: Cache<u64, Arc<User>> = Cache::builder()
        .max_capacity(2_000)
        .time_to_live(Duration::from_secs(60))
        .eviction_listener(move |_id: u64, _user: Arc<User>, cause: RemovalCause| {
            if cause.was_evicted() {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()
        .expect("valid settings");

    let started = Instant::now();
    std::thread::scope(|s| {
        for worker in 0..2u64 {
            let cache = &cache;
            s.spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15 ^ worker;
                for _ in 0..20_000 {
                    // xorshift, then a skewed id in 0..20,000: low ids are
                    // far more popular, as real users are.
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let r = (x % 1_000_000) as f64 / 1_000_000.0;
                    let id = (r.powi(5) * 20_000.0) as u64;
                    let user = match cache.get(&id) {
                        Some(user) => user,
                        None => {
                            let user = Arc::new(load_user(id));
                            cache.insert(id, Arc::clone(&user)).unwrap();
                            user
                        }
                    };
                    assert_eq!(user.id, id);
                    assert!(user.name.ends_with(&id.to_string()));
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let stats = cache.stats();
    println!("40,000 lookups in {:.2?} from two threads", elapsed);
    println!(
        "hit ratio {:.1}% ({} hits, {} misses went to the store)",
        100.0 * stats.hit_ratio(),
        stats.hits,
        stats.misses
    );
    println!(
        "held {} users of {}; {} evicted (listener saw {}), {} rejected at admission",
        cache.len(),
        cache.capacity(),
        stats.evictions,
        evicted.load(Ordering::Relaxed),
        stats.admissions_rejected
    );
    assert_eq!(stats.evictions, evicted.load(Ordering::Relaxed));
}
