//! The simulated agents' randomness and reconnection delays: a small
//! xorshift generator ([`Rng`], also used by scenarios to pick hosts and
//! jobs) and PROTOCOL.md's back-off ([`Backoff`]: 1 s doubling to 60 s,
//! ±20 % jitter).

use std::time::Duration;

/// First reconnection delay; doubles per failure.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest reconnection delay.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// A small xorshift generator: jitter and random choices need no
/// cryptographic quality, only to differ between agents.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // xorshift needs a non-zero state.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A uniform number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform index below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n.saturating_sub(1))
    }
}

/// Reconnection delays (PROTOCOL.md "Connection lifecycle" step 5).
pub struct Backoff {
    next: Duration,
    rng: Rng,
}

impl Backoff {
    /// Starts at one second; `seed` varies the jitter between agents.
    pub fn new(seed: u64) -> Self {
        Backoff {
            next: BACKOFF_START,
            rng: Rng::new(seed),
        }
    }

    /// A uniform number in [0, 1) from the jitter generator.
    pub fn random(&mut self) -> f64 {
        self.rng.unit()
    }

    /// The next delay (±20 % around the current step), doubling the step.
    pub fn next_delay(&mut self) -> Duration {
        let jitter = 0.8 + 0.4 * self.random();
        let delay = self.next.mul_f64(jitter);
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }

    /// After a long enough session.
    pub fn reset(&mut self) {
        self.next = BACKOFF_START;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Back-off: 1 s ±20 %, doubling to 60 s ±20 %, back to 1 s on reset.
    #[test]
    fn backoff_doubles_with_jitter_and_resets() {
        let mut b = Backoff::new(7);
        let secs: Vec<f64> = (0..10).map(|_| b.next_delay().as_secs_f64()).collect();
        let steps = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0];
        for (got, step) in secs.iter().zip(steps) {
            assert!(*got >= step * 0.8 && *got <= step * 1.2, "{got} vs {step}");
        }
        b.reset();
        let first = b.next_delay().as_secs_f64();
        assert!((0.8..=1.2).contains(&first), "{first}");
    }
}
