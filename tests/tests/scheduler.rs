//! The scheduler (seed 004) with real processes: tasks run on their named workers on other
//! nodes at their start time, survive a kill -9 of the scheduler's node and still run exactly
//! once, a task whose worker's node dies mid-run is sent again after its lease, an outcome
//! reported while the scheduler is down is kept until it is back, a missing worker fails the
//! task by name, and the API answers the brief's examples and refuses what it must.

use std::time::Duration;

use serde_json::{json, Value};
use troupe_tests::{eventually, eventually_some, TestCluster};

const GROUPS: &[&str] = &["troupe.scheduler", "troupe.master", "troupe.worker"];

fn in_secs(secs: i64) -> (String, chrono_free::Micros) {
    let at = chrono_free::now_micros() + secs * 1_000_000;
    (chrono_free::rfc3339(at), at)
}

/// Time helpers without pulling chrono into the test crate.
mod chrono_free {
    pub type Micros = i64;

    pub fn now_micros() -> Micros {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64
    }

    pub fn rfc3339(micros: Micros) -> String {
        troupe_actors::time::micros_to_rfc3339(micros)
    }
}

async fn create(c: &TestCluster, body: Value) -> Value {
    let (s, b) = c.post_json("/api/tasks", body).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["status"], "SCHEDULED");
    b
}

async fn wait_status(c: &TestCluster, id: &str, status: &str, within: Duration) -> Value {
    let url = format!("/api/tasks/{id}");
    eventually_some(within, &format!("task {id} {status}"), || async {
        let (_, t) = c.get_json(&url).await;
        (t["status"] == status).then_some(t)
    })
    .await
}

fn runs_of(c: &TestCluster, nodes: &[&str], id: &str) -> usize {
    let needle = format!("task={id}");
    nodes
        .iter()
        .map(|n| {
            c.log(n)
                .lines()
                .filter(|l| l.contains("task ran") && l.contains(&needle))
                .count()
        })
        .sum()
}

fn scheduler_cluster() -> TestCluster {
    let mut c = TestCluster::new();
    c.start_node("n1", &["master", "scheduler"], &[], &[]);
    c.start_node("n2", &["worker"], &["alpha"], &[]);
    c.start_node("n3", &["worker"], &["beta"], &[]);
    c.start_edge(&[]);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn tasks_run_on_their_named_workers_at_their_start() {
    let c = scheduler_cluster();
    c.wait_groups(GROUPS).await;
    c.wait_workers(2).await;
    let (start, start_us) = in_secs(2);
    let write = create(
        &c,
        json!({"start": start, "worker": "alpha", "title": "w",
                                  "payload": {"job": "write", "text": "scheduled text"}}),
    )
    .await;
    let question = create(&c, json!({"start": start, "worker": "beta",
                                     "payload": {"job": "question", "action": "all", "dictionary": "proverbs"}})).await;
    let echo = create(
        &c,
        json!({"start": start, "worker": "alpha", "payload": {"k": [1, 2]}}),
    )
    .await;
    let id = |t: &Value| t["id"].as_str().unwrap().to_string();

    let w = wait_status(&c, &id(&write), "SUCCEEDED", Duration::from_secs(20)).await;
    assert_eq!(w["result"]["node"], "n2");
    assert_eq!(w["result"]["worker"], "alpha");
    let file = c.data_dir("n2").join(w["result"]["file"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(file).unwrap(), "scheduled text");
    let q = wait_status(&c, &id(&question), "SUCCEEDED", Duration::from_secs(20)).await;
    assert_eq!(q["result"]["nr of entries"], 10);
    let e = wait_status(&c, &id(&echo), "SUCCEEDED", Duration::from_secs(20)).await;
    assert_eq!(e["result"], json!({"k": [1, 2]}));
    for t in [&w, &q, &e] {
        assert_eq!(t["attempts"], 1);
    }
    // Not before their start: each finished at or after it.
    for t in [&w, &q, &e] {
        let finished = t["updated_at"].as_str().unwrap();
        assert!(finished >= start.as_str(), "{finished} < {start}");
    }
    assert!(chrono_free::now_micros() >= start_us);
    assert_eq!(runs_of(&c, &["n2"], &id(&write)), 1);
    assert_eq!(runs_of(&c, &["n3"], &id(&question)), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_schedulers_node_before_tasks_are_due_still_runs_each_once() {
    let mut c = scheduler_cluster();
    c.wait_groups(GROUPS).await;
    c.wait_workers(2).await;
    let (start, start_us) = in_secs(2);
    let mut ids = Vec::new();
    for i in 0..6 {
        let worker = if i % 2 == 0 { "alpha" } else { "beta" };
        let t = create(
            &c,
            json!({"start": start, "worker": worker,
                                  "payload": {"job": "write", "text": format!("t{i}")}}),
        )
        .await;
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    c.kill("n1");
    // The scenario needs the tasks to fall due while the scheduler is down.
    eventually(Duration::from_secs(10), "tasks overdue", || async {
        chrono_free::now_micros() > start_us + 500_000
    })
    .await;
    c.restart("n1");
    for id in &ids {
        wait_status(&c, id, "SUCCEEDED", Duration::from_secs(30)).await;
    }
    for id in &ids {
        assert_eq!(
            runs_of(&c, &["n2", "n3"], id),
            1,
            "task {id} ran more than once"
        );
    }
}

/// Waits until `node`'s log has a line holding every one of `needles`.
async fn wait_log(c: &TestCluster, node: &str, needles: &[&str]) {
    eventually(
        Duration::from_secs(20),
        &format!("{node} logs {needles:?}"),
        || async {
            c.log(node)
                .lines()
                .any(|l| needles.iter().all(|n| l.contains(n)))
        },
    )
    .await;
}

/// A question that lists the whole `proverbs` dictionary: ten entries, after the node's
/// `--question-delay`.
fn slow_question() -> Value {
    json!({"job": "question", "action": "all", "dictionary": "proverbs"})
}

/// Creates a question task for worker alpha (on n2) due in a second; returns its id once it
/// runs. Not necessarily as attempt 1: a dispatch before the master saw the worker counts one.
async fn slow_task_running_on_n2(c: &TestCluster) -> String {
    let (start, _) = in_secs(1);
    let t = create(
        c,
        json!({"start": start, "worker": "alpha", "payload": slow_question()}),
    )
    .await;
    let id = t["id"].as_str().unwrap().to_string();
    wait_log(c, "n2", &["task ran", &format!("task={id}")]).await;
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_whose_worker_node_dies_mid_run_is_sent_again_after_its_lease() {
    let mut c = TestCluster::new();
    c.start_node("n1", &["master", "scheduler"], &[], &["--task-lease", "3s"]);
    // The run outlasts the test unless the node dies: the kill below lands mid-run.
    c.start_node("n2", &["worker"], &["alpha"], &["--question-delay", "60s"]);
    c.start_edge(&[]);
    c.wait_groups(GROUPS).await;
    let id = &slow_task_running_on_n2(&c).await;
    c.kill("n2");
    // The same worker name comes back, now answering at once; nothing but the lease tells the
    // scheduler that the first run will never report.
    c.restart_with("n2", &["--question-delay", "0s"]);
    let done = wait_status(&c, id, "SUCCEEDED", Duration::from_secs(30)).await;
    assert_eq!(done["result"]["nr of entries"], 10, "{done}");
    // Each dispatch counts an attempt, also one that finds no worker because n2 is not back
    // yet (or one cast to its dead incarnation before the cluster noticed), so on a loaded
    // machine there can be more than two.
    let attempts = done["attempts"].as_u64().expect("attempts");
    assert!(attempts >= 2, "{done}");
    // n2's log spans both incarnations: the first run died inside its 60 s question, so the
    // success, well before that, came from a later attempt, sent again after the lease.
    // (Not necessarily the last attempt: one counted by a lease that ran out just as the
    // outcome came in may never have run.)
    let ran = ran_attempts(&c, "n2", id);
    assert!(ran.len() >= 2, "{ran:?}");
    assert!(ran.windows(2).all(|w| w[0] < w[1]), "{ran:?}");
    assert!(
        ran.iter().all(|a| (1..=attempts).contains(a)),
        "{ran:?} {done}"
    );
}

/// The attempt of each "task ran" line for task `id` in `node`'s log, in order.
fn ran_attempts(c: &TestCluster, node: &str, id: &str) -> Vec<u64> {
    let needle = format!("task={id}");
    c.log(node)
        .lines()
        .filter(|l| l.contains("task ran") && l.contains(&needle))
        .map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("attempt="))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no attempt in {l:?}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outcome_reported_while_the_scheduler_is_down_is_kept_until_it_is_back() {
    let mut c = TestCluster::new();
    c.start_node("n1", &["scheduler"], &[], &[]);
    c.start_node("n3", &["master"], &[], &[]);
    // The worker keeps offering its outcome for 12 call deadlines: 3 s each leaves 36 s for n1's
    // restart, re-dial and group sync on a loaded machine, still well inside the lease, and
    // stays above the master's relay (half its own 5 s default), so a relay that succeeds
    // gets its receipt back to the worker in time.
    c.start_node(
        "n2",
        &["worker"],
        &["alpha"],
        &["--question-delay", "2s", "--call-timeout", "3s"],
    );
    c.start_edge(&[]);
    c.wait_groups(GROUPS).await;
    let id = &slow_task_running_on_n2(&c).await;
    // Killed before it recorded the hand-over, the scheduler would rightly send the task again
    // when it comes back (it cannot know the worker has it); this test is about the outcome.
    wait_log(&c, "n1", &["task handed to its worker", id]).await;
    c.kill("n1");
    // The run ends and its outcome reaches the master, which cannot pass it on.
    wait_log(&c, "n3", &["cannot relay a task outcome", id]).await;
    c.restart("n1");
    // Well inside the lease (60 s): only the worker's kept report can settle it this soon.
    let done = wait_status(&c, id, "SUCCEEDED", Duration::from_secs(30)).await;
    assert_eq!(done["result"]["nr of entries"], 10, "{done}");
    // It ran once, and that run was the last attempt: no dispatch after the outcome was kept
    // (an early dispatch that found no worker yet may have counted attempts before it).
    let ran = ran_attempts(&c, "n2", id);
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(Some(ran[0]), done["attempts"].as_u64(), "{ran:?} {done}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_worker_fails_the_task_by_name_after_the_deadline() {
    let mut c = TestCluster::new();
    c.start_node(
        "n1",
        &["master", "scheduler"],
        &[],
        &["--no-worker-deadline", "1s"],
    );
    c.start_edge(&[]);
    c.wait_groups(&["troupe.scheduler", "troupe.master"]).await;
    let (start, _) = in_secs(1);
    let t = create(&c, json!({"start": start, "worker": "ghost"})).await;
    let failed = wait_status(
        &c,
        t["id"].as_str().unwrap(),
        "FAILED",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        failed["error"].as_str().unwrap().contains("ghost"),
        "{failed}"
    );
    assert!(
        failed["attempts"].as_u64().unwrap() >= 2,
        "it was retried: {failed}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_follows_the_brief_and_refuses_what_it_must() {
    let mut c = TestCluster::new();
    c.start_node(
        "n1",
        &["master", "scheduler"],
        &[],
        &["--no-worker-deadline", "1h"],
    );
    c.start_edge(&[]);
    c.wait_groups(&["troupe.scheduler", "troupe.master"]).await;
    let err = |b: &Value| (b["error"]["code"].clone(), b["error"]["field"].clone());

    // The brief's example payload edits, through its `/api/task/...` spelling.
    let later = chrono_free::rfc3339(chrono_free::now_micros() + 3_600_000_000);
    let t = create(
        &c,
        json!({"start": "20991231T01", "worker": "w",
                              "payload": {"key1": "value1", "key2": [1, 2, 3]}}),
    )
    .await;
    assert_eq!(t["start"], "2099-12-31T01:00:00Z");
    let id = t["id"].as_str().unwrap();
    let r = c
        .client
        .patch(c.url(&format!("/api/task/{id}/payload")))
        .json(&json!({"key3": {"key3_1": "value3_1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after: Value = r.json().await.unwrap();
    assert_eq!(
        after["payload"],
        json!({"key1": "value1", "key2": [1, 2, 3], "key3": {"key3_1": "value3_1"}})
    );
    let r = c
        .client
        .delete(c.url(&format!("/api/task/{id}/payload/key1")))
        .send()
        .await
        .unwrap();
    let after: Value = r.json().await.unwrap();
    assert_eq!(
        after["payload"],
        json!({"key2": [1, 2, 3], "key3": {"key3_1": "value3_1"}})
    );
    let r = c
        .client
        .delete(c.url(&format!("/api/tasks/{id}/payload/nope")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    for (body, field) in [
        (json!({"start": "20160718T01", "worker": "w"}), "start"),
        (json!({"start": "not a time", "worker": "w"}), "start"),
        (json!({"start": later}), "worker"),
        (
            json!({"start": later, "worker": "w", "status": "DONE"}),
            "status",
        ),
        (
            json!({"start": later, "worker": "w", "status": "RUNNING"}),
            "status",
        ),
        (
            json!({"start": later, "worker": "w", "payload": [1]}),
            "payload",
        ),
        (json!({"worker": "w"}), "start"),
    ] {
        let (s, b) = c.post_json("/api/tasks", body.clone()).await;
        assert_eq!(
            (s, err(&b)),
            (400, (json!("invalid_request"), json!(field))),
            "{body} -> {b}"
        );
    }
    let r = c
        .client
        .post(c.url("/api/tasks"))
        .form(&[("worker", "w")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let (s, b) = c.get_json("/api/tasks/nope").await;
    assert_eq!((s, b["error"]["code"].clone()), (404, json!("not_found")));

    // A task for a worker that never comes stays RUNNING (the deadline is an hour): locked.
    let (soon, soon_us) = in_secs(1);
    let running = create(
        &c,
        json!({"start": soon, "title": "stuck", "worker": "ghost"}),
    )
    .await;
    let rid = running["id"].as_str().unwrap();
    eventually(Duration::from_secs(10), "due", || async {
        chrono_free::now_micros() > soon_us
    })
    .await;
    wait_status(&c, rid, "RUNNING", Duration::from_secs(10)).await;
    let patch = |body: Value| {
        let req = c
            .client
            .patch(c.url(&format!("/api/tasks/{rid}")))
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(patch(json!({"start": later})).await.0, 409);
    assert_eq!(patch(json!({"worker": "other"})).await.0, 409);
    assert_eq!(patch(json!({"payload": {"a": 1}})).await.0, 409);
    assert_eq!(patch(json!({"status": "SCHEDULED"})).await.0, 409);
    let (s, b) = patch(json!({"title": "renamed"})).await;
    assert_eq!((s, b["title"].clone()), (200, json!("renamed")));
    let r = c
        .client
        .delete(c.url(&format!("/api/tasks/{rid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = c
        .client
        .patch(c.url(&format!("/api/tasks/{rid}/payload")))
        .json(&json!({"a": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // Filters and pages, sorted by start.
    let (_, all) = c.get_json("/api/tasks").await;
    assert_eq!(all["total"], 2);
    let starts: Vec<&str> = all["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["start"].as_str().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{starts:?}");
    let (_, running_only) = c.get_json("/api/tasks?status=RUNNING").await;
    assert_eq!(running_only["total"], 1);
    let (_, by_worker) = c.get_json("/api/tasks?worker=w&status=SCHEDULED").await;
    assert_eq!(by_worker["tasks"][0]["id"], json!(id));
    let (_, window) = c
        .get_json("/api/tasks?from=2099-12-31&to=2099-12-31T02:00:00Z")
        .await;
    assert_eq!(window["total"], 1);
    let (s, b) = c.get_json("/api/tasks?status=LATE").await;
    assert_eq!((s, err(&b).1), (400, json!("status")));
    let (s, b) = c.get_json("/api/tasks?from=yesterday").await;
    assert_eq!((s, err(&b).1), (400, json!("from")));
    let (_, paged) = c.get_json("/api/tasks?page_size=1&page_num=2").await;
    assert_eq!(
        (
            paged["total"].clone(),
            paged["tasks"].as_array().unwrap().len()
        ),
        (json!(2), 1)
    );

    // A SCHEDULED task can be edited and deleted.
    let (s, b) = patch_task(
        &c,
        id,
        json!({"start": later, "worker": "w2", "title": null}),
    )
    .await;
    assert_eq!(
        (s, b["worker"].clone(), b["title"].clone()),
        (200, json!("w2"), Value::Null)
    );
    let r = c
        .client
        .delete(c.url(&format!("/api/tasks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(c.get_json(&format!("/api/tasks/{id}")).await.0, 404);
}

async fn patch_task(c: &TestCluster, id: &str, body: Value) -> (u16, Value) {
    let r = c
        .client
        .patch(c.url(&format!("/api/tasks/{id}")))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}
