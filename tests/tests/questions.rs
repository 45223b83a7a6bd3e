//! The question API (seed 003) with real processes: every error status triggered for real,
//! questions served concurrently while the brief's blocking delay runs, and graceful shutdown
//! of the edge and of a worker's node with questions in flight.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use troupe_tests::{eventually, TestCluster};

const QUESTION_GROUPS: &[&str] = &["troupe.master", "troupe.worker"];

/// A dictionaries folder and a folders root as a deployment might have them, with the
/// awkward cases the API must refuse.
fn question_roots(base: &Path) -> (PathBuf, PathBuf) {
    let dicts = base.join("dicts");
    let folders = base.join("folders");
    std::fs::create_dir_all(dicts.join("a-folder")).unwrap();
    std::fs::create_dir_all(folders.join("reports/2026")).unwrap();
    std::fs::write(
        dicts.join("quotes.txt"),
        "alpha one\nbeta\ngamma one\ndelta\nepsilon one\n",
    )
    .unwrap();
    std::fs::write(dicts.join("big.txt"), "y\n".repeat(10_000)).unwrap();
    std::fs::write(base.join("outside.txt"), "secret one\n").unwrap();
    std::os::unix::fs::symlink(base.join("outside.txt"), dicts.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(base, folders.join("up")).unwrap();
    nix::unistd::mkfifo(&dicts.join("stuck.txt"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    for f in ["q1.txt", "q2.txt", "notes.md"] {
        std::fs::write(folders.join("reports").join(f), "").unwrap();
    }
    (dicts, folders)
}

fn question_cluster(delay: &str) -> TestCluster {
    let mut c = TestCluster::new();
    let (dicts, folders) = question_roots(c.dir.path());
    c.start_node("n1", &["master"], &[], &[]);
    c.start_node(
        "n2",
        &["worker"],
        &["w2"],
        &[
            "--dictionaries",
            dicts.to_str().unwrap(),
            "--folders",
            folders.to_str().unwrap(),
            "--question-delay",
            delay,
            "--question-time-limit",
            "500ms",
            "--question-max-output",
            "4096",
        ],
    );
    c.start_edge(&[]);
    c
}

/// Waits until a question is answered end to end: the edge sees the master, and the master
/// sees a worker (which the edge's view alone does not prove).
async fn wait_answering(c: &TestCluster) {
    c.wait_groups(QUESTION_GROUPS).await;
    eventually(Duration::from_secs(30), "a question answered", || async {
        ask(c, json!({"action": "list", "folder": "."})).await.0 == 200
    })
    .await;
}

async fn ask(c: &TestCluster, body: Value) -> (u16, Value) {
    c.post_json("/api/v1/json", body).await
}

fn assert_error(status: u16, body: &Value, expected: u16, needle: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["Code"], expected, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
    assert!(
        message.contains("POST /api/v1/json"),
        "says how to ask: {message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_search_all_and_list() {
    let c = question_cluster("0s");
    wait_answering(&c).await;
    let (s, b) = ask(&c, json!({"action": "search", "term": "one", "n_after": 1})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b,
        json!({"nr of entries": 3, "results": ["alpha one\nbeta", "gamma one\ndelta", "epsilon one"]})
    );
    let (_, b) = ask(
        &c,
        json!({"action": "search", "term": "one", "nresults": 2}),
    )
    .await;
    assert_eq!(b["results"], json!(["alpha one", "gamma one"]));
    let (s, b) = ask(&c, json!({"action": "search", "term": "zeta"})).await;
    assert_eq!((s, b), (200, json!({"nr of entries": 0, "results": []})));
    let (_, b) = ask(&c, json!({"action": "all", "dictionary": "quotes"})).await;
    assert_eq!(b["nr of entries"], 5);
    let (_, b) = ask(
        &c,
        json!({"action": "list", "folder": "reports", "pattern": "*.txt"}),
    )
    .await;
    assert_eq!(b["results"], json!(["q1.txt", "q2.txt"]));
    let (_, b) = ask(&c, json!({"action": "list", "folder": "reports"})).await;
    assert_eq!(b["nr of entries"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_status_for_real() {
    let c = question_cluster("0s");
    wait_answering(&c).await;
    let raw = |body: &'static str, content_type: &'static str| {
        let req = c
            .client
            .post(c.url("/api/v1/json"))
            .header("content-type", content_type)
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, b) = raw("{\"action\": ", "application/json").await;
    assert_error(s, &b, 400, "not valid JSON");
    let (s, b) = ask(&c, json!({"term": "x"})).await;
    assert_error(s, &b, 400, "\"action\"");
    let (s, b) = ask(
        &c,
        json!({"action": "search", "term": "x", "nresults": "all"}),
    )
    .await;
    assert_error(s, &b, 400, "\"nresults\"");
    let (s, b) = ask(
        &c,
        json!({"action": "search", "term": "x", "dictionary": "../outside"}),
    )
    .await;
    assert_error(s, &b, 400, "separator");
    let (s, b) = ask(&c, json!({"action": "list", "folder": "/etc"})).await;
    assert_error(s, &b, 400, "absolute");

    let (s, b) = ask(&c, json!({"action": "all", "dictionary": "a-folder"})).await;
    assert_error(s, &b, 403, "cannot be read");
    let (s, b) = ask(
        &c,
        json!({"action": "search", "term": "secret", "dictionary": "escape"}),
    )
    .await;
    assert_error(s, &b, 403, "outside");
    assert!(
        !b.to_string().contains("secret one"),
        "nothing outside the root is read"
    );
    let (s, b) = ask(&c, json!({"action": "list", "folder": "up"})).await;
    assert_error(s, &b, 403, "outside");
    assert!(!b.to_string().contains("outside.txt"), "{b}");
    // A misspelt key is not ignored (it would answer another question).
    let (s, b) = ask(
        &c,
        json!({"action": "search", "term": "x", "dictonary": "quotes"}),
    )
    .await;
    assert_error(s, &b, 400, "\"dictonary\"");

    let (s, b) = ask(&c, json!({"action": "all", "dictionary": "missing"})).await;
    assert_error(s, &b, 404, "no dictionary");
    let (s, b) = ask(&c, json!({"action": "list", "folder": "nowhere"})).await;
    assert_error(s, &b, 404, "no folder");
    let (s, b) = c.get_json("/api/v1/elsewhere").await;
    assert_error(s, &b, 404, "no route");

    let (s, b) = c.get_json("/api/v1/json").await;
    assert_error(s, &b, 405, "only takes POST");
    let (s, b) = ask(&c, json!({"action": "search", "term": "x".repeat(70_000)})).await;
    assert_error(s, &b, 413, "at most");
    let (s, b) = raw("action=all", "application/x-www-form-urlencoded").await;
    assert_error(s, &b, 415, "Content-Type");
    // The worker caps executable output at 4096 bytes: the big dictionary cannot be answered.
    let (s, b) = ask(&c, json!({"action": "all", "dictionary": "big"})).await;
    assert_error(s, &b, 500, "over 4096 bytes");
    let (s, b) = ask(&c, json!({"action": "dance"})).await;
    assert_error(s, &b, 501, "unknown action");
    // grep blocks opening a FIFO nobody writes: it runs past the 500 ms limit and is killed.
    let (s, b) = ask(&c, json!({"action": "all", "dictionary": "stuck"})).await;
    assert_error(s, &b, 504, "time limit");

    // Every refusal is in the edge's log with its request id and status.
    let refusals = [
        (json!({"term": "x"}), 400),
        (json!({"action": "all", "dictionary": "a-folder"}), 403),
        (json!({"action": "all", "dictionary": "missing"}), 404),
        (json!({"action": "dance"}), 501),
    ];
    for (i, (body, status)) in refusals.into_iter().enumerate() {
        let id = format!("refusal-{i}-{status}");
        let r = c
            .client
            .post(c.url("/api/v1/json"))
            .header("x-request-id", &id)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
        let logged = c.log("edge").lines().any(|l| {
            l.contains(&format!("request_id={id}")) && l.contains(&format!("status={status}"))
        });
        assert!(logged, "no log line for {id}:\n{}", c.log("edge"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_worker_is_a_503() {
    let mut c = TestCluster::new();
    c.start_node("n1", &["master"], &[], &[]);
    c.start_edge(&[]);
    c.wait_groups(&["troupe.master"]).await;
    let (s, b) = ask(&c, json!({"action": "all"})).await;
    assert_error(s, &b, 503, "no worker");
}

/// Sends `n` questions at once; returns their handles.
fn ask_many(c: &TestCluster, n: usize) -> Vec<tokio::task::JoinHandle<(u16, Value)>> {
    (0..n)
        .map(|_| {
            let client = c.client.clone();
            let url = c.url("/api/v1/json");
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .json(&json!({"action": "search", "term": "one"}))
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.json().await.unwrap())
            })
        })
        .collect()
}

async fn wait_in_flight(c: &TestCluster, n: u64) {
    eventually(
        Duration::from_secs(20),
        "questions in flight at the edge",
        || async {
            let (_, h) = c.get_json("/healthz").await;
            h["in_flight"] == n
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn questions_overlap_during_the_blocking_delay_and_health_answers_meanwhile() {
    // The delay leaves ample time for all 50 to arrive before the first is answered.
    let c = question_cluster("5s");
    wait_answering(&c).await;
    let n = 50;
    let pending = ask_many(&c, n);
    // All of them run on the worker at once, inside the delay (one at a time, the gauge would
    // never pass 1), and /healthz is answered while they wait.
    wait_running(&c, n).await;
    let (s, h) = c.get_json("/healthz").await;
    assert_eq!(s, 200, "{h}");
    assert!(pending.iter().all(|p| !p.is_finished()));
    for p in pending {
        let (s, b) = p.await.unwrap();
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["nr of entries"], 3);
    }
}

/// Waits until worker w2 of node n2 reports `n` questions running at once.
async fn wait_running(c: &TestCluster, n: usize) {
    let line = format!(r#"troupe_worker_running{{node="n2",worker="w2"}} {n}"#);
    eventually(
        Duration::from_secs(20),
        &format!("{n} questions running on w2"),
        || async {
            let r = c.client.get(c.url("/metrics")).send().await.unwrap();
            r.text().await.unwrap().lines().any(|l| l == line)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_to_the_edge_answers_in_flight_questions_and_refuses_new_ones() {
    let mut c = question_cluster("2s");
    wait_answering(&c).await;
    let pending = ask_many(&c, 10);
    wait_in_flight(&c, 10).await;
    c.send_signal("edge", Signal::SIGINT);
    eventually(Duration::from_secs(10), "the edge is draining", || async {
        c.get_json("/healthz").await.1["status"] == "draining"
    })
    .await;
    let late = c
        .client
        .post(c.url("/api/v1/json"))
        .json(&json!({"action": "all"}))
        .send()
        .await
        .unwrap();
    let status = late.status().as_u16();
    let body: Value = late.json().await.unwrap();
    assert_error(status, &body, 503, "shutting down");
    for p in pending {
        let (s, b) = p.await.unwrap();
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["results"][0], "alpha one");
    }
    let exit = c.wait_exit("edge", Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_node_finishes_its_running_questions_before_leaving() {
    let mut c = question_cluster("2s");
    wait_answering(&c).await;
    let pending = ask_many(&c, 5);
    // Running on the worker, not merely in flight at the edge.
    wait_running(&c, 5).await;
    c.send_signal("n2", Signal::SIGTERM);
    for p in pending {
        let (s, b) = p.await.unwrap();
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["nr of entries"], 3);
    }
    let exit = c.wait_exit("n2", Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}");
    // With its only worker gone, a new question is a 503, not a hang.
    let (s, b) = ask(&c, json!({"action": "all"})).await;
    assert_error(s, &b, 503, "worker");
}
