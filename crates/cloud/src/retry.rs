//! Retry policy: exponential backoff with full jitter, only for classes the transport may
//! retry on its own ([`ErrorClass::is_transport_retryable`]: throttling and transient errors).

use std::time::Duration;

use rand::Rng;

use crate::ErrorClass;

/// Bounded retries with exponential backoff and full jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included (at least 1).
    pub max_attempts: u32,
    /// Backoff cap before the first retry; doubles each retry.
    pub base_delay: Duration,
    /// Upper bound of any single backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Whether to retry after `attempt` (1-based) failed with `class`.
    pub fn should_retry(&self, class: ErrorClass, attempt: u32) -> bool {
        class.is_transport_retryable() && attempt < self.max_attempts.max(1)
    }

    /// The largest backoff after `attempt` (1-based) failed: `min(max_delay, base * 2^(attempt-1))`.
    pub fn backoff_cap(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let factor = 1u32 << exp;
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// Full jitter: uniform in `[0, backoff_cap(attempt)]`.
    pub fn backoff_with<R: Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> Duration {
        let cap = u64::try_from(self.backoff_cap(attempt).as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rng.random_range(0..=cap))
    }

    pub fn backoff(&self, attempt: u32) -> Duration {
        self.backoff_with(attempt, &mut rand::rng())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_throttled_and_transient_retry() {
        let p = RetryPolicy::default();
        for class in ErrorClass::ALL {
            let expected = matches!(class, ErrorClass::Throttled | ErrorClass::Transient);
            assert_eq!(p.should_retry(class, 1), expected, "{class}");
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(p.should_retry(ErrorClass::Throttled, 1));
        assert!(p.should_retry(ErrorClass::Throttled, 2));
        assert!(!p.should_retry(ErrorClass::Throttled, 3));
        assert!(!RetryPolicy::none().should_retry(ErrorClass::Transient, 1));
        let zero = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        assert!(!zero.should_retry(ErrorClass::Transient, 1));
    }

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 50,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        assert_eq!(p.backoff_cap(1), Duration::from_millis(100));
        assert_eq!(p.backoff_cap(2), Duration::from_millis(200));
        assert_eq!(p.backoff_cap(3), Duration::from_millis(400));
        assert_eq!(p.backoff_cap(5), Duration::from_millis(1600));
        assert_eq!(p.backoff_cap(6), Duration::from_secs(2));
        assert_eq!(p.backoff_cap(40), Duration::from_secs(2));
        assert_eq!(p.backoff_cap(u32::MAX), Duration::from_secs(2));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = RetryPolicy::default();
        let mut rng = rand::rng();
        for attempt in 1..8 {
            for _ in 0..200 {
                assert!(p.backoff_with(attempt, &mut rng) <= p.backoff_cap(attempt));
            }
        }
        // Full jitter actually spreads: not all samples equal the cap.
        let samples: Vec<Duration> = (0..50).map(|_| p.backoff(4)).collect();
        assert!(samples.iter().any(|d| *d < p.backoff_cap(4)));
    }
}
