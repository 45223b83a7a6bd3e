//! What stands between the internet and the routes: a header size limit, bearer
//! tokens and per-client rate limits, each refusing with a `refusal::Refused`; and the JSON
//! rendering of errors raised below the handlers. Everything is rendered in the error shape of
//! the API family the path belongs to (`routes::error_for_path`).

use std::net::SocketAddr;
use std::num::NonZeroU32;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::client_ip::client_ip;
use crate::refusal::{refuse, Refused};
use crate::routes::error_for_path;
use crate::AppState;

/// Paths that answer without a token or a rate limit: probes and documents.
const OPEN_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics", "/openapi.json"];

/// Requests per second and burst allowed to one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    /// `off`, `RPS` or `RPS,BURST` (a burst of twice the rate when not given).
    pub fn parse(s: &str) -> Result<Option<Self>, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let bad = || format!("rate limit {s:?}: use off, RPS or RPS,BURST (e.g. 50,100)");
        let (rps, burst) = match s.split_once(',') {
            Some((r, b)) => (r.trim(), Some(b.trim())),
            None => (s, None),
        };
        let per_second: u32 = rps.parse().ok().filter(|r| *r > 0).ok_or_else(bad)?;
        let burst = match burst {
            Some(b) => b.parse().ok().filter(|b| *b > 0).ok_or_else(bad)?,
            None => per_second.saturating_mul(2),
        };
        Ok(Some(Self { per_second, burst }))
    }
}

/// The edge's protections, shared by its middleware.
pub struct Protection {
    tokens: Vec<Vec<u8>>,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// Requests in flight at most (counted by `crate::draining`); more are shed with a 503.
    pub max_in_flight: usize,
    pub max_header_bytes: usize,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("tokens", &self.tokens.len())
            .field("rate_limited", &self.limiter.is_some())
            .finish()
    }
}

impl Protection {
    pub fn new(
        tokens: Vec<String>,
        rate_limit: Option<RateLimit>,
        max_in_flight: usize,
        max_header_bytes: usize,
    ) -> Self {
        let limiter = rate_limit.map(|r| {
            let per_second = NonZeroU32::new(r.per_second).expect("checked > 0");
            let burst = NonZeroU32::new(r.burst).expect("checked > 0");
            RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
        });
        Self {
            tokens: tokens
                .into_iter()
                .filter(|t| !t.is_empty())
                .map(String::into_bytes)
                .collect(),
            limiter,
            max_in_flight: max_in_flight.max(1),
            max_header_bytes,
        }
    }

    /// Forgets clients not seen lately, so the limiter's memory stays bounded.
    pub fn forget_idle_clients(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    fn token_ok(&self, presented: &[u8]) -> bool {
        // Every configured token is compared in full, in constant time per token, so the
        // answer's timing does not say how much of a guess was right.
        self.tokens
            .iter()
            .fold(false, |ok, t| ok | constant_time_eq(t, presented))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who a request counts against: its token when it has one, else its address.
#[derive(Debug, Clone)]
struct ClientKey(String);

/// Request headers over the limit, all together: 431.
pub fn check_headers(state: &AppState, request: &Request) -> Result<(), Refused> {
    let size: usize = request
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if size > state.protection.max_header_bytes {
        return Err(refuse(
            request.uri().path(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "request headers are {size} bytes; the limit is {}",
                state.protection.max_header_bytes
            ),
        ));
    }
    Ok(())
}

/// With tokens configured, a request needs `Authorization: Bearer <token>`: 401 otherwise.
/// A request with a good token is counted against its token by [`rate_limit`].
pub fn authenticate(state: &AppState, request: &mut Request) -> Result<(), Refused> {
    let path = request.uri().path();
    if state.protection.tokens.is_empty() || OPEN_PATHS.contains(&path) {
        return Ok(());
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string());
    match presented {
        Some(token) if state.protection.token_ok(token.as_bytes()) => {
            request
                .extensions_mut()
                .insert(ClientKey(format!("token:{token}")));
            Ok(())
        }
        found => {
            let why = if found.is_some() {
                "the bearer token is not valid"
            } else {
                "this API needs an Authorization: Bearer <token> header"
            };
            let mut refused = refuse(path, StatusCode::UNAUTHORIZED, why.into());
            refused
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Err(refused)
        }
    }
}

/// Per-client rate limit: 429 with `Retry-After` (seconds) past it.
pub fn rate_limit(state: &AppState, request: &Request) -> Result<(), Refused> {
    let Some(limiter) = &state.protection.limiter else {
        return Ok(());
    };
    let path = request.uri().path();
    if OPEN_PATHS.contains(&path) {
        return Ok(());
    }
    let key = match request.extensions().get::<ClientKey>() {
        Some(k) => k.0.clone(),
        None => {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
                .unwrap_or([127, 0, 0, 1].into());
            let ip = client_ip(peer, request.headers(), &state.config.trusted_proxies);
            format!("ip:{ip}")
        }
    };
    limiter.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut refused = refuse(
            path,
            StatusCode::TOO_MANY_REQUESTS,
            format!("too many requests; retry in {secs} s"),
        );
        refused
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        refused
    })
}

/// Errors raised below the handlers (body limit, time limit, wrong method, unparsable path or
/// query) come as plain text; clients of every family get their JSON shape instead.
pub async fn json_errors(path: &str, response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !status.is_client_error() && !status.is_server_error() || is_json {
        return response;
    }
    let kept: Vec<_> = [header::RETRY_AFTER, header::WWW_AUTHENTICATE, header::ALLOW]
        .into_iter()
        .filter_map(|h| response.headers().get(&h).cloned().map(|v| (h, v)))
        .collect();
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match (text.is_empty(), status) {
        (_, StatusCode::REQUEST_TIMEOUT) => "the request took too long and was stopped".to_string(),
        (true, _) => status.canonical_reason().unwrap_or("error").to_string(),
        (false, _) => text,
    };
    let mut rendered = error_for_path(path, status, message);
    for (h, v) in kept {
        rendered.headers_mut().insert(h, v);
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_parse() {
        assert_eq!(RateLimit::parse("off").unwrap(), None);
        assert_eq!(
            RateLimit::parse("50").unwrap(),
            Some(RateLimit {
                per_second: 50,
                burst: 100
            })
        );
        assert_eq!(
            RateLimit::parse("5, 7").unwrap(),
            Some(RateLimit {
                per_second: 5,
                burst: 7
            })
        );
        for bad in ["", "0", "x", "5,0", "-1"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        let p = Protection::new(vec!["s3cret".into(), "other".into()], None, 1, 1);
        assert!(p.token_ok(b"s3cret"));
        assert!(p.token_ok(b"other"));
        assert!(!p.token_ok(b"s3cre"));
        assert!(!p.token_ok(b"s3cret!"));
        assert!(!p.token_ok(b""));
    }
}
