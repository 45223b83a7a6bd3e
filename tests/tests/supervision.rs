//! The per-node supervisor, in process: a panicking actor that owns a store is restarted with
//! its durable state, rapid restarts never race the old instance for the redb file, and
//! failures past the restart intensity escalate.

use std::ops::Bound;
use std::path::PathBuf;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use tokio::sync::oneshot;
use troupe_actors::master::{Master, MasterArgs};
use troupe_actors::protocol::jobs::{JobStatus, NewJob};
use troupe_actors::protocol::master::MasterMsg;
use troupe_actors::store::{key, Batch, Direction, Schema, Store};
use troupe_actors::supervisor::{
    ChildSpec, NodeSupervisor, RestartPolicy, SupervisorArgs, SupervisorMsg,
};

const TOTALS: &str = "totals";
const SCHEMA: Schema = Schema {
    version: 1,
    tables: &[TOTALS],
};

/// A minimal stateful actor: a durable running total.
struct Counter;

#[derive(RactorMessage)]
enum CounterMsg {
    Add(u64, RpcReplyPort<u64>),
    Total(RpcReplyPort<u64>),
    Crash,
}

struct CounterState {
    store: Store,
    total: u64,
}

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = CounterState;
    type Arguments = PathBuf;

    async fn pre_start(
        &self,
        _myself: ActorRef<CounterMsg>,
        path: PathBuf,
    ) -> Result<CounterState, ActorProcessingErr> {
        let store = Store::open(&path, SCHEMA)?;
        let total = store
            .scan(
                TOTALS,
                (Bound::Unbounded, Bound::Unbounded),
                Direction::Forward,
                1,
            )?
            .first()
            .and_then(|(_, v)| key::to_u64(v))
            .unwrap_or(0);
        Ok(CounterState { store, total })
    }

    async fn handle(
        &self,
        _myself: ActorRef<CounterMsg>,
        msg: CounterMsg,
        state: &mut CounterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CounterMsg::Add(n, reply) => {
                state.total += n;
                let mut b = Batch::new();
                b.put(TOTALS, b"total".to_vec(), key::u64(state.total).to_vec());
                state.store.commit(b).await?;
                let _ = reply.send(state.total);
            }
            CounterMsg::Total(reply) => {
                let _ = reply.send(state.total);
            }
            CounterMsg::Crash => panic!("asked to crash"),
        }
        Ok(())
    }
}

fn success<T>(r: ractor::rpc::CallResult<T>) -> T {
    match r {
        ractor::rpc::CallResult::Success(v) => v,
        _ => panic!("call did not succeed"),
    }
}

async fn current_child(sup: &ActorRef<SupervisorMsg>, index: usize) -> Option<ractor::ActorCell> {
    let children = sup
        .call(SupervisorMsg::Children, Some(Duration::from_secs(2)))
        .await
        .ok()?;
    success(children).get(index)?.actor.clone()
}

/// Waits for the supervisor to report a new instance of child `index`.
async fn restarted_child(
    sup: &ActorRef<SupervisorMsg>,
    index: usize,
    old: &ractor::ActorCell,
) -> ractor::ActorCell {
    let start = std::time::Instant::now();
    loop {
        if let Some(c) = current_child(sup, index).await {
            if c.get_id() != old.get_id() {
                return c;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "child not restarted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn counter_spec(path: PathBuf) -> ChildSpec {
    ChildSpec::new("counter", move || (Counter, path.clone()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_actor_is_restarted_with_its_durable_state() {
    let dir = tempfile::tempdir().unwrap();
    let policy = RestartPolicy {
        max_restarts: 100,
        window: Duration::from_secs(60),
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
    };
    let (sup, _task) = Actor::spawn(
        None,
        NodeSupervisor,
        SupervisorArgs {
            children: vec![counter_spec(dir.path().join("counter.redb"))],
            policy,
            escalation: None,
        },
    )
    .await
    .unwrap();

    let mut counter: ActorRef<CounterMsg> = current_child(&sup, 0).await.unwrap().into();
    let mut expected = 0;
    // Many crash/restart rounds: each restart reopens the same redb file right after the old
    // instance died, which fails with DatabaseAlreadyOpen unless the old one is fully gone.
    for round in 1..=25u64 {
        let total = counter
            .call(|r| CounterMsg::Add(round, r), Some(Duration::from_secs(2)))
            .await
            .map(success)
            .unwrap();
        expected += round;
        assert_eq!(total, expected);
        let old = counter.get_cell();
        counter.cast(CounterMsg::Crash).unwrap();
        counter = restarted_child(&sup, 0, &old).await.into();
        let after = counter
            .call(CounterMsg::Total, Some(Duration::from_secs(2)))
            .await
            .map(success)
            .unwrap();
        assert_eq!(after, expected, "state lost in restart {round}");
    }
    let children = sup
        .call(SupervisorMsg::Children, Some(Duration::from_secs(2)))
        .await
        .map(success)
        .unwrap();
    assert_eq!(children[0].restarts, 25);
    sup.stop(None);
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_past_the_restart_intensity_escalate() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, escalated) = oneshot::channel();
    let (sup, task) = Actor::spawn(
        None,
        NodeSupervisor,
        SupervisorArgs {
            children: vec![counter_spec(dir.path().join("c.redb"))],
            policy: RestartPolicy {
                max_restarts: 2,
                window: Duration::from_secs(60),
                backoff_base: Duration::from_millis(1),
                backoff_max: Duration::from_millis(5),
            },
            escalation: Some(tx),
        },
    )
    .await
    .unwrap();
    let mut child = current_child(&sup, 0).await.unwrap();
    for _ in 0..2 {
        ActorRef::<CounterMsg>::from(child.clone())
            .cast(CounterMsg::Crash)
            .unwrap();
        child = restarted_child(&sup, 0, &child).await;
    }
    ActorRef::<CounterMsg>::from(child)
        .cast(CounterMsg::Crash)
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(10), escalated)
        .await
        .expect("escalated in time")
        .expect("reason sent");
    assert!(reason.contains("counter went down 3 times"), "{reason}");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("supervisor stopped")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_master_comes_back_with_every_queued_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.redb");
    let (sup, _task) = Actor::spawn(
        None,
        NodeSupervisor,
        SupervisorArgs {
            children: vec![ChildSpec::new("master", move || {
                (
                    Master,
                    MasterArgs {
                        store_path: path.clone(),
                        lease: Duration::from_secs(30),
                        call_timeout: Duration::from_secs(5),
                    },
                )
            })],
            policy: RestartPolicy::default(),
            escalation: None,
        },
    )
    .await
    .unwrap();
    let master_cell = current_child(&sup, 0).await.unwrap();
    let master: ActorRef<MasterMsg> = master_cell.clone().into();
    let mut ids = Vec::new();
    for i in 0..5 {
        let accepted = master
            .call(
                |r| {
                    MasterMsg::Submit(
                        NewJob {
                            text: format!("t{i}"),
                        },
                        r,
                    )
                },
                Some(Duration::from_secs(2)),
            )
            .await
            .map(success)
            .unwrap()
            .0
            .unwrap();
        ids.push(accepted.job_id);
    }
    master_cell.kill();
    let master: ActorRef<MasterMsg> = restarted_child(&sup, 0, &master_cell).await.into();
    for id in &ids {
        let found = master
            .call(
                |r| MasterMsg::Get(id.clone(), r),
                Some(Duration::from_secs(2)),
            )
            .await
            .map(success)
            .unwrap()
            .0
            .expect("job kept across the restart");
        // No worker exists in this process, so every job still waits for one.
        assert!(!found.status.is_final());
        assert_ne!(found.status, JobStatus::Done);
    }
    sup.stop(None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_refuses_a_store_written_by_a_newer_troupe() {
    let mut c = troupe_tests::TestCluster::new();
    let data = c.data_dir("n1");
    std::fs::create_dir_all(&data).unwrap();
    // The user store as a future troupe would leave it: a higher schema version.
    let user = troupe_actors::user::SCHEMA;
    let future = Schema {
        version: user.version + 1,
        tables: user.tables,
    };
    drop(Store::open(&data.join("user.redb"), future).unwrap());
    c.start_node("n1", &["user"], &[], &[]);
    let exit = c.wait_exit("n1", Duration::from_secs(30));
    assert!(!exit.success(), "{exit:?}");
    let log = c.log("n1");
    let expected = format!(
        "has schema version {}, newer than the {} this troupe understands",
        user.version + 1,
        user.version
    );
    assert!(log.contains(&expected), "{log}");
    assert!(!log.contains("panicked"), "no panic happened: {log}");
}
