//! Client-side rate limiting: one token bucket per region of a driver instance (hence per
//! credential and region), shared by every call of that driver to that region.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Requests per second and burst size. A non-positive rate disables limiting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 20.0,
            burst: 40,
        }
    }
}

impl RateLimit {
    pub fn unlimited() -> Self {
        Self {
            per_second: 0.0,
            burst: 0,
        }
    }

    fn enabled(&self) -> bool {
        self.per_second > 0.0 && self.per_second.is_finite()
    }
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    last: Instant,
}

/// A token bucket: starts full (`burst` tokens), refills at `per_second`.
#[derive(Debug)]
pub struct TokenBucket {
    limit: RateLimit,
    state: Mutex<BucketState>,
}

impl TokenBucket {
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        let burst = f64::from(limit.burst.max(1));
        Self {
            limit,
            state: Mutex::new(BucketState {
                tokens: burst,
                last: now,
            }),
        }
    }

    /// Takes a token at `now` if one is there; otherwise returns how long until one is.
    pub fn try_take(&self, now: Instant) -> Result<(), Duration> {
        if !self.limit.enabled() {
            return Ok(());
        }
        let burst = f64::from(self.limit.burst.max(1));
        let mut s = self.state.lock();
        let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
        s.tokens = (s.tokens + elapsed * self.limit.per_second).min(burst);
        s.last = now.max(s.last);
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - s.tokens) / self.limit.per_second;
            Err(Duration::from_secs_f64(wait.max(0.001)))
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        loop {
            match self.try_take(Instant::now()) {
                Ok(()) => return,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

/// Buckets by region, created on first use.
#[derive(Debug)]
pub struct RegionLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Arc<TokenBucket>>>,
}

impl RegionLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn bucket(&self, region: &str) -> Arc<TokenBucket> {
        let mut buckets = self.buckets.lock();
        Arc::clone(
            buckets
                .entry(region.to_string())
                .or_insert_with(|| Arc::new(TokenBucket::new(self.limit, Instant::now()))),
        )
    }

    pub async fn acquire(&self, region: &str) {
        if self.limit.enabled() {
            self.bucket(region).acquire().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let b = TokenBucket::new(
            RateLimit {
                per_second: 10.0,
                burst: 3,
            },
            t0,
        );
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0).is_ok());
        let wait = b.try_take(t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        // 100 ms later one token is back, not two.
        let t1 = t0 + Duration::from_millis(100);
        assert!(b.try_take(t1).is_ok());
        assert!(b.try_take(t1).is_err());
        // Long idle refills only up to the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.try_take(t2).is_ok());
        }
        assert!(b.try_take(t2).is_err());
    }

    #[test]
    fn unlimited_never_waits() {
        let t0 = Instant::now();
        let b = TokenBucket::new(RateLimit::unlimited(), t0);
        for _ in 0..1000 {
            assert!(b.try_take(t0).is_ok());
        }
    }

    #[test]
    fn regions_have_separate_buckets_and_share_within_a_region() {
        let l = RegionLimiter::new(RateLimit {
            per_second: 1.0,
            burst: 1,
        });
        let a1 = l.bucket("cn-hangzhou");
        let a2 = l.bucket("cn-hangzhou");
        let b = l.bucket("cn-beijing");
        assert!(Arc::ptr_eq(&a1, &a2));
        assert!(!Arc::ptr_eq(&a1, &b));
        let now = Instant::now();
        assert!(a1.try_take(now).is_ok());
        assert!(a2.try_take(now).is_err());
        assert!(b.try_take(now).is_ok());
    }

    #[tokio::test]
    async fn acquire_waits_for_a_token() {
        let l = RegionLimiter::new(RateLimit {
            per_second: 20.0,
            burst: 1,
        });
        let start = std::time::Instant::now();
        l.acquire("r").await;
        l.acquire("r").await;
        l.acquire("r").await;
        // Two refills at 20/s: about 100 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(80),
            "{:?}",
            start.elapsed()
        );
    }
}
