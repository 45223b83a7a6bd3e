//! `troupe node`: one cluster member running a supervisor with the actors of its roles.

use std::process::ExitCode;
use std::sync::Arc;

use ractor::Actor;
use tokio::sync::oneshot;
use troupe_actors::geo::GeoConfig;
use troupe_actors::node_info::NodeInfoActor;
use troupe_actors::protocol::node_info::NodeInfo;
use troupe_actors::question::{self, QuestionConfig};
use troupe_actors::scheduler::SchedulerConfig;
use troupe_actors::supervisor::{
    startup_failure, ChildSpec, NodeSupervisor, RestartPolicy, SupervisorArgs, SupervisorMsg,
};

use crate::cluster::{Cluster, ClusterOptions};
use crate::config::NodeArgs;
use crate::roles::{self, Placement};
use crate::signals;

pub async fn run(args: NodeArgs) -> Result<ExitCode, String> {
    let cookie = args.cluster.cookie.clone().unwrap_or_default();
    std::fs::create_dir_all(&args.data)
        .map_err(|e| format!("cannot create data dir {}: {e}", args.data.display()))?;
    let workers = roles::worker_names(&args.name, &args.roles, &args.workers);
    let questions = question_config(&args)?;
    let placement = Placement {
        node: &args.name,
        data: &args.data,
        workers: &workers,
        call_timeout: args.cluster.call_timeout,
        job_lease: args.job_lease,
        questions: Arc::new(questions),
        scheduler: SchedulerConfig {
            lease: args.task_lease,
            no_worker_deadline: args.no_worker_deadline,
            call_timeout: args.cluster.call_timeout,
        },
        geo: geo_config(&args)?,
    };
    let mut children = vec![{
        let info = NodeInfo {
            name: args.name.clone(),
            addr: args.cluster.cluster.to_string(),
            roles: args.roles.clone(),
            workers: workers.clone(),
        };
        ChildSpec::new("node-info", move || (NodeInfoActor, info.clone()))
    }];
    children.extend(roles::children(&args.roles, &placement).map_err(|e| e.to_string())?);

    let cluster = Cluster::start(ClusterOptions {
        name: args.name.clone(),
        listen: args.cluster.cluster,
        cookie,
        seeds: args.cluster.seeds.clone(),
        tls: args.cluster.tls_files(),
        hung_peer_after: args.cluster.hung_peer_after,
    })
    .await
    .map_err(|e| e.to_string())?;

    let (escalation_tx, escalation) = oneshot::channel();
    let (supervisor, supervisor_task) = Actor::spawn(
        None,
        NodeSupervisor,
        SupervisorArgs {
            children,
            policy: RestartPolicy::default(),
            escalation: Some(escalation_tx),
        },
    )
    .await
    .map_err(|e| format!("node {} cannot start: {}", args.name, startup_failure(&e)))?;
    tracing::info!(node = %args.name, roles = ?args.roles, workers = ?workers, "node running");

    let code = tokio::select! {
        sig = signals::shutdown_requested() => {
            tracing::info!(node = %args.name, signal = sig, "draining");
            let deadline = args.cluster.shutdown_deadline;
            let stopped = supervisor
                .call(|done| SupervisorMsg::Shutdown { deadline, done }, Some(deadline * 2))
                .await;
            if stopped.is_err() {
                tracing::warn!("supervisor did not stop within the deadline");
            }
            if tokio::time::timeout(deadline, supervisor_task).await.is_err() {
                tracing::warn!("supervisor still running after the deadline; leaving anyway");
            }
            ExitCode::SUCCESS
        }
        reason = escalation => {
            let reason = reason.unwrap_or_else(|_| "supervisor stopped".into());
            tracing::error!(node = %args.name, %reason, "node giving up");
            let _ = supervisor_task.await;
            ExitCode::FAILURE
        }
    };
    cluster.shutdown().await;
    tracing::info!(node = %args.name, "stopped");
    Ok(code)
}

/// Where this node's workers find dictionaries and folders; the default dictionaries folder is
/// filled with the shipped ones on first start.
fn question_config(args: &NodeArgs) -> Result<QuestionConfig, String> {
    let q = &args.questions;
    let dictionaries = match &q.dictionaries {
        Some(dir) => dir.clone(),
        None => {
            let dir = args.data.join("dictionaries");
            question::install_shipped_dictionaries(&dir)
                .map_err(|e| format!("cannot install dictionaries in {}: {e}", dir.display()))?;
            dir
        }
    };
    let folders = q.folders.clone().unwrap_or_else(|| dictionaries.clone());
    let mut cfg = QuestionConfig::new(dictionaries, folders);
    cfg.delay = q.question_delay;
    cfg.time_limit = q.question_time_limit;
    cfg.max_output = q.question_max_output;
    Ok(cfg)
}

fn geo_config(args: &NodeArgs) -> Result<GeoConfig, String> {
    let g = &args.geo;
    let mut cfg = GeoConfig::new(g.geo_url.clone());
    cfg.api = g.geo_api.parse()?;
    cfg.rate = g.geo_rate;
    cfg.timeout = g.geo_timeout;
    cfg.max_in_flight = g.geo_max_in_flight;
    cfg.cache_ttl = g.geo_cache_ttl;
    cfg.max_attempts = g.geo_attempts.max(1);
    Ok(cfg)
}
