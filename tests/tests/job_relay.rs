//! The job relay end to end, with real node processes: placement, durability across SIGKILL,
//! re-sending of jobs lost with a worker's node, and the edge's answers when the master is gone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use troupe_tests::{eventually, eventually_some, job_files, TestCluster};

const JOB_GROUPS: &[&str] = &["troupe.master", "troupe.worker"];

async fn job_status(c: &TestCluster, id: &str) -> serde_json::Value {
    let (status, body) = c.get_json(&format!("/jobs/{id}")).await;
    assert_eq!(status, 200, "GET /jobs/{id}: {body}");
    body
}

async fn wait_all_done(c: &TestCluster, ids: &[String], within: Duration) {
    eventually(within, "every job done", || async {
        for id in ids {
            let (s, b) = c.get_json(&format!("/jobs/{id}")).await;
            if s != 200 || b["status"] != "done" {
                return false;
            }
        }
        true
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_is_written_by_a_worker_on_another_node() {
    let mut c = TestCluster::new();
    c.start_node("n1", &["master"], &[], &[]);
    c.start_node("n2", &["worker"], &["w-a"], &[]);
    c.start_edge(&[]);
    c.wait_groups(JOB_GROUPS).await;

    let (status, body) = c
        .post_json("/jobs?wait=true", json!({"text": "hello from the edge"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "done");
    assert_eq!(body["node"], "n2");
    assert_eq!(body["worker"], "w-a");
    let id = body["job_id"].as_str().unwrap().to_string();
    let file = body["file"].as_str().unwrap();
    assert_eq!(file, format!("files/{id}.txt"));
    let written = std::fs::read_to_string(c.data_dir("n2").join(file)).unwrap();
    assert_eq!(written, "hello from the edge");
    assert!(
        job_files(&c.data_dir("n1")).is_empty(),
        "the master's node writes nothing"
    );

    let got = job_status(&c, &id).await;
    assert_eq!(got["status"], "done");
    assert_eq!(got["file"], body["file"]);
    assert!(c
        .log("n1")
        .contains(&format!("job {id} written to {file} on n2/w-a")));
}

#[tokio::test(flavor = "multi_thread")]
async fn text_arrives_as_json_form_or_query_and_bad_input_is_refused() {
    let mut c = TestCluster::new();
    c.start_node("n1", &["master", "worker"], &["w"], &[]);
    c.start_edge(&[]);
    c.wait_groups(JOB_GROUPS).await;

    let form = c
        .client
        .post(c.url("/jobs"))
        .form(&[("text", "from a form")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 202);
    let queued: serde_json::Value = form.json().await.unwrap();
    assert_eq!(queued["status"], "queued");
    let by_query = c
        .client
        .post(c.url("/jobs?text=from%20a%20query&wait=true"))
        .send()
        .await
        .unwrap();
    let status = by_query.status();
    let done: serde_json::Value = by_query.json().await.unwrap();
    assert_eq!(status, 200, "{done}");
    let text = std::fs::read_to_string(c.data_dir("n1").join(done["file"].as_str().unwrap()));
    assert_eq!(text.unwrap(), "from a query");

    let (s, b) = c.post_json("/jobs", json!({"text": ""})).await;
    assert_eq!((s, b["field"].as_str()), (400, Some("text")), "{b}");
    let (s, b) = c.post_json("/jobs", json!({"txt": "typo"})).await;
    assert_eq!((s, b["field"].as_str()), (400, Some("text")), "{b}");
    let malformed = c
        .client
        .post(c.url("/jobs"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let b: serde_json::Value = malformed.json().await.unwrap();
    assert_eq!(b["field"], "body");
    let (s, b) = c
        .post_json("/jobs", json!({"text": "x".repeat(1024 * 1024 + 1)}))
        .await;
    assert_eq!(s, 413, "{b}");
    assert!(b["error"].as_str().unwrap().contains("limit"));
    let (s, b) = c.get_json(&format!("/jobs/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(s, 404);
    assert!(b["error"].as_str().unwrap().contains("no job"));
    let (s, b) = c.get_json("/no/such/route").await;
    assert_eq!(s, 404);
    assert!(b["error"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_wait_durably_for_a_worker() {
    let mut c = TestCluster::new();
    c.start_node("n1", &["master"], &[], &[]);
    c.start_edge(&[]);
    // No worker yet: the cluster is not ready, but jobs are accepted and kept.
    // The edge may still be dialing the master: retry until the job is accepted.
    let accepted = eventually_some(Duration::from_secs(30), "the job accepted", || async {
        let sent = c
            .client
            .post(c.url("/jobs"))
            .json(&json!({"text": "patience"}))
            .send()
            .await
            .ok()?;
        if sent.status() != 202 {
            return None;
        }
        Some(sent.json::<serde_json::Value>().await.unwrap())
    })
    .await;
    let id = accepted["job_id"].as_str().unwrap().to_string();
    let (s, ready) = c.get_json("/readyz").await;
    assert_eq!(s, 503, "{ready}");
    assert!(ready["missing"].to_string().contains("troupe.worker"));
    assert_eq!(job_status(&c, &id).await["status"], "queued");

    c.start_node("n2", &["worker"], &["late"], &[]);
    wait_all_done(&c, std::slice::from_ref(&id), Duration::from_secs(30)).await;
    assert_eq!(job_status(&c, &id).await["worker"], "late");
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_survive_sigkill_of_a_worker_node_with_one_file_each() {
    let mut c = TestCluster::new();
    c.start_node("n1", &["master"], &[], &[]);
    c.start_node("n2", &["worker"], &["w2"], &[]);
    c.start_node("n3", &["worker"], &["w3"], &[]);
    c.start_edge(&[]);
    c.wait_groups(JOB_GROUPS).await;
    c.wait_workers(2).await;
    // The master itself must know w3 before n3 freezes (the edge's view above is not the
    // master's), or no job would go n3's way and none would need re-sending.
    let mut warm_ups = 0;
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, b) = c
            .post_json("/jobs?wait=true", json!({"text": "warm-up"}))
            .await;
        assert_eq!(s, 200, "{b}");
        warm_ups += 1;
        if b["node"] == "n3" {
            break;
        }
        assert!(Instant::now() < give_up, "no job reached n3");
    }

    let total = 200;
    let mut ids = Vec::with_capacity(total);
    let mut pending = futures::stream::FuturesUnordered::new();
    for i in 0..total {
        if i == total / 3 {
            // Frozen first, so that the jobs sent to n3 from now on are still in flight there
            // when it dies (a running n3 would finish them in a millisecond).
            c.freeze("n3").await;
        }
        if i == total / 2 {
            c.kill("n3");
        }
        let client = c.client.clone();
        let url = c.url("/jobs");
        pending.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&json!({"text": format!("job number {i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            let body: serde_json::Value = r.json().await.unwrap();
            (i, body["job_id"].as_str().unwrap().to_string())
        }));
        if pending.len() >= 16 {
            use futures::StreamExt;
            ids.push(pending.next().await.unwrap().unwrap());
        }
    }
    for p in pending {
        ids.push(p.await.unwrap());
    }
    let id_list: Vec<String> = ids.iter().map(|(_, id)| id.clone()).collect();
    wait_all_done(&c, &id_list, Duration::from_secs(60)).await;
    // The jobs n3 took with it were sent again, not lost and not left to their lease.
    assert!(
        // Its worker left, or its lease ran out first: either way, sent again.
        c.log("n1").contains("re-sending jobs:"),
        "the master never re-sent a job"
    );

    // n3 comes back and removes copies of jobs the master recorded elsewhere.
    c.restart("n3");
    let (n2, n3) = (c.data_dir("n2"), c.data_dir("n3"));
    eventually(
        Duration::from_secs(30),
        "exactly one file per job",
        || async {
            let mut count: HashMap<String, usize> = HashMap::new();
            for id in job_files(&n2).into_iter().chain(job_files(&n3)) {
                *count.entry(id).or_default() += 1;
            }
            count.len() == total + warm_ups && count.values().all(|&n| n == 1)
        },
    )
    .await;
    for (i, id) in &ids {
        let job = job_status(&c, id).await;
        let node = job["node"].as_str().unwrap();
        let text = std::fs::read_to_string(c.data_dir(node).join(job["file"].as_str().unwrap()));
        assert_eq!(text.unwrap(), format!("job number {i}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_masters_node_killed_and_restarted_loses_no_accepted_job() {
    let mut c = TestCluster::new();
    c.start_node("n1", &["master"], &[], &[]);
    c.start_node("n2", &["worker"], &["w"], &[]);
    c.start_edge(&["--call-timeout", "2s"]);
    c.wait_groups(JOB_GROUPS).await;
    // Done on the worker: the master has it, so the jobs below are sent out to it.
    let (s, first) = c.post_json("/jobs?wait=true", json!({"text": "t"})).await;
    assert_eq!(s, 200, "{first}");

    // A frozen worker finishes nothing: every job below is unfinished when the master dies,
    // sent to the worker or back in the queue once the master gives the worker up.
    c.freeze("n2").await;
    let mut ids = Vec::new();
    for i in 0..50 {
        let (s, b) = c.post_json("/jobs", json!({"text": format!("t{i}")})).await;
        assert_eq!(s, 202, "{b}");
        ids.push(b["job_id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        assert_ne!(job_status(&c, id).await["status"], "done");
    }
    c.kill("n1");

    // With the master gone the edge answers 503 with a message, well within the call timeout.
    let start = Instant::now();
    let (s, b) = c.post_json("/jobs", json!({"text": "while down"})).await;
    assert_eq!(s, 503, "{b}");
    assert!(b["error"].as_str().unwrap().contains("unavailable"));
    assert!(start.elapsed() < Duration::from_secs(3));

    c.restart("n1");
    c.wait_groups(&["troupe.master"]).await;
    assert!(
        c.log("n1").contains("resuming unfinished jobs jobs=50"),
        "the restarted master did not say it resumed the 50 jobs"
    );
    c.send_signal("n2", Signal::SIGCONT);
    wait_all_done(&c, &ids, Duration::from_secs(60)).await;
    let mut files = job_files(&c.data_dir("n2"));
    files.sort();
    let mut expected = ids.clone();
    expected.push(first["job_id"].as_str().unwrap().to_string());
    expected.sort();
    assert_eq!(files, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wait_that_runs_out_answers_202_with_the_job_id_every_time() {
    let mut c = TestCluster::new();
    // No worker: every job outlives its wait.
    c.start_node("n1", &["master"], &[], &[]);
    c.start_edge(&["--wait-timeout", "300ms"]);
    c.wait_groups(&["troupe.master"]).await;
    // The edge's deadline used to race ractor_cluster's own deadline for the remote reply and
    // lose about one call in four, answering 503 for an accepted job: many calls show it.
    let mut ids = Vec::new();
    for i in 0..24 {
        let (s, b) = c
            .post_json("/jobs?wait=true", json!({"text": format!("w{i}")}))
            .await;
        assert_eq!(s, 202, "call {i}: {b}");
        assert_eq!(b["status"], "queued", "{b}");
        ids.push(b["job_id"].as_str().expect("a job id").to_string());
    }
    for id in &ids {
        assert_eq!(job_status(&c, id).await["status"], "queued");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_copy_of_a_job_still_running_elsewhere_is_removed_once_it_is_done() {
    let mut c = TestCluster::new();
    // The master keeps a frozen node's session (and the job on it) for the whole test.
    c.start_node(
        "n1",
        &["master"],
        &[],
        &["--job-lease", "10m", "--hung-peer-after", "10m"],
    );
    c.start_node("n2", &["worker"], &["w2"], &[]);
    c.start_edge(&[]);
    c.wait_groups(JOB_GROUPS).await;
    let (s, b) = c
        .post_json("/jobs?wait=true", json!({"text": "warm"}))
        .await;
    assert_eq!((s, b["node"].as_str()), (200, Some("n2")), "{b}");

    c.freeze("n2").await;
    let (s, b) = c.post_json("/jobs", json!({"text": "the real one"})).await;
    assert_eq!(s, 202, "{b}");
    let id = b["job_id"].as_str().unwrap().to_string();
    assert_eq!(job_status(&c, &id).await["status"], "running");

    // n3 comes back holding a copy of that job, as a crash between writing and reporting
    // leaves one (the job was then sent to n2).
    let stale = c.data_dir("n3").join("files").join(format!("{id}.txt"));
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, "a stale copy").unwrap();
    c.start_node("n3", &["worker"], &["w3"], &[]);
    eventually(
        Duration::from_secs(30),
        "n3 keeps its copy while the job runs",
        || async {
            c.log("n3")
                .lines()
                .any(|l| l.contains("keeping this copy") && l.contains(&id))
        },
    )
    .await;
    assert_eq!(job_status(&c, &id).await["status"], "running");
    assert!(stale.exists());

    c.send_signal("n2", Signal::SIGCONT);
    wait_all_done(&c, std::slice::from_ref(&id), Duration::from_secs(30)).await;
    assert_eq!(job_status(&c, &id).await["node"], "n2");
    eventually(
        Duration::from_secs(30),
        "one file for the job in the whole cluster",
        || async { !stale.exists() },
    )
    .await;
    let copies: Vec<String> = ["n1", "n2", "n3"]
        .iter()
        .flat_map(|n| job_files(&c.data_dir(n)))
        .filter(|f| f == &id)
        .collect();
    assert_eq!(copies.len(), 1);
    let text = std::fs::read_to_string(c.data_dir("n2").join(format!("files/{id}.txt")));
    assert_eq!(text.unwrap(), "the real one");
}

#[tokio::test(flavor = "multi_thread")]
async fn any_text_within_the_limit_is_taken_however_its_body_encodes_it() {
    const LIMIT: usize = 1024 * 1024;
    let mut c = TestCluster::new();
    c.start_node("n1", &["master", "worker"], &["w"], &[]);
    c.start_edge(&[]);
    c.wait_groups(JOB_GROUPS).await;

    // JSON escapes each control character as \u0001: a 6 MiB body for a 1 MiB text.
    let text = "\u{1}".repeat(LIMIT);
    let (s, b) = c.post_json("/jobs?wait=true", json!({"text": text})).await;
    assert_eq!(s, 200, "{b}");
    let written = std::fs::read(c.data_dir("n1").join(b["file"].as_str().unwrap())).unwrap();
    assert!(written.len() == LIMIT && written.iter().all(|&b| b == 1));
    // One byte more is the relay's own refusal of the text, not the body limit's.
    let (s, b) = c
        .post_json("/jobs", json!({"text": "\u{1}".repeat(LIMIT + 1)}))
        .await;
    assert_eq!(s, 413, "{b}");
    assert!(b["error"].as_str().unwrap().contains("the limit is"), "{b}");

    // A form field percent-encodes each '/' in 3 bytes.
    let r = c
        .client
        .post(c.url("/jobs"))
        .form(&[("text", "/".repeat(LIMIT))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_edge_and_nodes_with_exit_code_zero() {
    let mut c = TestCluster::new();
    c.start_node("n1", &["master"], &[], &[]);
    c.start_node("n2", &["worker"], &["w"], &[]);
    c.start_edge(&[]);
    c.wait_groups(JOB_GROUPS).await;
    let (s, _) = c
        .post_json("/jobs?wait=true", json!({"text": "last"}))
        .await;
    assert_eq!(s, 200);

    let edge = c.signal_and_wait("edge", Signal::SIGTERM, Duration::from_secs(20));
    assert!(edge.success(), "edge exit: {edge:?}");
    let worker = c.signal_and_wait("n2", Signal::SIGINT, Duration::from_secs(20));
    assert!(worker.success(), "worker node exit: {worker:?}");
    let master = c.signal_and_wait("n1", Signal::SIGTERM, Duration::from_secs(20));
    assert!(master.success(), "master node exit: {master:?}");
    assert!(c.log("n2").contains("stopped"));
}

#[test]
fn a_node_refuses_to_start_without_a_cookie() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(troupe_tests::troupe_bin())
        .args(["node", "--name", "n1", "--data"])
        .arg(dir.path())
        .env_remove("TROUPE_COOKIE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cookie"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_on_a_hung_worker_node_go_to_another_worker_long_before_their_lease() {
    let mut c = TestCluster::new();
    // A lease far beyond the test's patience: only liveness pings can save these jobs.
    c.start_node("n1", &["master"], &[], &["--job-lease", "10m"]);
    c.start_node("n2", &["worker"], &["w2"], &[]);
    c.start_node("n3", &["worker"], &["w3"], &[]);
    c.start_edge(&[]);
    c.wait_groups(JOB_GROUPS).await;
    c.wait_workers(2).await;
    // The edge's view is not the master's: wait until n1 itself has n3 as a peer.
    eventually(Duration::from_secs(20), "n1 sees n3", || async {
        c.log("n1").contains("node up peer=n3@")
    })
    .await;

    c.freeze("n3").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (s, b) = c.post_json("/jobs", json!({"text": format!("h{i}")})).await;
        assert_eq!(s, 202, "{b}");
        ids.push(b["job_id"].as_str().unwrap().to_string());
    }
    wait_all_done(&c, &ids, Duration::from_secs(30)).await;
    for id in &ids {
        assert_eq!(job_status(&c, id).await["worker"], "w2");
    }
    // Whether or not a job was sent to n3 before it froze, its silence is noticed.
    eventually(
        Duration::from_secs(20),
        "n1 dropped the hung peer",
        || async { c.log("n1").contains("dropping its session") },
    )
    .await;
    c.send_signal("n3", Signal::SIGCONT);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draining_edge_finishes_in_flight_requests_and_refuses_new_ones() {
    let mut c = TestCluster::new();
    c.start_node("n1", &["master"], &[], &[]);
    c.start_edge(&["--shutdown-deadline", "30s"]);
    // Accepted while no worker exists, so the waiting request stays in flight.
    let client = c.client.clone();
    let url = c.url("/jobs?wait=true");
    c.wait_groups(&["troupe.master"]).await;
    let in_flight = tokio::spawn(async move {
        let r = client
            .post(url)
            .json(&json!({"text": "finish me"}))
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().await.unwrap(),
        )
    });
    eventually(
        Duration::from_secs(10),
        "request in flight at the edge",
        || async {
            let (_, health) = c.get_json("/healthz").await;
            health["in_flight"] == 1
        },
    )
    .await;

    c.send_signal("edge", Signal::SIGTERM);
    let late_client = reqwest::Client::new();
    let late_url = c.url("/jobs");
    eventually(
        Duration::from_secs(10),
        "new requests refused with 503",
        || {
            let late_client = late_client.clone();
            let late_url = late_url.clone();
            async move {
                match late_client
                    .post(&late_url)
                    .json(&json!({"text": "late"}))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 503 => {
                        let b: serde_json::Value = r.json().await.unwrap();
                        b["error"]
                            .as_str()
                            .is_some_and(|e| e.contains("shutting down"))
                    }
                    _ => false,
                }
            }
        },
    )
    .await;

    // A worker joins; the in-flight request gets its real answer, then the edge exits 0.
    c.start_node("n2", &["worker"], &["w"], &[]);
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "done");
    let exit = c.wait_exit("edge", Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_with_another_cookie_never_joins_and_gets_no_work() {
    let mut c = TestCluster::new();
    c.start_node("n1", &["master"], &[], &[]);
    c.start_edge(&[]);
    c.wait_groups(&["troupe.master"]).await;
    let (s, b) = c
        .post_json("/jobs", json!({"text": "for members only"}))
        .await;
    assert_eq!(s, 202);
    let id = b["job_id"].as_str().unwrap().to_string();

    // Same flags as a member, but another cookie (a later flag wins over the environment).
    c.start_node(
        "intruder",
        &["worker"],
        &["sneaky"],
        &["--cookie", "not-the-cookie"],
    );
    eventually(
        Duration::from_secs(20),
        "the intruder's handshake failed",
        || async { c.log("intruder").contains("closed before authenticating") },
    )
    .await;
    let (_, cluster) = c.get_json("/cluster").await;
    assert!(cluster["groups"]["troupe.worker"].is_null(), "{cluster}");
    assert!(!cluster.to_string().contains("intruder"), "{cluster}");
    assert_eq!(job_status(&c, &id).await["status"], "queued");
    assert!(job_files(&c.data_dir("intruder")).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_view_keeps_a_down_node_with_its_roles_and_workers() {
    let mut c = TestCluster::new();
    c.start_node("n1", &["master"], &[], &[]);
    c.start_node("n2", &["worker"], &["w2"], &[]);
    c.start_edge(&[]);
    c.wait_workers(1).await;
    let node = |cluster: &Value, name: &str| {
        cluster["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let up = eventually_some(Duration::from_secs(20), "n2 listed up", || async {
        let (_, cluster) = c.get_json("/cluster").await;
        (node(&cluster, "n2")["status"] == "up").then_some(cluster)
    })
    .await;
    assert_eq!(node(&up, "n2")["roles"], json!(["worker"]), "{up}");
    assert_eq!(
        up["workers"],
        json!([{"name": "w2", "node": "n2", "status": "up"}])
    );

    c.kill("n2");
    let down = eventually_some(Duration::from_secs(20), "n2 listed down", || async {
        let (_, cluster) = c.get_json("/cluster").await;
        (node(&cluster, "n2")["status"] == "down").then_some(cluster)
    })
    .await;
    // Down, but still known for what it runs: its roles, and its worker marked down.
    assert_eq!(node(&down, "n2")["roles"], json!(["worker"]), "{down}");
    assert_eq!(
        down["workers"],
        json!([{"name": "w2", "node": "n2", "status": "down"}])
    );
    assert!(down["groups"]["troupe.worker"]
        .as_array()
        .is_none_or(Vec::is_empty));
}
