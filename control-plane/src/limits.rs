//! Limits one tenant meets before it can crowd out the others: a request
//! rate per principal (a token bucket: a sustained rate and a burst), and
//! quotas on how many statements and compute pools an environment holds and
//! how many API keys and service accounts an organization holds. Each
//! refusal is a 429 that names the limit and its value.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::http::StatusCode;

use crate::ApiError;

/// The limits of a server; `weir dev` and `weir server` take the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Requests per second one principal may make, sustained.
    pub requests_per_second: f64,
    /// Requests one principal may make at once above the sustained rate.
    pub request_burst: f64,
    pub statements_per_environment: usize,
    pub pools_per_environment: usize,
    pub api_keys_per_organization: usize,
    pub service_accounts_per_organization: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests_per_second: 200.0,
            request_burst: 2000.0,
            statements_per_environment: 5000,
            pools_per_environment: 100,
            api_keys_per_organization: 2000,
            service_accounts_per_organization: 1000,
        }
    }
}

impl Limits {
    /// The 429 of a quota that `count` (what exists now) has reached.
    pub fn quota(&self, what: &str, count: usize, limit: usize) -> Result<(), ApiError> {
        if count < limit {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exceeded",
            format!("the quota of {limit} {what} is reached ({count} exist); delete some first or raise the server's limit"),
        ))
    }
}

/// Token buckets by principal.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// At most this many principals are tracked; past it idle ones are dropped.
const MAX_TRACKED: usize = 100_000;

impl RateLimiter {
    /// Takes one request of `principal`'s bucket, or the 429 that says
    /// when to come back.
    pub fn take(&self, limits: &Limits, principal: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut b = self.buckets.lock().expect("not poisoned");
        if b.len() >= MAX_TRACKED {
            // Full buckets carry no state worth keeping.
            b.retain(|_, (tokens, at)| {
                *tokens + at.elapsed().as_secs_f64() * limits.requests_per_second
                    < limits.request_burst
            });
        }
        let (tokens, at) = b
            .entry(principal.to_string())
            .or_insert((limits.request_burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * limits.requests_per_second)
            .min(limits.request_burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        let wait_ms = ((1.0 - *tokens) / limits.requests_per_second * 1000.0).ceil() as u64;
        Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "{principal} is over its rate limit of {} requests per second (burst {}); retry in {wait_ms} ms",
                limits.requests_per_second, limits.request_burst
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_then_refills() {
        let limits = Limits {
            requests_per_second: 1000.0,
            request_burst: 3.0,
            ..Limits::default()
        };
        let r = RateLimiter::default();
        for _ in 0..3 {
            r.take(&limits, "User:a").unwrap();
        }
        let e = r.take(&limits, "User:a").unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(e.detail.contains("rate limit of 1000"), "{}", e.detail);
        // Another principal has its own bucket.
        r.take(&limits, "User:b").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        r.take(&limits, "User:a").unwrap();
    }

    #[test]
    fn a_quota_names_itself() {
        let l = Limits::default();
        assert!(l.quota("statements in an environment", 3, 4).is_ok());
        let e = l.quota("statements in an environment", 4, 4).unwrap_err();
        assert!(e.detail.contains("quota of 4 statements"), "{}", e.detail);
    }
}
