//! `troupe geoip-stub`: a local stand-in for the external geolocation API.
//!
//! Production geolocates addresses through the HTTP API of the `workivate/geoip-api` image,
//! which throttles its callers (a fixed number of requests per sliding second, 429 with
//! `period_remaining` beyond that) and is now and then slow to answer. Development and tests
//! need that API's shape and limits without the network or a licensed database, so this server
//! answers from a small built-in table of cities (or from a MaxMind database when given one),
//! enforces the same rate limit, stalls on demand, and reports through `/stats` how politely it
//! was called.

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use maxminddb::geoip2;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::config::GeoStubArgs;
use crate::signals;

/// The span the rate applies to: the real API counts requests per sliding second.
const WINDOW: Duration = Duration::from_secs(1);

/// Accuracy claimed for built-in answers: they are a city centre, not the address.
const BUILTIN_ACCURACY_KM: u16 = 50;

/// Serves until SIGINT or SIGTERM. In-flight requests are dropped then: the stub holds nothing
/// worth draining, and a request stalled in a long hiccup should not hold up the exit.
pub async fn run(args: GeoStubArgs) -> Result<ExitCode, String> {
    let stub = Stub::new(&args)?;
    let listener = TcpListener::bind(args.http)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.http))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, rate = args.rate, source = stub.0.places.describe(), "geoip stub listening");
    tokio::select! {
        served = axum::serve(listener, router(stub)).into_future() => {
            served.map_err(|e| format!("geoip stub failed: {e}"))?;
        }
        signal = signals::shutdown_requested() => {
            tracing::info!(signal, "geoip stub stopping");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn router(stub: Stub) -> Router {
    Router::new()
        .route("/info", get(info))
        .route("/json/{ip}", get(freegeoip))
        .route("/stats", get(stats))
        .route("/healthz", get(|| async { StatusCode::OK }))
        .with_state(stub)
}

/// The server's state; cheap to clone (one per request).
#[derive(Clone)]
pub struct Stub(Arc<Shared>);

struct Shared {
    rate: usize,
    hiccup_prob: f64,
    hiccup_max: Duration,
    places: Places,
    ledger: Mutex<Ledger>,
}

/// Everything requests change, behind one lock: it is small and never held across an await.
struct Ledger {
    window: Window,
    stats: Stats,
    rng: fastrand::Rng,
    /// The end of the longest wait announced in a 429 so far.
    told_to_wait_until: Option<Instant>,
}

/// What `/stats` reports. Tests read `max_in_window` to check that a client kept to the rate.
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct Stats {
    /// Every request received on `/info` and `/json`, whatever became of it.
    requests: u64,
    /// Answered 200.
    served: u64,
    /// Answered 429.
    rejected: u64,
    /// Answered 400: the address did not parse.
    bad_requests: u64,
    /// The most requests received within any one sliding second.
    max_in_window: u64,
    /// Requests answered late on purpose.
    hiccups: u64,
    /// Requests that arrived while a wait announced by a 429 (`period_remaining`) was still
    /// running: what a client that honours 429s never sends.
    early: u64,
}

/// The arrival instants of the requests received within the past second, oldest first.
#[derive(Debug, Default)]
struct Window {
    arrivals: VecDeque<Instant>,
}

impl Window {
    /// Records an arrival at `now` (never earlier than the previous one) and returns how many
    /// requests, this one included, arrived within the window ending at `now`.
    fn arrive(&mut self, now: Instant) -> usize {
        while self
            .arrivals
            .front()
            .is_some_and(|&t| now.duration_since(t) >= WINDOW)
        {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back(now);
        self.arrivals.len()
    }

    /// How long from `now` until a request would be accepted at `rate`: once the `rate`-th most
    /// recent arrival has left the window, fewer than `rate` remain in it. Rejected requests
    /// count as arrivals, so this can be later than the oldest arrival's expiry.
    fn until_slot_frees(&self, now: Instant, rate: usize) -> Duration {
        let index = self.arrivals.len().saturating_sub(rate);
        self.arrivals.get(index).map_or(Duration::ZERO, |&t| {
            (t + WINDOW).saturating_duration_since(now)
        })
    }
}

enum Admission {
    Rejected { retry_in: Duration },
    Accepted { delay: Option<Duration> },
}

impl Stub {
    pub fn new(args: &GeoStubArgs) -> Result<Self, String> {
        let rng = args
            .seed
            .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
        Ok(Stub(Arc::new(Shared {
            rate: args.rate as usize,
            hiccup_prob: args.hiccup_prob,
            hiccup_max: args.hiccup_max,
            places: Places::open(args.mmdb.as_deref())?,
            ledger: Mutex::new(Ledger {
                window: Window::default(),
                stats: Stats::default(),
                rng,
                told_to_wait_until: None,
            }),
        })))
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // Nothing panics under the lock; were it to, the counters would still be worth reading.
        self.0.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a request in and decides its fate before anything else about it is looked at,
    /// as the real API does: a malformed request still uses up a slot.
    fn admit(&self) -> Admission {
        let mut guard = self.ledger();
        let ledger = &mut *guard;
        // Read the clock under the lock, so that arrivals enter the window in order.
        let now = Instant::now();
        let in_window = ledger.window.arrive(now);
        let stats = &mut ledger.stats;
        stats.requests += 1;
        stats.max_in_window = stats.max_in_window.max(in_window as u64);
        if ledger.told_to_wait_until.is_some_and(|until| now < until) {
            stats.early += 1;
        }
        if in_window > self.0.rate {
            stats.rejected += 1;
            let retry_in = ledger.window.until_slot_frees(now, self.0.rate);
            let until = now + retry_in;
            if ledger.told_to_wait_until.is_none_or(|t| t < until) {
                ledger.told_to_wait_until = Some(until);
            }
            return Admission::Rejected { retry_in };
        }
        let delay = ledger.draw_hiccup(self.0.hiccup_prob, self.0.hiccup_max);
        Admission::Accepted { delay }
    }

    /// Answers one lookup: admission, maybe a hiccup, then the address in the given shape.
    async fn answer(&self, raw_ip: &str, shape: fn(IpAddr, &Place) -> Value) -> Response {
        match self.admit() {
            Admission::Rejected { retry_in } => return too_many_requests(retry_in),
            // Only this request's task sleeps; the lock is not held and other requests proceed.
            Admission::Accepted { delay: Some(delay) } => tokio::time::sleep(delay).await,
            Admission::Accepted { delay: None } => {}
        }
        let Ok(ip) = raw_ip.parse::<IpAddr>() else {
            self.ledger().stats.bad_requests += 1;
            return error(
                StatusCode::BAD_REQUEST,
                format!("{raw_ip:?} is not an IP address"),
            );
        };
        match self.0.places.locate(ip) {
            Ok(place) => {
                self.ledger().stats.served += 1;
                Json(shape(ip, &place)).into_response()
            }
            Err(e) => {
                tracing::warn!(%ip, error = %e, "geoip stub lookup failed");
                error(StatusCode::INTERNAL_SERVER_ERROR, e)
            }
        }
    }
}

impl Ledger {
    /// Decides whether an accepted request stalls, and for how long (uniform in `[0, max]`).
    fn draw_hiccup(&mut self, probability: f64, max: Duration) -> Option<Duration> {
        // `f64()` is in [0, 1): probability 0 never stalls, probability 1 always does.
        if self.rng.f64() >= probability {
            return None;
        }
        self.stats.hiccups += 1;
        let max_nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        Some(Duration::from_nanos(self.rng.u64(0..=max_nanos)))
    }
}

#[derive(Deserialize)]
struct InfoQuery {
    ip: Option<String>,
}

/// `GET /info?ip=`: the workivate shape, nested, with `location: null` when there is none.
async fn info(State(stub): State<Stub>, Query(query): Query<InfoQuery>) -> Response {
    stub.answer(query.ip.as_deref().unwrap_or(""), info_body)
        .await
}

/// `GET /json/{ip}`: the freegeoip shape, flat, with empty strings and zeros for no location.
async fn freegeoip(State(stub): State<Stub>, Path(ip): Path<String>) -> Response {
    stub.answer(&ip, freegeoip_body).await
}

async fn stats(State(stub): State<Stub>) -> Json<Stats> {
    Json(stub.ledger().stats)
}

fn info_body(_ip: IpAddr, place: &Place) -> Value {
    let location = place.location.as_ref().map(|l| {
        json!({
            "accuracy_radius": l.accuracy_radius,
            "latitude": l.latitude,
            "longitude": l.longitude,
            "metro_code": l.metro_code,
            "time_zone": l.time_zone,
        })
    });
    json!({
        "city": place.city,
        "country": {"iso_code": place.country_code, "name": place.country_name},
        "location": location,
    })
}

fn freegeoip_body(ip: IpAddr, place: &Place) -> Value {
    let location = place.location.as_ref();
    json!({
        "ip": ip.to_string(),
        "country_code": place.country_code,
        "country_name": place.country_name,
        "region_code": place.region_code,
        "region_name": place.region_name,
        "city": place.city,
        "zip_code": place.zip_code,
        "time_zone": location.map_or("", |l| l.time_zone.as_str()),
        "latitude": location.map_or(0.0, |l| l.latitude),
        "longitude": location.map_or(0.0, |l| l.longitude),
        "metro_code": location.and_then(|l| l.metro_code).unwrap_or(0),
    })
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The real API's 429; clients wait `period_remaining` seconds before calling again.
fn too_many_requests(retry_in: Duration) -> Response {
    let body = json!({
        "error": "rate limit exceeded",
        "period_remaining": retry_in.as_secs_f64(),
    });
    (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response()
}

/// Where an address is, in the terms both response shapes need. The default is "nowhere".
#[derive(Debug, Default, PartialEq)]
struct Place {
    city: String,
    region_code: String,
    region_name: String,
    zip_code: String,
    country_code: String,
    country_name: String,
    location: Option<Location>,
}

#[derive(Debug, PartialEq)]
struct Location {
    latitude: f64,
    longitude: f64,
    accuracy_radius: u16,
    metro_code: Option<u16>,
    time_zone: String,
}

/// Where answers come from.
enum Places {
    Builtin,
    Mmdb(maxminddb::Reader<Vec<u8>>),
}

impl Places {
    fn open(mmdb: Option<&std::path::Path>) -> Result<Self, String> {
        let Some(path) = mmdb else {
            return Ok(Places::Builtin);
        };
        maxminddb::Reader::open_readfile(path)
            .map(Places::Mmdb)
            .map_err(|e| format!("cannot open the database {}: {e}", path.display()))
    }

    fn describe(&self) -> String {
        match self {
            Places::Builtin => "built-in table".into(),
            Places::Mmdb(reader) => reader.metadata().database_type.clone(),
        }
    }

    fn locate(&self, ip: IpAddr) -> Result<Place, String> {
        // `::ffff:8.8.8.8` is 8.8.8.8 to the real API too.
        let ip = ip.to_canonical();
        if !is_public(ip) {
            return Ok(Place::default());
        }
        match self {
            Places::Builtin => Ok(builtin_place(ip)),
            Places::Mmdb(reader) => mmdb_place(reader, ip),
        }
    }
}

/// Whether an address can be on the map at all. Private, loopback, link-local, unspecified,
/// multicast, documentation and other reserved ranges have no location in any database, and
/// clients must cope with that, so the built-in table must not invent one for them.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || a >= 240 // reserved for future use
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 192 && b == 0 && c == 0); // IETF protocol assignments
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let [first, second, ..] = ip.segments();
    // Only 2000::/3 is global unicast; loopback, unspecified, link-local, unique-local and
    // multicast all lie outside it. Within it, 2001:db8::/32 is for documentation.
    let global_unicast = first & 0xe000 == 0x2000;
    global_unicast && !(first == 0x2001 && second == 0x0db8)
}

/// City, country ISO code, country name, latitude, longitude, IANA time zone.
type City = (
    &'static str,
    &'static str,
    &'static str,
    f64,
    f64,
    &'static str,
);

/// Real cities on every inhabited continent, so that answers look like real ones.
#[rustfmt::skip]
const CITIES: [City; 12] = [
    ("New York",      "US", "United States",   40.7128,  -74.0060, "America/New_York"),
    ("San Francisco", "US", "United States",   37.7749, -122.4194, "America/Los_Angeles"),
    ("Toronto",       "CA", "Canada",          43.6532,  -79.3832, "America/Toronto"),
    ("São Paulo",     "BR", "Brazil",         -23.5505,  -46.6333, "America/Sao_Paulo"),
    ("London",        "GB", "United Kingdom",  51.5074,   -0.1278, "Europe/London"),
    ("Paris",         "FR", "France",          48.8566,    2.3522, "Europe/Paris"),
    ("Berlin",        "DE", "Germany",         52.5200,   13.4050, "Europe/Berlin"),
    ("Lagos",         "NG", "Nigeria",          6.5244,    3.3792, "Africa/Lagos"),
    ("Mumbai",        "IN", "India",           19.0760,   72.8777, "Asia/Kolkata"),
    ("Singapore",     "SG", "Singapore",        1.3521,  103.8198, "Asia/Singapore"),
    ("Tokyo",         "JP", "Japan",           35.6762,  139.6503, "Asia/Tokyo"),
    ("Sydney",        "AU", "Australia",      -33.8688,  151.2093, "Australia/Sydney"),
];

/// Picks a city from the address alone, so that an address always gets the same answer (in
/// every process and every run) while neighbouring addresses spread over the table.
fn builtin_place(ip: IpAddr) -> Place {
    let octets = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let index = fnv1a(&octets) % CITIES.len() as u64;
    let (city, country_code, country_name, latitude, longitude, time_zone) = CITIES[index as usize];
    Place {
        city: city.into(),
        country_code: country_code.into(),
        country_name: country_name.into(),
        location: Some(Location {
            latitude,
            longitude,
            accuracy_radius: BUILTIN_ACCURACY_KM,
            metro_code: None,
            time_zone: time_zone.into(),
        }),
        ..Place::default()
    }
}

/// FNV-1a: stable across Rust versions and processes, unlike the std hashers.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Reads a GeoLite2/GeoIP2 City record; an address the database does not hold is "nowhere".
fn mmdb_place(reader: &maxminddb::Reader<Vec<u8>>, ip: IpAddr) -> Result<Place, String> {
    if ip.is_ipv6() && reader.metadata().ip_version == 4 {
        // An IPv4-only database knows nothing of IPv6, and the reader would call it an error.
        return Ok(Place::default());
    }
    let record = reader
        .lookup(ip)
        .and_then(|found| found.decode::<geoip2::City>())
        .map_err(|e| e.to_string())?;
    let Some(record) = record else {
        return Ok(Place::default());
    };
    let english = |names: &geoip2::Names| names.english.unwrap_or_default().to_string();
    let region = record.subdivisions.first();
    let l = &record.location;
    let location = match (l.latitude, l.longitude) {
        (Some(latitude), Some(longitude)) => Some(Location {
            latitude,
            longitude,
            accuracy_radius: l.accuracy_radius.unwrap_or(0),
            metro_code: l.metro_code,
            time_zone: l.time_zone.unwrap_or_default().into(),
        }),
        _ => None,
    };
    Ok(Place {
        city: english(&record.city.names),
        region_code: region.and_then(|r| r.iso_code).unwrap_or_default().into(),
        region_name: region.map(|r| english(&r.names)).unwrap_or_default(),
        zip_code: record.postal.code.unwrap_or_default().into(),
        country_code: record.country.iso_code.unwrap_or_default().into(),
        country_name: english(&record.country.names),
        location,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GeoStubArgs,
    }

    #[test]
    fn flags_are_checked() {
        let args = Cli::try_parse_from(["stub", "--hiccup-max", "300ms"])
            .unwrap()
            .args;
        assert_eq!(args.rate, 5);
        assert_eq!(args.hiccup_max, Duration::from_millis(300));
        assert!(Cli::try_parse_from(["stub", "--rate", "0"]).is_err());
        assert!(Cli::try_parse_from(["stub", "--hiccup-prob", "1.5"]).is_err());
        assert!(Cli::try_parse_from(["stub", "--hiccup-prob", "NaN"]).is_err());
    }

    #[test]
    fn window_slides_and_counts_rejections() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut window = Window::default();
        for (i, ms) in [0, 100, 200, 300].into_iter().enumerate() {
            assert_eq!(window.arrive(at(ms)), i + 1);
        }
        // At rate 3 the fourth arrival was one too many; the second must leave for a slot.
        assert_eq!(
            window.until_slot_frees(at(300), 3),
            Duration::from_millis(800)
        );
        // The arrival at 0 has left the window a whole second later.
        assert_eq!(window.arrive(at(1000)), 4);
        assert_eq!(window.arrive(at(1250)), 3);
    }

    #[test]
    fn reserved_addresses_have_no_location() {
        for ip in [
            "10.0.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "224.0.0.1",
            "100.64.0.1",
            "192.0.2.1",
            "240.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:192.168.0.1",
        ] {
            let place = Places::Builtin.locate(ip.parse().unwrap()).unwrap();
            assert_eq!(place, Place::default(), "{ip}");
        }
    }

    #[test]
    fn builtin_table_is_stable_and_spread() {
        let city = |ip: &str| Places::Builtin.locate(ip.parse().unwrap()).unwrap().city;
        assert_eq!(city("8.8.8.8"), city("8.8.8.8"));
        assert_eq!(city("8.8.8.8"), city("::ffff:8.8.8.8"));
        assert!(!city("2606:4700::1111").is_empty());
        let seen: std::collections::BTreeSet<String> =
            (0..=255).map(|i| city(&format!("81.2.69.{i}"))).collect();
        assert_eq!(seen.len(), CITIES.len());
    }
}
