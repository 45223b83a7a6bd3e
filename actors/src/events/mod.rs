//! The events service (seed 001): stores each submitted event and answers at once; the event's
//! geolocation comes later from the geo-throttle and is recorded when it does.
//!
//! Events waiting for geolocation are in a durable table, so a restart resumes them. Events
//! from one address share one question to the geo-throttle. Addresses whose question could not
//! be asked (no geo-throttle, a timeout), or that the upstream kept failing on, are asked again
//! by a periodic sweep; after a few failed rounds the event is marked failed.

pub mod state;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use ractor::{pg, Actor, ActorProcessingErr, ActorRef};

use state::EventStore;

use crate::protocol::events::{
    Event, EventAccepted, EventError, EventLookup, EventPage, EventsMsg, GeoStatus, Located,
    NewEvent, Stored,
};
use crate::protocol::geo::{GeoAnswer, GeoMsg};
use crate::time::now_micros;
use crate::{groups, rpc};

pub const MAX_NAME_CHARS: usize = 120;
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Rounds of lookups (each up to `--geo-attempts` upstream calls, a sweep apart) an event gets
/// before it is marked failed: enough to ride out a short upstream outage, few enough that an
/// address the upstream keeps failing on does not stay pending forever.
const GEO_ROUNDS: u64 = 3;

pub struct EventsArgs {
    pub store_path: PathBuf,
    /// How long one question to the geo-throttle may take (its budget is small, queues long).
    pub geo_wait: Duration,
}

pub struct EventsState {
    events: EventStore,
    /// Addresses asked about, and the pending events waiting on each.
    asked: HashMap<String, Vec<String>>,
    geo_wait: Duration,
}

/// A submitted event that passed the rules: its name and status code.
type ValidEvent = (Option<String>, Option<i64>);
/// Field -> why, for each rule broken.
type FieldErrors = Vec<(String, String)>;

/// The events service's rules; each failure names its field.
pub fn validate(new: &NewEvent) -> Result<ValidEvent, FieldErrors> {
    let mut errors = Vec::new();
    if let Some(name) = &new.name {
        let n = name.chars().count();
        if n == 0 || n > MAX_NAME_CHARS {
            errors.push((
                "name".to_string(),
                format!("name must be 1 to {MAX_NAME_CHARS} characters; it is {n}"),
            ));
        }
    }
    let status_code = match new.status_code.as_deref().map(str::trim) {
        None => None,
        Some(s) => match s.parse::<i64>() {
            Ok(code) if !s.starts_with('+') => Some(code),
            _ => {
                errors.push((
                    "status_code".to_string(),
                    format!("status_code must be an integer or a string of digits, not {s:?}"),
                ));
                None
            }
        },
    };
    if errors.is_empty() {
        Ok((new.name.clone(), status_code))
    } else {
        Err(errors)
    }
}

pub struct EventsActor;

/// Messages handled and time busy, for `/metrics`.
static LOAD: crate::telemetry::LoadCounter = crate::telemetry::LoadCounter::new("events");

impl Actor for EventsActor {
    type Msg = EventsMsg;
    type State = EventsState;
    type Arguments = EventsArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<EventsMsg>,
        args: EventsArgs,
    ) -> Result<EventsState, ActorProcessingErr> {
        let events = EventStore::open(&args.store_path)?;
        pg::join(groups::EVENTS.into(), vec![myself.get_cell()]);
        myself.send_interval(SWEEP_EVERY, || EventsMsg::Sweep);
        Ok(EventsState {
            events,
            asked: HashMap::new(),
            geo_wait: args.geo_wait,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<EventsMsg>,
        state: &mut EventsState,
    ) -> Result<(), ActorProcessingErr> {
        let pending = ask_pending(&myself, state)?;
        if pending > 0 {
            tracing::info!(events = pending, "resuming geolocation of pending events");
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<EventsMsg>,
        msg: EventsMsg,
        state: &mut EventsState,
    ) -> Result<(), ActorProcessingErr> {
        let _busy = LOAD.busy();
        match msg {
            EventsMsg::Submit(new, reply) => {
                let (name, status_code) = match validate(&new) {
                    Ok(valid) => valid,
                    Err(errors) => {
                        let _ = reply.send(EventAccepted(Err(EventError::Invalid(errors))));
                        return Ok(());
                    }
                };
                let event = Event {
                    id: uuid::Uuid::now_v7().to_string(),
                    name,
                    status_code,
                    ip: new.ip,
                    created_at: now_micros(),
                    geo: None,
                    geo_status: GeoStatus::Pending,
                };
                let committed = state.events.insert(&event);
                let me = myself.clone();
                tokio::spawn(async move {
                    match committed.await {
                        Ok(()) => {
                            let _ = reply.send(EventAccepted(Ok(event.id.clone())));
                            // Only a stored event may be located: an answer must find its record.
                            let stored = Stored {
                                id: event.id,
                                ip: event.ip,
                            };
                            let _ = me.cast(EventsMsg::Stored(stored));
                        }
                        Err(e) => {
                            let failed = EventError::Storage(e.to_string());
                            let _ = reply.send(EventAccepted(Err(failed)));
                        }
                    }
                });
            }
            EventsMsg::Stored(stored) => ask(&myself, state, stored.ip, stored.id),
            EventsMsg::Get(id, reply) => {
                let _ = reply.send(EventLookup(
                    state
                        .events
                        .get(&id)
                        .map_err(|e| EventError::Storage(e.to_string())),
                ));
            }
            EventsMsg::Fetch(filter, reply) => {
                let _ = reply.send(EventPage(
                    state
                        .events
                        .fetch(&filter)
                        .map_err(|e| EventError::Storage(e.to_string())),
                ));
            }
            EventsMsg::Located(located) => record_location(state, located)?,
            EventsMsg::Sweep => {
                ask_pending(&myself, state)?;
            }
        }
        Ok(())
    }
}

/// Asks the geo-throttle about `ip` for event `id`, unless a question about it is out already.
fn ask(myself: &ActorRef<EventsMsg>, state: &mut EventsState, ip: String, id: String) {
    if let Some(waiting) = state.asked.get_mut(&ip) {
        waiting.push(id);
        return;
    }
    state.asked.insert(ip.clone(), vec![id]);
    let me = myself.clone();
    let wait = state.geo_wait;
    tokio::spawn(async move {
        let answer = rpc::call(groups::GEO, |r| GeoMsg::Locate(ip.clone(), r), wait)
            .await
            .map_err(|e| tracing::debug!(%ip, "geolocation not asked: {e}"))
            .ok();
        let _ = me.cast(EventsMsg::Located(Located { ip, answer }));
    });
}

/// Asks about every pending event not already being asked about; returns how many are pending.
fn ask_pending(
    myself: &ActorRef<EventsMsg>,
    state: &mut EventsState,
) -> Result<usize, ActorProcessingErr> {
    let waiting: HashSet<String> = state.asked.values().flatten().cloned().collect();
    let pending = state.events.pending()?;
    let count = pending.len();
    for (id, ip) in pending {
        if !waiting.contains(&id) {
            ask(myself, state, ip, id);
        }
    }
    Ok(count)
}

fn record_location(state: &mut EventsState, located: Located) -> Result<(), ActorProcessingErr> {
    let ids = state.asked.remove(&located.ip).unwrap_or_default();
    let answer = match located.answer {
        // The geo-throttle could not be asked: our outage, not the upstream's, so it costs the
        // events nothing; the sweep asks again.
        None => return Ok(()),
        Some(GeoAnswer(Err(failure))) if failure.retryable => {
            return count_failed_round(state, ids, &failure.reason)
        }
        Some(GeoAnswer(answer)) => answer,
    };
    let mut updated = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(mut event) = state.events.get(&id)? else {
            continue;
        };
        match &answer {
            Ok(geo) => {
                event.geo = Some(geo.clone());
                event.geo_status = GeoStatus::Done;
            }
            Err(failure) => event.geo_status = GeoStatus::Failed(failure.reason.clone()),
        }
        updated.push(event);
    }
    write_located(state, updated);
    Ok(())
}

/// The geo-throttle spent its retries on these events' address and gave up for now: each
/// event is left for the sweep, or marked failed with `reason` once it has had its rounds.
fn count_failed_round(
    state: &mut EventsState,
    ids: Vec<String>,
    reason: &str,
) -> Result<(), ActorProcessingErr> {
    let mut given_up = Vec::new();
    let mut counted = Vec::new();
    for id in ids {
        let Some(mut event) = state.events.get(&id)? else {
            continue;
        };
        if event.geo_status != GeoStatus::Pending {
            continue;
        }
        let rounds = state.events.geo_rounds(&id)? + 1;
        if rounds >= GEO_ROUNDS {
            event.geo_status = GeoStatus::Failed(format!(
                "no location after {rounds} rounds of lookups: {reason}"
            ));
            given_up.push(event);
        } else {
            counted.push((id, rounds));
        }
    }
    if !counted.is_empty() {
        let write = state.events.set_geo_rounds(&counted);
        tokio::spawn(async move {
            if let Err(e) = write.await {
                tracing::error!("cannot record failed geolocation rounds: {e}");
            }
        });
    }
    write_located(state, given_up);
    Ok(())
}

fn write_located(state: &EventsState, updated: Vec<Event>) {
    if updated.is_empty() {
        return;
    }
    let write = state.events.located(&updated);
    tokio::spawn(async move {
        if let Err(e) = write.await {
            tracing::error!("cannot record locations: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_events_are_fine_but_present_fields_must_be_valid() {
        let ev = |name: Option<&str>, code: Option<&str>| NewEvent {
            name: name.map(String::from),
            status_code: code.map(String::from),
            ip: "1.2.3.4".into(),
        };
        assert_eq!(validate(&ev(None, None)).unwrap(), (None, None));
        assert_eq!(
            validate(&ev(Some("EC2 Instance Offline"), Some("2")))
                .unwrap()
                .1,
            Some(2)
        );
        assert!(validate(&ev(Some(&"x".repeat(120)), None)).is_ok());
        let errs = validate(&ev(Some(&"x".repeat(121)), Some("two"))).unwrap_err();
        assert_eq!(
            errs.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
            vec!["name", "status_code"]
        );
        assert!(validate(&ev(Some(""), None)).is_err());
    }
}
