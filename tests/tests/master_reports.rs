//! The master against reports that arrive twice or late, as they can now that a worker retries a
//! report whose receipt did not come back: a real master actor, a stand-in worker that records
//! what it is sent, and reports sent by hand.

use std::time::Duration;

use ractor::{pg, Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;
use troupe_actors::groups;
use troupe_actors::master::{Master, MasterArgs};
use troupe_actors::protocol::jobs::JobAssignment;
use troupe_actors::protocol::jobs::{JobFinished, JobStatus, NewJob};
use troupe_actors::protocol::master::MasterMsg;
use troupe_actors::protocol::questions::{Answer, Answered, Ask, AskJob, Question, QuestionError};
use troupe_actors::protocol::worker::WorkerMsg;

const CALL: Option<Duration> = Some(Duration::from_secs(10));

/// Process groups are global to the process: one test's actors at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a stand-in worker was sent.
#[derive(Debug)]
enum Sent {
    Run(JobAssignment),
    Ask(&'static str, AskJob),
}

/// Joins the worker group and hands every job and question it is sent to the test.
struct StandIn(&'static str);

impl Actor for StandIn {
    type Msg = WorkerMsg;
    type State = mpsc::UnboundedSender<Sent>;
    type Arguments = mpsc::UnboundedSender<Sent>;

    async fn pre_start(
        &self,
        myself: ActorRef<WorkerMsg>,
        sent: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        pg::join(groups::WORKER.into(), vec![myself.get_cell()]);
        Ok(sent)
    }

    async fn handle(
        &self,
        _myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        sent: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Run(job) => {
                let _ = sent.send(Sent::Run(job));
            }
            WorkerMsg::Ask(job) => {
                let _ = sent.send(Sent::Ask(self.0, job));
            }
            // Answered after everything sent before it: the test's way to let the mailbox empty.
            WorkerMsg::Drain(reply) => {
                let _ = reply.send(());
            }
            _ => {}
        }
        Ok(())
    }
}

async fn start_master(dir: &std::path::Path) -> ActorRef<MasterMsg> {
    let (master, _) = Actor::spawn(
        None,
        Master,
        MasterArgs {
            store_path: dir.join("master.redb"),
            lease: Duration::from_secs(600),
            call_timeout: Duration::from_secs(10),
        },
    )
    .await
    .unwrap();
    master
}

async fn next_job(sent: &mut mpsc::UnboundedReceiver<Sent>) -> JobAssignment {
    match sent.recv().await.unwrap() {
        Sent::Run(job) => job,
        other => panic!("expected a job, got {other:?}"),
    }
}

async fn report(master: &ActorRef<MasterMsg>, job: &JobAssignment, outcome: Result<&str, &str>) {
    let finished = JobFinished {
        job_id: job.job_id.clone(),
        attempt: job.attempt,
        worker: "stand-in".into(),
        node: "here".into(),
        outcome: outcome.map(str::to_string).map_err(str::to_string),
    };
    master
        .call(|r| MasterMsg::Finished(finished, r), CALL)
        .await
        .expect("master answers")
        .expect("a receipt");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_reported_twice_or_late_does_not_send_the_job_again() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut sent) = mpsc::unbounded_channel();
    let (worker, _w) = Actor::spawn(None, StandIn("w1"), tx).await.unwrap();
    let master = start_master(dir.path()).await;

    let submitted = master
        .call(
            |r| {
                MasterMsg::Submit(
                    NewJob {
                        text: "twice told".into(),
                    },
                    r,
                )
            },
            CALL,
        )
        .await
        .unwrap()
        .unwrap()
        .0
        .unwrap();
    let first = next_job(&mut sent).await;
    assert_eq!(
        (first.job_id.as_str(), first.attempt),
        (submitted.job_id.as_str(), 1)
    );

    // The first attempt fails, and its report arrives twice (a retry after a lost receipt).
    report(&master, &first, Err("disk full")).await;
    let second = next_job(&mut sent).await;
    assert_eq!(second.attempt, 2);
    report(&master, &first, Err("disk full")).await;

    // Everything the master sent has reached the stand-in once this call is answered.
    worker.call(WorkerMsg::Drain, CALL).await.unwrap().unwrap();
    assert!(
        sent.try_recv().is_err(),
        "the late failure of attempt 1 sent the job again"
    );

    // The attempt in flight still decides.
    report(&master, &second, Ok("files/job.txt")).await;
    let view = master
        .call(|r| MasterMsg::AwaitDone(submitted.job_id.clone(), r), CALL)
        .await
        .unwrap()
        .unwrap()
        .0
        .unwrap();
    assert_eq!(view.status, JobStatus::Done);
    assert_eq!(view.file.as_deref(), Some("files/job.txt"));
    master.stop_and_wait(None, None).await.unwrap();
    worker.stop_and_wait(None, None).await.unwrap();
}

async fn answer(master: &ActorRef<MasterMsg>, token: u64, answer: Answer) {
    master
        .call(|r| MasterMsg::Answered(Answered { token, answer }, r), CALL)
        .await
        .expect("master answers")
        .expect("a receipt");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_delivered_twice_is_not_taken_for_the_next_workers() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut sent) = mpsc::unbounded_channel();
    let (w1, _) = Actor::spawn(None, StandIn("w1"), tx.clone()).await.unwrap();
    let (w2, _) = Actor::spawn(None, StandIn("w2"), tx).await.unwrap();
    let master = start_master(dir.path()).await;

    let asking = {
        let master = master.clone();
        tokio::spawn(async move {
            let ask = Ask {
                question: Question::All { dictionary: None },
                wait_ms: 30_000,
            };
            master.call(|r| MasterMsg::Ask(ask, r), CALL).await
        })
    };
    let Some(Sent::Ask(first_worker, first)) = sent.recv().await else {
        panic!("the question was not sent to a worker");
    };
    // That worker is draining: it declines, and the refusal arrives twice.
    let declined = || Answer(Err(QuestionError::Unavailable("shutting down".into())));
    answer(&master, first.token, declined()).await;
    let Some(Sent::Ask(second_worker, second)) = sent.recv().await else {
        panic!("the question was not sent again");
    };
    assert_ne!(first_worker, second_worker);
    answer(&master, first.token, declined()).await;

    // The second worker's answer is the one the asker gets.
    answer(&master, second.token, Answer(Ok(vec!["a line".into()]))).await;
    let got = asking.await.unwrap().unwrap().unwrap();
    assert_eq!(got.0.unwrap(), vec!["a line".to_string()]);
    for w in [w1, w2] {
        w.stop_and_wait(None, None).await.unwrap();
    }
    master.stop_and_wait(None, None).await.unwrap();
}
