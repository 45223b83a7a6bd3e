//! Which actors a node runs for each role, as supervisor child specs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use troupe_actors::events::{EventsActor, EventsArgs};
use troupe_actors::geo::{GeoConfig, GeoThrottle};
use troupe_actors::listing::{ListingActor, ListingArgs};
use troupe_actors::master::{Master, MasterArgs};
use troupe_actors::question::QuestionConfig;
use troupe_actors::scheduler::{Scheduler, SchedulerArgs, SchedulerConfig};
use troupe_actors::supervisor::ChildSpec;
use troupe_actors::user::{UserActor, UserArgs};
use troupe_actors::worker::{Worker, WorkerArgs};

pub const KNOWN_ROLES: &[&str] = &[
    "master",
    "scheduler",
    "listing",
    "user",
    "events",
    "geo",
    "worker",
];

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("unknown role {0:?}; known roles: {known}", known = KNOWN_ROLES.join(", "))]
    Unknown(String),
}

pub struct Placement<'a> {
    pub node: &'a str,
    pub data: &'a Path,
    pub workers: &'a [String],
    pub call_timeout: Duration,
    pub job_lease: Duration,
    pub questions: Arc<QuestionConfig>,
    pub scheduler: SchedulerConfig,
    pub geo: GeoConfig,
}

/// Child specs for `roles`, in start order: stateful services first, workers last, so that a
/// shutdown (which stops children in reverse) drains workers while the master still listens.
pub fn children(roles: &[String], at: &Placement<'_>) -> Result<Vec<ChildSpec>, RoleError> {
    for r in roles {
        if !KNOWN_ROLES.contains(&r.as_str()) {
            return Err(RoleError::Unknown(r.clone()));
        }
    }
    let has = |r: &str| roles.iter().any(|x| x == r);
    let mut specs = Vec::new();
    if has("master") {
        let store_path = at.data.join("master.redb");
        let lease = at.job_lease;
        let call_timeout = at.call_timeout;
        specs.push(ChildSpec::new("master", move || {
            (
                Master,
                MasterArgs {
                    store_path: store_path.clone(),
                    lease,
                    call_timeout,
                },
            )
        }));
    }
    if has("scheduler") {
        let store_path = at.data.join("scheduler.redb");
        let config = at.scheduler.clone();
        specs.push(ChildSpec::new("scheduler", move || {
            (
                Scheduler,
                SchedulerArgs {
                    store_path: store_path.clone(),
                    config: config.clone(),
                    clock: None,
                },
            )
        }));
    }
    if has("listing") {
        let store_path = at.data.join("listing.redb");
        specs.push(ChildSpec::new("listing", move || {
            (
                ListingActor,
                ListingArgs {
                    store_path: store_path.clone(),
                },
            )
        }));
    }
    if has("user") {
        let store_path = at.data.join("user.redb");
        specs.push(ChildSpec::new("user", move || {
            (
                UserActor,
                UserArgs {
                    store_path: store_path.clone(),
                },
            )
        }));
    }
    if has("events") {
        let store_path = at.data.join("events.redb");
        specs.push(ChildSpec::new("events", move || {
            (
                EventsActor,
                EventsArgs {
                    store_path: store_path.clone(),
                    geo_wait: std::time::Duration::from_secs(600),
                },
            )
        }));
    }
    if has("geo") {
        let config = at.geo.clone();
        specs.push(ChildSpec::new("geo", move || (GeoThrottle, config.clone())));
    }
    if has("worker") {
        for name in at.workers {
            let args = WorkerArgs {
                name: name.clone(),
                node: at.node.to_string(),
                data_dir: at.data.to_path_buf(),
                call_timeout: at.call_timeout,
                questions: at.questions.clone(),
            };
            specs.push(
                ChildSpec::new(format!("worker {name}"), move || (Worker, args.clone()))
                    .with_drain(troupe_actors::worker::drain),
            );
        }
    }
    Ok(specs)
}

/// The worker names a node runs: the given ones, else one named after the node.
pub fn worker_names(node: &str, roles: &[String], given: &[String]) -> Vec<String> {
    if !roles.iter().any(|r| r == "worker") {
        return Vec::new();
    }
    if given.is_empty() {
        vec![format!("{node}-worker")]
    } else {
        given.to_vec()
    }
}
