//! Seeded synthetic key streams.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::Zipf;

/// Odd multiplier (2^64 / φ) used by [`scramble`]; being odd makes the
/// multiplication a bijection on `u64`, so distinct ranks stay distinct keys.
const SCRAMBLE: u64 = 0x9E37_79B9_7F4A_7C15;

/// Maps a rank (or any small integer) to a key that looks nothing like it.
///
/// The map is a bijection on `u64`, so `n` distinct inputs give `n` distinct
/// keys, but popular ranks no longer sit next to each other, so an engine
/// cannot profit from `key == rank`.
///
/// # Examples
///
/// ```
/// use strata_benches::scramble;
/// assert_ne!(scramble(1), 1);
/// assert_ne!(scramble(1), scramble(2));
/// ```
#[must_use]
pub fn scramble(rank: u64) -> u64 {
    rank.wrapping_mul(SCRAMBLE)
}

/// Draws `len` keys whose ranks follow a Zipf(`s`) law over `n` ranks,
/// each passed through [`scramble`].
///
/// The stream depends only on `(n, s, len, seed)`: the generator is
/// [`SmallRng::seed_from_u64`], so a seed gives the same keys on every run of
/// the same build.
///
/// # Panics
///
/// Panics if `n` is 0 or `s` is negative or not finite, which
/// [`rand_distr::Zipf`] rejects.
///
/// # Examples
///
/// ```
/// use strata_benches::zipf_keys;
/// let a = zipf_keys(1_000, 1.0, 100, 7);
/// assert_eq!(a, zipf_keys(1_000, 1.0, 100, 7));
/// assert_eq!(a.len(), 100);
/// ```
#[must_use]
pub fn zipf_keys(n: u64, s: f64, len: usize, seed: u64) -> Vec<u64> {
    // u64 -> f64 is exact for every key count we use (far below 2^53).
    #[allow(clippy::cast_precision_loss)]
    let zipf = Zipf::new(n as f64, s).expect("Zipf parameters: n >= 1 and s >= 0");
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..len)
        .map(|_| {
            // Samples are integers in [1, n], stored in an f64.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let rank = rng.sample(zipf) as u64;
            scramble(rank)
        })
        .collect()
}
