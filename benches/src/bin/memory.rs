//! Prints the heap bytes per entry of strata and its peers holding up to
//! 1,000,000 `u64 → u64` entries, as a markdown table.
//!
//! A counting global allocator tracks the bytes currently allocated; each
//! engine is built with capacity 1,000,000, fed keys `0..1,000,000`
//! (scrambled), settled (moka's pending tasks), measured, and dropped before
//! the next one. Bytes per entry = heap growth / entries held.
//!
//! ```text
//! cargo run --release -p strata-benches --bin memory
//! ```
#![deny(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use strata_benches::{scramble, Accounting, Peer};

const ENTRIES: u64 = 1_000_000;

/// Bytes currently allocated through [`Counting`].
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, plus a running count of live bytes.
struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees carry over; the counting beside it
// touches only an atomic and never allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller upholds `GlobalAlloc::alloc`'s contract
        // (non-zero size), which is `System.alloc`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`: the caller's contract is `System`'s.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator (so
        // from `System`) with this `layout`.
        unsafe { System.dealloc(ptr, layout) };
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `ptr` came from this allocator (so
        // from `System`) with `layout`, and that `new_size` is valid for it.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // On failure the old block stays allocated: count nothing.
            ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
            ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let keys: Vec<u64> = (0..ENTRIES).map(scramble).collect();
    println!("# Heap use at capacity {ENTRIES}\n");
    println!(
        "`u64 → u64`, keys 0..{ENTRIES} scrambled, inserted once; \
         bytes/entry = heap growth / entries held.\n"
    );
    println!("| engine | entries held | heap bytes | bytes/entry |");
    println!("|:---|---:|---:|---:|");
    for peer in Peer::ALL {
        let before = ALLOCATED.load(Ordering::Relaxed);
        let cache = peer.build::<u64>(ENTRIES, Accounting::Lazy);
        for &key in &keys {
            cache.insert(key, key);
        }
        cache.settle();
        let after = ALLOCATED.load(Ordering::Relaxed);
        let held = cache.entries();
        drop(cache);
        let grown = after.saturating_sub(before);
        // Display only: f64 is exact far beyond these byte counts.
        #[allow(clippy::cast_precision_loss)]
        let per_entry = if held == 0 {
            f64::NAN
        } else {
            grown as f64 / held as f64
        };
        println!("| {} | {held} | {grown} | {per_entry:.1} |", peer.name());
    }
}
