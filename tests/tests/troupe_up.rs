//! `troupe up` as a user runs it: a whole local cluster, Ctrl-C, and again on the same data.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;
use troupe_tests::{eventually, eventually_some, free_port, troupe_bin, wait_child};

struct Up {
    child: std::process::Child,
    lines: Vec<String>,
}

/// A failing test must not leave a cluster running: stop it the way a user would, then kill.
impl Drop for Up {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
            if wait_child(&mut self.child, Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

fn start_up(data: &std::path::Path, http: u16) -> Up {
    start_up_with(data, http, free_port(), &[], Stdio::null())
}

/// `troupe up --nodes 3` with `extra` flags, its stderr (the children's lines and its own
/// log) going to `stderr`.
fn start_up_with(
    data: &std::path::Path,
    http: u16,
    internal: u16,
    extra: &[&str],
    stderr: impl Into<Stdio>,
) -> Up {
    let mut child = Command::new(troupe_bin())
        .args(["up", "--nodes", "3", "--http", &format!("127.0.0.1:{http}")])
        .args(["--internal-http", &format!("127.0.0.1:{internal}")])
        .args(extra)
        .arg("--data")
        .arg(data)
        .env_remove("TROUPE_COOKIE")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    // `troupe up` announces its listeners and then the data dir, last.
    let mut lines = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        let last = line.starts_with("data: ");
        lines.push(line);
        if last {
            break;
        }
    }
    Up { child, lines }
}

fn interrupt_and_wait(up: &mut Up) -> std::process::ExitStatus {
    kill(Pid::from_raw(up.child.id() as i32), Signal::SIGINT).unwrap();
    wait_child(&mut up.child, Duration::from_secs(60)).expect("troupe up did not stop")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let url = format!("{base}/readyz");
    eventually(Duration::from_secs(60), "ready", || async {
        matches!(client.get(&url).send().await, Ok(r) if r.status() == 200)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn up_runs_a_cluster_stops_on_ctrl_c_and_finds_its_data_again() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let base = format!("http://127.0.0.1:{http}");
    let client = reqwest::Client::new();

    let mut up = start_up(dir.path(), http);
    assert!(up
        .lines
        .iter()
        .any(|l| l == &format!("public http: 127.0.0.1:{http}")));
    assert!(up
        .lines
        .iter()
        .any(|l| l.starts_with("node n1: 127.0.0.1:") && l.ends_with("roles=master,scheduler")));
    assert!(up
        .lines
        .iter()
        .any(|l| l.starts_with("node n3: ") && l.contains("workers=worker-2")));
    wait_ready(&client, &base).await;

    let mut done = Vec::new();
    for i in 0..5 {
        let r = client
            .post(format!("{base}/jobs?wait=true"))
            .json(&json!({"text": format!("kept {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        done.push(r.json::<serde_json::Value>().await.unwrap());
    }
    // Readiness needs one worker; the second may still be joining.
    let get_cluster = || async {
        client
            .get(format!("{base}/cluster"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    eventually(Duration::from_secs(30), "both workers joined", || async {
        get_cluster().await["workers"].as_array().unwrap().len() == 2
    })
    .await;
    let cluster = get_cluster().await;
    let workers: Vec<(&str, &str)> = cluster["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].as_str().unwrap(), w["node"].as_str().unwrap()))
        .collect();
    assert_eq!(workers, vec![("worker-1", "n2"), ("worker-2", "n3")]);
    assert_eq!(cluster["nodes"].as_array().unwrap().len(), 3);

    assert!(interrupt_and_wait(&mut up).success());

    let mut again = start_up(dir.path(), http);
    wait_ready(&client, &base).await;
    for job in &done {
        let id = job["job_id"].as_str().unwrap();
        let r = client
            .get(format!("{base}/jobs/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let found: serde_json::Value = r.json().await.unwrap();
        assert_eq!(found["status"], "done");
        assert_eq!(found["file"], job["file"]);
        let node = found["node"].as_str().unwrap();
        assert!(dir
            .path()
            .join(node)
            .join(found["file"].as_str().unwrap())
            .exists());
    }
    assert!(interrupt_and_wait(&mut again).success());
}

#[test]
fn up_stops_the_cluster_and_names_the_edge_when_the_edge_cannot_listen() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http = taken.local_addr().unwrap().port();
    let (out, err) = (dir.path().join("up.out"), dir.path().join("up.err"));
    let child = Command::new(troupe_bin())
        .args(["up", "--nodes", "1", "--http", &format!("127.0.0.1:{http}")])
        .args(["--internal-http", &format!("127.0.0.1:{}", free_port())])
        .arg("--data")
        .arg(dir.path().join("data"))
        .env_remove("TROUPE_COOKIE")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let mut up = Up {
        child,
        lines: Vec::new(),
    };
    let status = wait_child(&mut up.child, Duration::from_secs(60))
        .expect("troupe up kept running without its edge");
    assert!(!status.success());
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(
        stderr.contains("edge exited") && stderr.contains("while the cluster was starting"),
        "{stderr}"
    );
    // The edge's own reason, quoted from its log.
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{http}")),
        "{stderr}"
    );
    // The others were stopped: the ports of the node and the geolocation stand-in are free.
    let stdout = std::fs::read_to_string(&out).unwrap();
    let ports: Vec<&str> = stdout
        .lines()
        .filter_map(|l| {
            l.strip_prefix("node n1: ")
                .or_else(|| l.strip_prefix("geo api: http://"))
        })
        .map(|rest| rest.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(ports.len(), 2, "{stdout}");
    for addr in ports {
        assert!(
            std::net::TcpListener::bind(addr).is_ok(),
            "{addr} is still taken"
        );
    }
}

/// Waits until `troupe up`'s stderr, written to `log`, holds `needle`.
async fn wait_logged(log: &std::path::Path, needle: &str) {
    eventually(Duration::from_secs(60), needle, || async {
        std::fs::read_to_string(log).is_ok_and(|t| t.contains(needle))
    })
    .await;
}

/// The pid of the `troupe node --name <name>` that `troupe up` (pid `up`) runs now.
fn node_pid(up: u32, name: &str) -> Option<i32> {
    let tasks = std::fs::read_dir(format!("/proc/{up}/task")).ok()?;
    let children: Vec<i32> = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    children.into_iter().find(|pid| {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.get(1) == Some(&b"node".as_slice())
            && args
                .windows(2)
                .any(|w| w == [b"--name".as_slice(), name.as_bytes()])
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn up_restarts_a_node_killed_with_sigkill_and_it_serves_its_data_again() {
    let dir = tempfile::tempdir().unwrap();
    let (http, internal) = (free_port(), free_port());
    let log = dir.path().join("up.err");
    let mut up = start_up_with(
        &dir.path().join("data"),
        http,
        internal,
        &[],
        std::fs::File::create(&log).unwrap(),
    );
    let client = reqwest::Client::new();
    // Until `up` itself has seen the cluster ready, a dying child stops the whole cluster.
    wait_logged(&log, "cluster ready").await;
    let created: serde_json::Value = client
        .post(format!("http://127.0.0.1:{http}/public-api/users"))
        .json(&json!({"name": "kept across the restart"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["user"]["id"].as_u64().expect("a user id");

    // n2 holds the user service.
    let old = node_pid(up.child.id(), "n2").expect("n2 runs");
    kill(Pid::from_raw(old), Signal::SIGKILL).unwrap();
    let new = eventually_some(Duration::from_secs(30), "n2 started again", || async {
        node_pid(up.child.id(), "n2").filter(|p| *p != old)
    })
    .await;
    assert_ne!(new, old);

    let user_url = format!("http://127.0.0.1:{internal}/users/{id}");
    let found: serde_json::Value =
        eventually_some(Duration::from_secs(30), "the user served again", || async {
            let r = client.get(&user_url).send().await.ok()?;
            if r.status() != 200 {
                return None;
            }
            r.json().await.ok()
        })
        .await;
    assert_eq!(found["user"]["name"], "kept across the restart");

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("exited; restarting it") && text.contains("restarted child=n2"),
        "{text}"
    );
    assert!(interrupt_and_wait(&mut up).success());
}

#[tokio::test(flavor = "multi_thread")]
async fn up_with_restart_never_leaves_a_killed_node_down() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let log = dir.path().join("up.err");
    let mut up = start_up_with(
        &dir.path().join("data"),
        http,
        free_port(),
        &["--restart", "never"],
        std::fs::File::create(&log).unwrap(),
    );
    wait_logged(&log, "cluster ready").await;
    let old = node_pid(up.child.id(), "n3").expect("n3 runs");
    kill(Pid::from_raw(old), Signal::SIGKILL).unwrap();
    wait_logged(&log, "not restarted").await;
    // The decision is taken when the exit is logged: nothing is planned to start it again.
    assert_eq!(node_pid(up.child.id(), "n3"), None);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("restarting it"), "{text}");
    // The rest of the cluster still stops cleanly; the dead node is not counted against it.
    interrupt_and_wait(&mut up);
}
