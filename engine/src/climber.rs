//! Adapting the admission window to the workload by hill climbing.
//!
//! W-TinyLFU splits the cache into a small LRU *window* (which favours
//! recency: new entries live there first) and a large frequency-guarded
//! *main* space. No fixed split suits every workload: bursty, recency-heavy
//! traces want a bigger window, looping or frequency-heavy ones a tiny one.
//! Following Einziger, Eytan, Friedman and Manes ("Adaptive Software Cache
//! Management", Middleware 2018), as Caffeine ships it, each shard samples
//! its hit ratio over a period of `5 x capacity` requests and moves the
//! window size one step; if the hit ratio rose, the next step goes the same
//! way, otherwise it turns round. Steps decay by 2% per period so the split
//! settles, and a large swing in hit ratio (a new workload phase) restarts
//! the climb with full-sized steps.

/// A step is this fraction of the capacity.
const STEP_FRACTION: f64 = 0.0625;
/// Steps shrink by this factor each period.
const STEP_DECAY: f64 = 0.98;
/// A hit-ratio change at least this large restarts the climb.
const RESTART_THRESHOLD: f64 = 0.05;
/// Periods last this many requests per unit of capacity (Caffeine: 10;
/// shorter periods let a shard, which sees only its share of the traffic,
/// adapt within the length of the recorded traces; measured in
/// `benches/RESULTS.md`).
const SAMPLE_FACTOR: u64 = 5;

#[derive(Debug)]
pub(crate) struct Climber {
    base_hits: u64,
    base_misses: u64,
    previous_ratio: f64,
    step: f64,
}

impl Climber {
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            base_hits: 0,
            base_misses: 0,
            previous_ratio: 0.0,
            // The window starts at 1%; try shrinking it first, which
            // frequency-skewed workloads prefer.
            step: -STEP_FRACTION * capacity as f64,
        }
    }

    /// Given the shard's running hit and miss counts, once per period
    /// returns how much to grow (positive) or shrink (negative) the window.
    /// `entries` is the number of entries the shard holds when full.
    pub(crate) fn sample(&mut self, hits: u64, misses: u64, entries: u64, capacity: u64) -> Step {
        let period_hits = hits.saturating_sub(self.base_hits);
        let period_misses = misses.saturating_sub(self.base_misses);
        let requests = period_hits + period_misses;
        if requests < SAMPLE_FACTOR * entries.max(16) {
            return Step::default();
        }
        self.base_hits = hits;
        self.base_misses = misses;
        let ratio = period_hits as f64 / requests as f64;
        let change = ratio - self.previous_ratio;
        self.previous_ratio = ratio;
        if change == 0.0 {
            // No signal (e.g. a scan with no hits at all): stay put, rather
            // than walk the window to an extreme.
            return Step::default();
        }
        let amount = if change > 0.0 { self.step } else { -self.step };
        self.step = if change.abs() >= RESTART_THRESHOLD {
            STEP_FRACTION * capacity as f64 * amount.signum()
        } else {
            amount * STEP_DECAY
        };
        Step {
            window: amount,
            new_phase: change <= -RESTART_THRESHOLD,
        }
    }
}

/// The outcome of one period.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Step {
    /// Weight to add to the window (negative: take away).
    pub(crate) window: f64,
    /// The hit ratio fell sharply: the workload changed, and the
    /// frequencies learnt in the old phase should fade faster.
    pub(crate) new_phase: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_full_period() {
        let mut climber = Climber::new(1000);
        assert_eq!(climber.sample(2500, 2499, 1000, 1000), Step::default());
        let first = climber.sample(2500, 2500, 1000, 1000);
        assert!(first.window < 0.0, "first tries a smaller window");
        assert!(!first.new_phase);
    }

    #[test]
    fn keeps_direction_while_improving_and_turns_when_worse() {
        let mut climber = Climber::new(1000);
        let (mut hits, mut misses) = (0, 0);
        let mut period = |climber: &mut Climber, ratio: f64| {
            hits += (10_000.0 * ratio) as u64;
            misses += 10_000 - (10_000.0 * ratio) as u64;
            climber.sample(hits, misses, 1000, 1000).window
        };
        let first = period(&mut climber, 0.50);
        let second = period(&mut climber, 0.52);
        let third = period(&mut climber, 0.53);
        assert!(
            first < 0.0 && second < 0.0 && third < 0.0,
            "same direction while improving"
        );
        assert!(
            third.abs() < second.abs(),
            "steps decay: {second} then {third}"
        );
        let turned = period(&mut climber, 0.52);
        assert!(turned > 0.0, "turns round when the ratio drops");
        let restart = period(&mut climber, 0.40);
        assert!(restart < 0.0, "turns again after a worse period");
        let fifth = period(&mut climber, 0.41);
        assert!(
            (fifth + 62.5).abs() < 1e-9,
            "a big swing restarts the step: {fifth}"
        );
    }
}
