//! `troupe geoip-stub`, the stand-in for the external geolocation API, run as a real process:
//! its two response shapes, its rate limit, its hiccups, and lookups from a MaxMind database.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use troupe_tests::{eventually, free_port, troupe_bin};

/// A running stub. Dropping it kills the process, so a failing test leaves nothing behind;
/// the failing test also gets the stub's log printed.
struct Stub {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Stub {
    async fn start(extra: &[&str]) -> Stub {
        let dir = tempfile::tempdir().unwrap();
        let http = format!("127.0.0.1:{}", free_port());
        let file = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let child = Command::new(troupe_bin())
            .args(["geoip-stub", "--http", &http])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file("stdout"))
            .stderr(file("stderr"))
            .spawn()
            .expect("start troupe geoip-stub");
        let stub = Stub {
            child,
            base: format!("http://{http}"),
            dir,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        };
        let (client, url) = (stub.client.clone(), stub.url("/healthz"));
        eventually(Duration::from_secs(10), "geoip stub /healthz", || {
            let request = client.get(&url).send();
            async move { matches!(request.await, Ok(r) if r.status() == 200) }
        })
        .await;
        stub
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn stats(&self) -> Value {
        let (status, stats) = self.get("/stats").await;
        assert_eq!(status, 200);
        stats
    }

    fn output(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// SIGTERM, as a supervisor would stop it, and a bounded wait for the exit.
    fn terminate(&mut self) -> ExitStatus {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "stub ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- geoip stub log ----\n{}", self.output("stderr"));
        }
    }
}

fn assert_no_location(info: &Value) {
    assert_eq!(info["city"], "", "{info}");
    assert_eq!(info["country"]["iso_code"], "", "{info}");
    assert_eq!(info["country"]["name"], "", "{info}");
    assert!(info["location"].is_null(), "{info}");
}

#[tokio::test]
async fn both_shapes_locate_an_address_the_same_way() {
    let mut stub = Stub::start(&["--rate", "1000"]).await;

    let (status, info) = stub.get("/info?ip=8.8.8.8").await;
    assert_eq!(status, 200, "{info}");
    assert_ne!(info["city"], "", "{info}");
    assert_eq!(info["country"]["iso_code"].as_str().unwrap().len(), 2);
    assert!(info["location"]["latitude"].is_f64(), "{info}");
    assert!(info["location"]["time_zone"].is_string(), "{info}");
    assert_eq!(
        stub.get("/info?ip=8.8.8.8").await.1,
        info,
        "stable across calls"
    );

    let (status, flat) = stub.get("/json/8.8.8.8").await;
    assert_eq!(status, 200, "{flat}");
    assert_eq!(flat["ip"], "8.8.8.8");
    assert_eq!(flat["city"], info["city"]);
    assert_eq!(flat["country_code"], info["country"]["iso_code"]);
    assert_eq!(flat["country_name"], info["country"]["name"]);
    assert_eq!(flat["latitude"], info["location"]["latitude"]);
    assert_eq!(flat["time_zone"], info["location"]["time_zone"]);

    for path in ["/info?ip=not-an-ip", "/info", "/json/999.1.1.1"] {
        let (status, body) = stub.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }

    for ip in ["10.0.0.1", "127.0.0.1"] {
        let (status, info) = stub.get(&format!("/info?ip={ip}")).await;
        assert_eq!(status, 200, "{ip}");
        assert_no_location(&info);
        let (status, flat) = stub.get(&format!("/json/{ip}")).await;
        assert_eq!(status, 200, "{ip}");
        assert_eq!(flat["city"], "", "{flat}");
        assert_eq!(flat["country_code"], "", "{flat}");
        assert_eq!(flat["latitude"], 0.0, "{flat}");
    }

    let stats = stub.stats().await;
    assert_eq!(stats["requests"], 10, "{stats}");
    assert_eq!(stats["served"], 7, "{stats}");
    assert_eq!(stats["bad_requests"], 3, "{stats}");
    assert_eq!(stats["rejected"], 0, "{stats}");

    assert!(stub.terminate().success());
    assert_eq!(stub.output("stdout"), "", "the stub logs to stderr only");
}

#[tokio::test]
async fn rate_limit_counts_every_request_received() {
    let stub = Stub::start(&["--rate", "5"]).await;

    // Both endpoints share the one limit.
    let paths: Vec<String> = (1..=12)
        .map(|i| match i % 2 {
            0 => format!("/info?ip=8.8.4.{i}"),
            _ => format!("/json/1.1.1.{i}"),
        })
        .collect();
    let answers = futures::future::join_all(paths.iter().map(|p| stub.get(p))).await;

    let ok = answers.iter().filter(|(status, _)| *status == 200).count();
    let limited: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 429)
        .map(|(_, body)| body)
        .collect();
    assert_eq!((ok, limited.len()), (5, 7), "{answers:?}");
    for body in limited {
        assert_eq!(body["error"], "rate limit exceeded");
        let wait = body["period_remaining"].as_f64().unwrap();
        assert!(wait > 0.0 && wait <= 1.0, "period_remaining {wait}");
    }

    let stats = stub.stats().await;
    assert_eq!(stats["requests"], 12, "{stats}");
    assert_eq!(stats["served"], 5, "{stats}");
    assert_eq!(stats["rejected"], 7, "{stats}");
    assert_eq!(stats["max_in_window"], 12, "{stats}");
}

#[tokio::test]
async fn hiccups_delay_answers_without_holding_up_others() {
    let stub = Stub::start(&["--hiccup-prob", "1", "--hiccup-max", "300ms", "--seed", "1"]).await;

    // While the first request waits out its hiccup, the server answers others. (With seed 1
    // the first wait is about 160 ms, ample for a few polls.)
    let start = Instant::now();
    let first = tokio::spawn({
        let (client, url) = (stub.client.clone(), stub.url("/info?ip=8.8.8.8"));
        async move { client.get(url).send().await.unwrap().status() }
    });
    let (client, url) = (stub.client.clone(), stub.url("/stats"));
    eventually(Duration::from_secs(5), "the first request arrives", || {
        let request = client.get(&url).send();
        async move {
            let stats: Value = request.await.unwrap().json().await.unwrap();
            stats["requests"] == 1
        }
    })
    .await;
    assert_eq!(
        stub.stats().await["served"],
        0,
        "answered before its hiccup"
    );
    assert_eq!(first.await.unwrap(), 200);

    for _ in 0..2 {
        assert_eq!(stub.get("/json/8.8.8.8").await.0, 200);
    }
    let elapsed = start.elapsed();
    // Three waits of up to 300 ms each: clearly slower than loopback, clearly not stuck.
    assert!(
        elapsed >= Duration::from_millis(100),
        "no delay: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "too slow: {elapsed:?}");

    let stats = stub.stats().await;
    assert_eq!(stats["hiccups"], 3, "{stats}");
    assert_eq!(stats["served"], 3, "{stats}");
}

#[tokio::test]
async fn answers_from_a_maxmind_database() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("tiny-city.mmdb");
    std::fs::write(
        &db,
        mmdb::one_network([81, 2, 69, 0], 24, &mmdb::wellington()),
    )
    .unwrap();
    let stub = Stub::start(&["--rate", "1000", "--mmdb", db.to_str().unwrap()]).await;

    let (status, info) = stub.get("/info?ip=81.2.69.160").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["city"], "Wellington");
    assert_eq!(info["country"]["iso_code"], "NZ");
    assert_eq!(info["country"]["name"], "New Zealand");
    let location = &info["location"];
    assert_eq!(location["latitude"], -41.2866);
    assert_eq!(location["longitude"], 174.7756);
    assert_eq!(location["accuracy_radius"], 20);
    assert_eq!(location["metro_code"], Value::Null);
    assert_eq!(location["time_zone"], "Pacific/Auckland");

    let (status, flat) = stub.get("/json/81.2.69.160").await;
    assert_eq!(status, 200, "{flat}");
    assert_eq!(flat["region_code"], "WGN");
    assert_eq!(flat["region_name"], "Wellington");
    assert_eq!(flat["zip_code"], "6011");
    assert_eq!(flat["city"], "Wellington");

    // Outside the database's one network, and IPv6 in an IPv4-only database: nowhere.
    for ip in ["81.2.70.1", "2a00:1450::1"] {
        let (status, info) = stub.get(&format!("/info?ip={ip}")).await;
        assert_eq!(status, 200, "{ip}");
        assert_no_location(&info);
    }
}

/// Just enough of a MaxMind DB writer (format 2.0, IPv4 tree, 24-bit records) to hold one
/// network, so the `--mmdb` path is tested without a real database or a writer crate.
/// Layout: search tree, 16 zero bytes, data section, metadata marker, metadata map.
mod mmdb {
    const STRING: u8 = 2;
    const DOUBLE: u8 = 3;
    const UINT16: u8 = 5;
    const UINT32: u8 = 6;
    const MAP: u8 = 7;
    const UINT64: u8 = 9;
    const ARRAY: u8 = 11;

    /// A City record shaped like GeoLite2's.
    pub fn wellington() -> Vec<u8> {
        let names = |en: &str| map(&[("en", string(en))]);
        map(&[
            ("city", map(&[("names", names("Wellington"))])),
            (
                "country",
                map(&[("iso_code", string("NZ")), ("names", names("New Zealand"))]),
            ),
            (
                "location",
                map(&[
                    ("accuracy_radius", uint(UINT16, 20)),
                    ("latitude", double(-41.2866)),
                    ("longitude", double(174.7756)),
                    ("time_zone", string("Pacific/Auckland")),
                ]),
            ),
            ("postal", map(&[("code", string("6011"))])),
            (
                "subdivisions",
                array(&[map(&[
                    ("iso_code", string("WGN")),
                    ("names", names("Wellington")),
                ])]),
            ),
        ])
    }

    /// A database in which only `network/prefix` has data: `record`.
    pub fn one_network(network: [u8; 4], prefix: usize, record: &[u8]) -> Vec<u8> {
        // One node per bit of the prefix: the matching branch goes one node deeper (the last
        // one to the record, at data offset 0), the other to `node_count`, which means "none".
        let node_count = prefix;
        let bits = u32::from_be_bytes(network);
        let mut file = Vec::new();
        for depth in 0..prefix {
            let next = if depth + 1 == prefix {
                node_count + 16
            } else {
                depth + 1
            };
            let bit = (bits >> (31 - depth)) & 1;
            let (left, right) = if bit == 0 {
                (next, node_count)
            } else {
                (node_count, next)
            };
            for child in [left, right] {
                file.extend_from_slice(&(child as u32).to_be_bytes()[1..]);
            }
        }
        file.extend_from_slice(&[0; 16]);
        file.extend_from_slice(record);
        file.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        file.extend(map(&[
            ("binary_format_major_version", uint(UINT16, 2)),
            ("binary_format_minor_version", uint(UINT16, 0)),
            ("build_epoch", uint(UINT64, 1_700_000_000)),
            ("database_type", string("GeoLite2-City")),
            (
                "description",
                map(&[("en", string("troupe test database"))]),
            ),
            ("ip_version", uint(UINT16, 4)),
            ("languages", array(&[string("en")])),
            ("node_count", uint(UINT32, node_count as u64)),
            ("record_size", uint(UINT16, 24)),
        ]));
        file
    }

    /// The control byte(s): type and size; types above 7 take an extra byte.
    fn header(kind: u8, size: usize) -> Vec<u8> {
        let (size_bits, extension) = match size {
            0..=28 => (size as u8, None),
            29..=284 => (29, Some((size - 29) as u8)),
            _ => panic!("size {size} is too large for this little writer"),
        };
        let mut bytes = if kind <= 7 {
            vec![(kind << 5) | size_bits]
        } else {
            vec![size_bits, kind - 7]
        };
        bytes.extend(extension);
        bytes
    }

    fn string(s: &str) -> Vec<u8> {
        [header(STRING, s.len()), s.as_bytes().to_vec()].concat()
    }

    fn double(x: f64) -> Vec<u8> {
        [header(DOUBLE, 8), x.to_be_bytes().to_vec()].concat()
    }

    /// Unsigned integers are big-endian without leading zero bytes.
    fn uint(kind: u8, n: u64) -> Vec<u8> {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        [header(kind, bytes.len()), bytes].concat()
    }

    fn map(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut bytes = header(MAP, entries.len());
        for (key, value) in entries {
            bytes.extend(string(key));
            bytes.extend_from_slice(value);
        }
        bytes
    }

    fn array(items: &[Vec<u8>]) -> Vec<u8> {
        [header(ARRAY, items.len()), items.concat()].concat()
    }
}
