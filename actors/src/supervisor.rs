//! The per-node supervisor: starts the node's service actors, restarts one that fails, and gives
//! up loudly when failures come too fast (Erlang's restart intensity).
//!
//! Every child is permanent: any exit the supervisor did not ask for is a failure. A restart
//! waits for the old instance's task to end and drops its supervision event (which may carry
//! its state, store included) before starting the new one, so a redb file is never opened twice.
//! Restarts back off exponentially. Past the intensity the supervisor stops every child, reports
//! the reason on its escalation channel and stops; the node then exits non-zero.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use ractor::SupervisionEvent;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr};
use ractor_cluster::RactorMessage;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

type StartFn = Arc<
    dyn Fn(ActorCell) -> BoxFuture<'static, Result<(ActorCell, JoinHandle<()>), SpawnErr>>
        + Send
        + Sync,
>;
type DrainFn = Arc<dyn Fn(ActorCell) -> BoxFuture<'static, ()> + Send + Sync>;

/// Why an actor could not start, without ractor's "Actor panicked during startup" wrapping
/// (the reason is usually an error our `pre_start` returned, such as a store from a newer
/// troupe, not a panic).
pub fn startup_failure(e: &SpawnErr) -> String {
    match e {
        SpawnErr::StartupFailed(reason) => reason.to_string(),
        other => other.to_string(),
    }
}

/// How to (re)start one child.
#[derive(Clone)]
pub struct ChildSpec {
    pub name: String,
    start: StartFn,
    drain: Option<DrainFn>,
}

impl std::fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .finish()
    }
}

impl ChildSpec {
    /// `make` builds a fresh actor and its arguments for every (re)start.
    pub fn new<A, F>(name: impl Into<String>, make: F) -> Self
    where
        A: Actor,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        let start: StartFn = Arc::new(move |supervisor: ActorCell| {
            let (actor, args) = make();
            Box::pin(async move {
                let (actor_ref, handle) =
                    Actor::spawn_linked(None, actor, args, supervisor).await?;
                Ok((actor_ref.get_cell(), handle))
            })
        });
        Self {
            name: name.into(),
            start,
            drain: None,
        }
    }

    /// Work to let finish before the child is stopped. It must run while the actor is still
    /// alive: ractor_cluster tells peers an actor is gone as soon as it begins to stop, which
    /// fails every call still waiting on it.
    pub fn with_drain<F>(mut self, drain: F) -> Self
    where
        F: Fn(ActorCell) -> BoxFuture<'static, ()> + Send + Sync + 'static,
    {
        self.drain = Some(Arc::new(drain));
        self
    }
}

/// Restart intensity and backoff.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// More than this many restarts of one child within `window` escalates.
    pub max_restarts: usize,
    pub window: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window: Duration::from_secs(10),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

impl RestartPolicy {
    fn backoff(&self, recent_restarts: usize) -> Duration {
        let exp = recent_restarts.saturating_sub(1).min(16) as u32;
        self.backoff_base
            .saturating_mul(1 << exp)
            .min(self.backoff_max)
    }
}

pub struct SupervisorArgs {
    pub children: Vec<ChildSpec>,
    pub policy: RestartPolicy,
    /// Receives the reason when the supervisor gives up.
    pub escalation: Option<oneshot::Sender<String>>,
}

/// A child's identity as reported by [`SupervisorMsg::Children`].
#[derive(Debug, Clone)]
pub struct ChildInfo {
    pub name: String,
    pub actor: Option<ActorCell>,
    pub restarts: usize,
}

#[derive(RactorMessage)]
pub enum SupervisorMsg {
    /// Start child `index` again (sent to itself after the backoff).
    Restart(usize),
    /// Stop every child, last started first, each within `deadline`; then stop.
    Shutdown {
        deadline: Duration,
        done: RpcReplyPort<()>,
    },
    Children(RpcReplyPort<Vec<ChildInfo>>),
}

struct Child {
    spec: ChildSpec,
    cell: Option<ActorCell>,
    task: Option<JoinHandle<()>>,
    restarts: VecDeque<Instant>,
    total_restarts: usize,
}

pub struct SupervisorState {
    children: Vec<Child>,
    policy: RestartPolicy,
    escalation: Option<oneshot::Sender<String>>,
    stopping: bool,
}

pub struct NodeSupervisor;

impl Actor for NodeSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut children = Vec::with_capacity(args.children.len());
        for spec in args.children {
            let (cell, task) = (spec.start)(myself.get_cell())
                .await
                .map_err(|e| format!("cannot start {}: {}", spec.name, startup_failure(&e)))?;
            tracing::info!(child = %spec.name, "started");
            children.push(Child {
                spec,
                cell: Some(cell),
                task: Some(task),
                restarts: VecDeque::new(),
                total_restarts: 0,
            });
        }
        Ok(SupervisorState {
            children,
            policy: args.policy,
            escalation: args.escalation,
            stopping: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Restart(index) => {
                if state.stopping {
                    return Ok(());
                }
                let start = state.children[index].spec.start.clone();
                match start(myself.get_cell()).await {
                    Ok((cell, task)) => {
                        let child = &mut state.children[index];
                        tracing::info!(child = %child.spec.name, restarts = child.total_restarts, "restarted");
                        child.cell = Some(cell);
                        child.task = Some(task);
                    }
                    Err(e) => {
                        let reason = format!("restart failed: {e}");
                        on_child_down(&myself, state, index, reason).await;
                    }
                }
            }
            SupervisorMsg::Shutdown { deadline, done } => {
                stop_children(state, deadline).await;
                let _ = done.send(());
                myself.stop(Some("shutdown".into()));
            }
            SupervisorMsg::Children(reply) => {
                let info = state
                    .children
                    .iter()
                    .map(|c| ChildInfo {
                        name: c.spec.name.clone(),
                        actor: c.cell.clone(),
                        restarts: c.total_restarts,
                    })
                    .collect();
                let _ = reply.send(info);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (who, reason) = match &event {
            SupervisionEvent::ActorFailed(who, err) => (who.get_id(), format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(who, _, reason) => (
                who.get_id(),
                format!("exited: {}", reason.as_deref().unwrap_or("no reason")),
            ),
            _ => return Ok(()),
        };
        // The event may own the old instance's state (its store among it): drop it before any
        // restart can open the same file.
        drop(event);
        let Some(index) = state
            .children
            .iter()
            .position(|c| c.cell.as_ref().map(|c| c.get_id()) == Some(who))
        else {
            return Ok(());
        };
        if state.stopping {
            return Ok(());
        }
        on_child_down(&myself, state, index, reason).await;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        if !state.stopping {
            stop_children(state, Duration::from_secs(5)).await;
        }
        Ok(())
    }
}

async fn on_child_down(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    index: usize,
    reason: String,
) {
    let policy = state.policy;
    let child = &mut state.children[index];
    child.cell = None;
    if let Some(task) = child.task.take() {
        let _ = task.await;
    }
    let now = Instant::now();
    child.restarts.push_back(now);
    while child
        .restarts
        .front()
        .is_some_and(|t| now.duration_since(*t) > policy.window)
    {
        child.restarts.pop_front();
    }
    let recent = child.restarts.len();
    if recent > policy.max_restarts {
        let why = format!(
            "{} went down {} times within {:?} (last: {reason}); giving up",
            child.spec.name, recent, policy.window
        );
        tracing::error!(child = %child.spec.name, "{why}");
        stop_children(state, Duration::from_secs(5)).await;
        if let Some(tx) = state.escalation.take() {
            let _ = tx.send(why.clone());
        }
        myself.stop(Some(why));
        return;
    }
    child.total_restarts += 1;
    crate::telemetry::record_restart(&child.spec.name);
    let delay = policy.backoff(recent);
    tracing::warn!(child = %child.spec.name, %reason, ?delay, "child down, restarting");
    myself.send_after(delay, move || SupervisorMsg::Restart(index));
}

/// Drains every child that drains, all at once, then stops every child, last started first;
/// all of it within `deadline`. The drains run together so that each worker leaves its groups
/// at the same moment and one slow worker cannot use up the time of the others.
async fn stop_children(state: &mut SupervisorState, deadline: Duration) {
    state.stopping = true;
    let until = tokio::time::Instant::now() + deadline;
    let drains = state.children.iter().filter_map(|child| {
        let (drain, cell) = (child.spec.drain.as_ref()?, child.cell.as_ref()?);
        let (name, drained) = (child.spec.name.clone(), drain(cell.clone()));
        tracing::info!(child = %name, "draining");
        Some(async move {
            if tokio::time::timeout_at(until, drained).await.is_err() {
                tracing::warn!(child = %name, ?deadline, "drain deadline passed");
            }
        })
    });
    futures::future::join_all(drains).await;
    for child in state.children.iter_mut().rev() {
        // Past the budget, each child still gets a moment to stop before it is killed.
        let left = until
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_millis(100));
        if let Some(cell) = child.cell.take() {
            if cell
                .stop_and_wait(Some("node shutting down".into()), Some(left))
                .await
                .is_err()
            {
                tracing::warn!(child = %child.spec.name, ?left, "did not stop in time; killing");
                cell.kill();
            }
        }
        if let Some(task) = child.task.take() {
            let _ = task.await;
        }
        tracing::info!(child = %child.spec.name, "stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RestartPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(800));
        assert_eq!(p.backoff(30), Duration::from_secs(5));
    }
}
