//! The events tables: events by id, newest-first indexes (by time, and by city, country and
//! ISO code once located), and the events still waiting for geolocation.

use std::future::Future;
use std::ops::Bound;
use std::path::Path;

use crate::codec;
use crate::protocol::events::{Event, EventFilter};
use crate::store::{key, Batch, Direction, Schema, Store, StoreError};

pub const EVENTS: &str = "events";
/// `created_at ++ id`
pub const BY_CREATED: &str = "events_by_created";
/// `lowercase value ++ 0x00 ++ created_at ++ id`, written once the event is located.
pub const BY_CITY: &str = "events_by_city";
pub const BY_COUNTRY: &str = "events_by_country";
pub const BY_ISO: &str = "events_by_iso";
/// id -> ip, for every event whose geolocation is still pending: what a restart resumes.
pub const PENDING: &str = "events_pending";
/// id -> rounds of lookups the geo-throttle gave up on (u64), for pending events that had any:
/// on disk so that a restart does not grant an event a fresh allowance.
pub const GEO_ROUNDS: &str = "events_geo_rounds";
pub const SCHEMA: Schema = Schema {
    version: 2,
    tables: &[
        EVENTS, BY_CREATED, BY_CITY, BY_COUNTRY, BY_ISO, PENDING, GEO_ROUNDS,
    ],
};

pub struct EventStore {
    store: Store,
}

fn tail(e: &Event) -> Vec<u8> {
    [&key::i64(e.created_at)[..], e.id.as_bytes()].concat()
}

fn value_prefix(value: &str) -> Vec<u8> {
    [value.to_lowercase().as_bytes(), &[0]].concat()
}

/// The geo index entries an event has.
fn geo_keys(e: &Event) -> Vec<(&'static str, Vec<u8>)> {
    let Some(geo) = &e.geo else { return Vec::new() };
    [
        (BY_CITY, &geo.city),
        (BY_COUNTRY, &geo.country_name),
        (BY_ISO, &geo.iso_code),
    ]
    .into_iter()
    .filter_map(|(table, v)| {
        v.as_ref()
            .map(|v| (table, [value_prefix(v), tail(e)].concat()))
    })
    .collect()
}

impl EventStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            store: Store::open(path, SCHEMA)?,
        })
    }

    pub fn insert(
        &self,
        e: &Event,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let mut batch = Batch::new();
        match codec::encode(e) {
            Ok(bytes) => batch.put(EVENTS, e.id.as_bytes().to_vec(), bytes),
            Err(err) => tracing::error!(event = %e.id, "cannot encode event: {err}"),
        }
        batch.put(BY_CREATED, tail(e), Vec::new());
        batch.put(PENDING, e.id.as_bytes().to_vec(), e.ip.as_bytes().to_vec());
        self.store.commit(batch)
    }

    /// Records the located events (no longer pending) and their geo index entries.
    pub fn located(
        &self,
        events: &[Event],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let mut batch = Batch::new();
        for e in events {
            if let Ok(bytes) = codec::encode(e) {
                batch.put(EVENTS, e.id.as_bytes().to_vec(), bytes);
            }
            for (table, k) in geo_keys(e) {
                batch.put(table, k, Vec::new());
            }
            batch.delete(PENDING, e.id.as_bytes().to_vec());
            batch.delete(GEO_ROUNDS, e.id.as_bytes().to_vec());
        }
        self.store.commit(batch)
    }

    /// Rounds of lookups that failed for the event so far.
    pub fn geo_rounds(&self, id: &str) -> Result<u64, StoreError> {
        Ok(self
            .store
            .get(GEO_ROUNDS, id.as_bytes())?
            .and_then(|v| key::to_u64(&v))
            .unwrap_or(0))
    }

    /// Records how many rounds failed for each (still pending) event.
    pub fn set_geo_rounds(
        &self,
        rounds: &[(String, u64)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let mut batch = Batch::new();
        for (id, n) in rounds {
            batch.put(GEO_ROUNDS, id.as_bytes().to_vec(), key::u64(*n).to_vec());
        }
        self.store.commit(batch)
    }

    pub fn get(&self, id: &str) -> Result<Option<Event>, StoreError> {
        self.store
            .get(EVENTS, id.as_bytes())?
            .map(|b| decode(&b))
            .transpose()
    }

    /// (event id, ip) of every event still waiting for geolocation.
    pub fn pending(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        self.store.visit(
            PENDING,
            (Bound::Unbounded, Bound::Unbounded),
            Direction::Forward,
            |k, v| {
                out.push((
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                ));
                true
            },
        )?;
        Ok(out)
    }

    /// One page, newest first, and the number of matches. A city, country or ISO code filter
    /// walks only that index. When the walked keys answer every condition (the date range and
    /// that one value), matches are counted from the keys and only the page's records are
    /// read; other conditions (the status code, a second place filter) are checked on each
    /// record.
    pub fn fetch(&self, f: &EventFilter) -> Result<(Vec<Event>, u64), StoreError> {
        let places = [
            (BY_ISO, &f.iso_code),
            (BY_CITY, &f.city_name),
            (BY_COUNTRY, &f.country_name),
        ];
        let (table, prefix) = places
            .iter()
            .find_map(|(table, v)| v.as_ref().map(|v| (*table, value_prefix(v))))
            .unwrap_or((BY_CREATED, Vec::new()));
        let lo = [
            prefix.clone(),
            key::i64(f.from.unwrap_or(i64::MIN)).to_vec(),
        ]
        .concat();
        let hi = match f.to {
            Some(to) if to < i64::MAX => Some([prefix.clone(), key::i64(to + 1).to_vec()].concat()),
            _ if !prefix.is_empty() => key::prefix_range(&prefix).1,
            _ => None,
        };
        let range = || {
            let upper = match &hi {
                Some(h) => Bound::Excluded(h.as_slice()),
                None => Bound::Unbounded,
            };
            (Bound::Included(lo.as_slice()), upper)
        };
        let id_of = |k: &[u8]| String::from_utf8_lossy(&k[prefix.len() + 8..]).into_owned();
        let (offset, size) = (f.page.offset(), f.page.size);
        let place_filters = places.iter().filter(|(_, v)| v.is_some()).count();
        let keys_suffice = f.status_code.is_none() && place_filters <= 1;

        if keys_suffice {
            // Every event is in the time index, so with no condition its length is the count.
            let whole_table = prefix.is_empty() && f.from.is_none() && f.to.is_none();
            let known_total = if whole_table {
                Some(self.store.len(BY_CREATED)?)
            } else {
                None
            };
            if known_total.is_some_and(|n| offset >= n) {
                return Ok((Vec::new(), known_total.unwrap_or(0)));
            }
            let mut seen = 0u64;
            let mut ids = Vec::new();
            self.store
                .visit(table, range(), Direction::Reverse, |k, _| {
                    if seen >= offset && (ids.len() as u64) < size {
                        ids.push(k[prefix.len() + 8..].to_vec());
                    }
                    seen += 1;
                    known_total.is_none() || (ids.len() as u64) < size
                })?;
            let mut page = Vec::with_capacity(ids.len());
            for bytes in self.store.get_many(EVENTS, &ids)?.into_iter().flatten() {
                page.push(decode(&bytes)?);
            }
            return Ok((page, known_total.unwrap_or(seen)));
        }

        let matches = |e: &Event| {
            // Lowercased as the index keys are: ASCII-only folding misses "SÃO PAULO".
            let same = |want: &Option<String>, have: Option<&String>| {
                want.as_ref()
                    .is_none_or(|w| have.is_some_and(|h| h.to_lowercase() == w.to_lowercase()))
            };
            let geo = e.geo.as_ref();
            same(&f.city_name, geo.and_then(|g| g.city.as_ref()))
                && same(&f.country_name, geo.and_then(|g| g.country_name.as_ref()))
                && same(&f.iso_code, geo.and_then(|g| g.iso_code.as_ref()))
                && f.status_code.is_none_or(|s| e.status_code == Some(s))
        };
        let mut total = 0u64;
        let mut page = Vec::new();
        let mut failure = None;
        self.store
            .visit(table, range(), Direction::Reverse, |k, _| {
                match self.get(&id_of(k)) {
                    Ok(Some(e)) if matches(&e) => {
                        if total >= offset && (page.len() as u64) < size {
                            page.push(e);
                        }
                        total += 1;
                    }
                    Ok(_) => {}
                    Err(err) => {
                        failure = Some(err);
                        return false;
                    }
                }
                true
            })?;
        match failure {
            Some(e) => Err(e),
            None => Ok((page, total)),
        }
    }
}

fn decode(bytes: &[u8]) -> Result<Event, StoreError> {
    codec::decode(bytes).map_err(|e| StoreError::Corrupt {
        table: EVENTS.into(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::protocol::events::GeoStatus;
    use crate::protocol::geo::Geo;
    use crate::protocol::page::Page;

    const PLACES: [(&str, &str, &str); 4] = [
        ("São Paulo", "Brazil", "BR"),
        ("Zürich", "Switzerland", "CH"),
        ("Kraków", "Poland", "PL"),
        ("Paris", "France", "FR"),
    ];

    fn event(n: usize, place: Option<usize>, status_code: Option<i64>) -> Event {
        Event {
            id: format!("{n:04}"),
            name: None,
            status_code,
            ip: "81.2.69.160".into(),
            created_at: 1_000 + n as i64,
            geo: place.map(|p| {
                let (city, country, iso) = PLACES[p];
                Geo {
                    city: Some(city.into()),
                    country_name: Some(country.into()),
                    iso_code: Some(iso.into()),
                    latitude: Some(0.0),
                    longitude: Some(0.0),
                    time_zone: None,
                }
            }),
            geo_status: match place {
                Some(_) => GeoStatus::Done,
                None => GeoStatus::Pending,
            },
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    /// A store holding `events`, located ones recorded as the actor records them.
    fn store_with(dir: &Path, events: &[Event]) -> EventStore {
        let store = EventStore::open(&dir.join("events.redb")).unwrap();
        runtime().block_on(async {
            for e in events {
                store.insert(e).await.unwrap();
            }
            let located: Vec<Event> = events.iter().filter(|e| e.geo.is_some()).cloned().collect();
            store.located(&located).await.unwrap();
        });
        store
    }

    fn filter() -> EventFilter {
        EventFilter {
            page: Page { num: 1, size: 100 },
            ..EventFilter::default()
        }
    }

    #[test]
    fn failed_rounds_survive_a_reopen_and_go_once_the_event_settles() {
        let dir = tempfile::tempdir().unwrap();
        let e = event(1, None, None);
        drop(store_with(dir.path(), std::slice::from_ref(&e)));
        {
            let store = EventStore::open(&dir.path().join("events.redb")).unwrap();
            runtime()
                .block_on(store.set_geo_rounds(&[(e.id.clone(), 2)]))
                .unwrap();
        }
        let store = EventStore::open(&dir.path().join("events.redb")).unwrap();
        assert_eq!(store.geo_rounds(&e.id).unwrap(), 2);
        assert_eq!(store.geo_rounds("never-failed").unwrap(), 0);
        let mut failed = e.clone();
        failed.geo_status = GeoStatus::Failed("no".into());
        runtime().block_on(store.located(&[failed])).unwrap();
        assert_eq!(store.geo_rounds(&e.id).unwrap(), 0);
        assert!(store.pending().unwrap().is_empty());
    }

    /// A store file as version 1 of the events schema left it (before `events_geo_rounds`),
    /// written with redb directly so that it does not depend on today's code: the meta table
    /// `Store` keeps, version 1's tables, and one event that `insert` recorded as pending.
    fn write_version_1_file(path: &Path, id: &str, ip: &str, record: &[u8], created_at: i64) {
        use redb::{Database, TableDefinition};
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(TableDefinition::<&str, u64>::new("__meta"))
                .unwrap();
            meta.insert("schema_version", 1).unwrap();
            let table = |name| TableDefinition::<&[u8], &[u8]>::new(name);
            for name in [BY_CITY, BY_COUNTRY, BY_ISO] {
                txn.open_table(table(name)).unwrap();
            }
            let mut events = txn.open_table(table(EVENTS)).unwrap();
            events.insert(id.as_bytes(), record).unwrap();
            let mut by_created = txn.open_table(table(BY_CREATED)).unwrap();
            let created = [&key::i64(created_at)[..], id.as_bytes()].concat();
            by_created.insert(created.as_slice(), &[][..]).unwrap();
            let mut pending = txn.open_table(table(PENDING)).unwrap();
            pending.insert(id.as_bytes(), ip.as_bytes()).unwrap();
        }
        txn.commit().unwrap();
    }

    fn schema_version_on_disk(path: &Path) -> Option<u64> {
        use redb::{Database, ReadableDatabase, TableDefinition};
        let db = Database::open(path).unwrap();
        let txn = db.begin_read().unwrap();
        let meta = txn
            .open_table(TableDefinition::<&str, u64>::new("__meta"))
            .unwrap();
        let version = meta.get("schema_version").unwrap().map(|v| v.value());
        version
    }

    #[test]
    fn a_version_1_file_opens_as_version_2_with_its_pending_event_and_no_rounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.redb");
        let id = "0196a8c2-7f00-7000-8000-000000000001";
        let created_at = 1_763_000_000_000_000;
        // The event's record in bincode, standard config, as version 1 encoded it (the Event
        // record has not changed since): id, Some("signup"), Some(200), ip,
        // created_at (zigzag varint), no geo, Pending.
        let record: Vec<u8> = [
            &[36][..],
            id.as_bytes(),
            b"\x01\x06signup",
            b"\x01\xfb\x90\x01",
            b"\x0b81.2.69.160",
            b"\xfd\x00\x60\x7a\xd9\xe0\x86\x0c\x00",
            b"\x00",
            b"\x00",
        ]
        .concat();
        write_version_1_file(&path, id, "81.2.69.160", &record, created_at);

        let store = EventStore::open(&path).unwrap();
        assert_eq!(
            store.pending().unwrap(),
            [(id.to_string(), "81.2.69.160".to_string())]
        );
        assert_eq!(store.geo_rounds(id).unwrap(), 0);
        let e = store.get(id).unwrap().expect("the event");
        assert_eq!(
            e,
            Event {
                id: id.into(),
                name: Some("signup".into()),
                status_code: Some(200),
                ip: "81.2.69.160".into(),
                created_at,
                geo: None,
                geo_status: GeoStatus::Pending,
            }
        );
        let (listed, total) = store.fetch(&filter()).unwrap();
        assert_eq!((listed, total), (vec![e], 1));
        // The new table is usable, and the upgrade is recorded.
        runtime()
            .block_on(store.set_geo_rounds(&[(id.to_string(), 1)]))
            .unwrap();
        assert_eq!(store.geo_rounds(id).unwrap(), 1);
        drop(store);
        assert_eq!(schema_version_on_disk(&path), Some(2));
    }

    #[test]
    fn place_filters_fold_case_beyond_ascii() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(
            dir.path(),
            &[
                event(1, Some(0), Some(1)),
                event(2, Some(0), Some(2)),
                event(3, Some(3), Some(1)),
            ],
        );
        let total = |f: EventFilter| store.fetch(&f).unwrap().1;
        for city in ["SÃO PAULO", "são paulo", "São Paulo"] {
            let by_city = EventFilter {
                city_name: Some(city.into()),
                ..filter()
            };
            assert_eq!(total(by_city.clone()), 2, "{city}");
            // A second condition is checked on the record rather than the key.
            let with_status = EventFilter {
                status_code: Some(1),
                ..by_city.clone()
            };
            assert_eq!(total(with_status), 1, "{city} with a status code");
            let with_iso = EventFilter {
                iso_code: Some("br".into()),
                ..by_city
            };
            assert_eq!(total(with_iso), 2, "{city} with an ISO code");
        }
    }

    #[test]
    fn counting_reads_only_the_records_of_the_page() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<Event> = (0..30).map(|n| event(n, Some(n % 2), None)).collect();
        let store = store_with(dir.path(), &events);
        // Every record but the newest three is unreadable: a fetch that decoded records it
        // does not return would fail.
        let mut batch = Batch::new();
        for e in &events[..27] {
            batch.put(EVENTS, e.id.as_bytes().to_vec(), b"not a record".to_vec());
        }
        runtime().block_on(store.store.commit(batch)).unwrap();
        let page = Page { num: 1, size: 3 };
        let (got, total) = store.fetch(&EventFilter { page, ..filter() }).unwrap();
        assert_eq!(total, 30);
        let ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["0029", "0028", "0027"]);
        let ranged = EventFilter {
            from: Some(1_010),
            to: Some(1_029),
            page,
            ..filter()
        };
        assert_eq!(store.fetch(&ranged).unwrap().1, 20);
        let by_country = EventFilter {
            country_name: Some("SWITZERLAND".into()),
            page: Page { num: 1, size: 1 },
            ..filter()
        };
        let (got, total) = store.fetch(&by_country).unwrap();
        assert_eq!((got[0].id.as_str(), total), ("0029", 15));
        assert!(
            store
                .fetch(&EventFilter {
                    page: Page { num: 2, size: 3 },
                    ..filter()
                })
                .is_err(),
            "the corrupt records are really unreadable"
        );
    }

    fn spelled(i: usize, upper: bool) -> String {
        let (city, _, _) = PLACES[i];
        if upper {
            city.to_uppercase()
        } else {
            city.to_lowercase()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whichever way a fetch is answered (from keys or from records), its page and total
        /// are those of a plain filter over every event, newest first.
        #[test]
        fn fetch_agrees_with_a_plain_filter(
            events in proptest::collection::vec((proptest::option::of(0usize..4), proptest::option::of(0i64..3)), 0..40),
            from in proptest::option::of(1_000i64..1_040),
            to in proptest::option::of(1_000i64..1_040),
            city in proptest::option::of((0usize..4, any::<bool>())),
            iso in proptest::option::of(0usize..4),
            status_code in proptest::option::of(0i64..3),
            page in (1u64..4, 1u64..8),
        ) {
            let events: Vec<Event> = events
                .into_iter()
                .enumerate()
                .map(|(n, (place, code))| event(n, place, code))
                .collect();
            let dir = tempfile::tempdir().unwrap();
            let store = store_with(dir.path(), &events);
            let f = EventFilter {
                from,
                to,
                city_name: city.map(|(i, upper)| spelled(i, upper)),
                country_name: None,
                iso_code: iso.map(|i| PLACES[i].2.to_lowercase()),
                status_code,
                page: Page { num: page.0, size: page.1 },
            };
            let wanted: Vec<&Event> = events
                .iter()
                .rev()
                .filter(|e| from.is_none_or(|t| e.created_at >= t) && to.is_none_or(|t| e.created_at <= t))
                .filter(|e| status_code.is_none_or(|s| e.status_code == Some(s)))
                .filter(|e| {
                    let geo = e.geo.as_ref();
                    city.is_none_or(|(i, _)| geo.is_some_and(|g| g.city.as_deref() == Some(PLACES[i].0)))
                        && iso.is_none_or(|i| geo.is_some_and(|g| g.iso_code.as_deref() == Some(PLACES[i].2)))
                })
                .collect();
            let (got, total) = store.fetch(&f).unwrap();
            prop_assert_eq!(total, wanted.len() as u64);
            let expected: Vec<&Event> = wanted
                .into_iter()
                .skip(f.page.offset() as usize)
                .take(f.page.size as usize)
                .collect();
            prop_assert_eq!(got.iter().collect::<Vec<_>>(), expected);
        }
    }
}
