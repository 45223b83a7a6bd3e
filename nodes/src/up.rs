//! `troupe up`: a whole local cluster as child processes of this one.
//!
//! Children run in their own process group, so a terminal's Ctrl-C reaches only this process;
//! it then stops the edge first (no new requests), then the nodes from last to first (workers
//! drain while the master still records their reports). A child that dies is reported, not
//! restarted: restarting crashed processes is the host supervisor's job.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::config::UpArgs;
use crate::signals;

/// What one node of the local cluster runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    pub name: String,
    pub roles: Vec<String>,
    pub workers: Vec<String>,
}

/// The spread of roles: the master and the scheduler on n1, listing and user on n2, events and
/// the geo-throttle on n3 (the last node when there are fewer), workers on every node but n1
/// (on n1 too when it is alone), worker names dealt out in turn.
pub fn plan(nodes: u16, worker_names: &[String]) -> Vec<NodePlan> {
    let nodes = nodes.max(1) as usize;
    let worker_nodes: Vec<usize> = if nodes == 1 {
        vec![0]
    } else {
        (1..nodes).collect()
    };
    let names: Vec<String> = if worker_names.is_empty() {
        (1..=worker_nodes.len())
            .map(|i| format!("worker-{i}"))
            .collect()
    } else {
        worker_names.to_vec()
    };
    let mut plans: Vec<NodePlan> = (0..nodes)
        .map(|i| NodePlan {
            name: format!("n{}", i + 1),
            roles: Vec::new(),
            workers: Vec::new(),
        })
        .collect();
    plans[0].roles.push("master".into());
    plans[0].roles.push("scheduler".into());
    let data_node = 1.min(nodes - 1);
    plans[data_node].roles.push("listing".into());
    plans[data_node].roles.push("user".into());
    let events_node = 2.min(nodes - 1);
    plans[events_node].roles.push("events".into());
    plans[events_node].roles.push("geo".into());
    for (i, name) in names.into_iter().enumerate() {
        plans[worker_nodes[i % worker_nodes.len()]]
            .workers
            .push(name);
    }
    for p in &mut plans {
        if !p.workers.is_empty() {
            p.roles.push("worker".into());
        }
    }
    plans
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

pub async fn run(args: UpArgs) -> Result<ExitCode, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let cookie = uuid::Uuid::new_v4().simple().to_string();
    let internal = args
        .internal_http
        .unwrap_or_else(|| SocketAddr::new(args.http.ip(), args.http.port().wrapping_add(1)));
    let plans = plan(args.nodes, &args.worker_names);
    let mut addrs = Vec::new();
    for i in 0..plans.len() {
        let port = match args.cluster_port_base {
            Some(base) => base
                .checked_add(i as u16)
                .ok_or("--cluster-port-base is too high")?,
            None => free_port()?,
        };
        addrs.push(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    std::fs::create_dir_all(&args.data)
        .map_err(|e| format!("cannot create {}: {e}", args.data.display()))?;

    let deadline = format!("{}ms", args.shutdown_deadline.as_millis());
    // The stand-in geolocation API, unless a real one was named: the cluster needs nothing
    // from outside.
    let (geo_url, mut stub) = match &args.geo_url {
        Some(url) => (url.clone(), None),
        None => {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let mut cmd = child_command(&exe, &cookie);
            cmd.arg("geoip-stub").args(["--http", &addr.to_string()]);
            (format!("http://{addr}"), Some(spawn(cmd, "geoip-stub")?))
        }
    };
    let mut nodes = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        let mut cmd = child_command(&exe, &cookie);
        cmd.arg("node")
            .args(["--name", &p.name])
            .args(["--cluster", &addrs[i].to_string()])
            .args(["--roles", &p.roles.join(",")])
            .args(["--data", &node_dir(&args.data, &p.name)])
            .args(["--shutdown-deadline", &deadline]);
        if !p.workers.is_empty() {
            cmd.args(["--workers", &p.workers.join(",")]);
            if let Some(delay) = args.question_delay {
                cmd.args(["--question-delay", &format!("{}ms", delay.as_millis())]);
            }
            if let Some(dir) = &args.dictionaries {
                cmd.arg("--dictionaries").arg(dir);
            }
            if let Some(dir) = &args.folders {
                cmd.arg("--folders").arg(dir);
            }
        }
        if p.roles.iter().any(|r| r == "geo") {
            cmd.args(["--geo-url", &geo_url, "--geo-api", &args.geo_api]);
        }
        // Each node dials the ones before it, so every pair has exactly one dialer, and the
        // dialer re-dials when the other restarts.
        for earlier in &addrs[..i] {
            cmd.args(["--seed", &earlier.to_string()]);
        }
        nodes.push((p.name.clone(), spawn(cmd, &p.name)?));
    }
    let edge_cluster = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let mut cmd = child_command(&exe, &cookie);
    cmd.arg("edge")
        .args(["--http", &args.http.to_string()])
        .args(["--internal-http", &internal.to_string()])
        .args(["--cluster", &edge_cluster.to_string()])
        .args(["--shutdown-deadline", &deadline]);
    for a in &addrs {
        cmd.args(["--seed", &a.to_string()]);
    }
    if !args.trusted_proxies.is_empty() {
        cmd.args(["--trusted-proxies", &args.trusted_proxies.join(",")]);
    }
    cmd.args(["--rate-limit", &args.rate_limit]);
    if !args.api_tokens.is_empty() {
        // Through the environment, so tokens do not show in the process list.
        cmd.env("TROUPE_API_TOKENS", args.api_tokens.join(","));
    }
    let mut edge = spawn(cmd, "edge")?;

    println!("public http: {}", args.http);
    println!("internal http: {internal}");
    for (i, p) in plans.iter().enumerate() {
        let workers = if p.workers.is_empty() {
            String::new()
        } else {
            format!(" workers={}", p.workers.join(","))
        };
        println!(
            "node {}: {} roles={}{workers}",
            p.name,
            addrs[i],
            p.roles.join(",")
        );
    }
    println!("geo api: {geo_url}");
    println!("data: {}", args.data.display());

    let sig = signals::shutdown_requested().await;
    tracing::info!(signal = sig, "stopping the cluster");
    let grace = args.shutdown_deadline * 2 + Duration::from_secs(5);
    let mut clean = stop(&mut edge, "edge", grace).await;
    for (name, child) in nodes.iter_mut().rev() {
        clean &= stop(child, name, grace).await;
    }
    if let Some(stub) = stub.as_mut() {
        clean &= stop(stub, "geoip-stub", grace).await;
    }
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn node_dir(data: &Path, name: &str) -> String {
    data.join(name).display().to_string()
}

fn child_command(exe: &Path, cookie: &str) -> Command {
    let mut cmd = Command::new(exe);
    cmd.env("TROUPE_COOKIE", cookie)
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    cmd
}

fn spawn(mut cmd: Command, name: &str) -> Result<Child, String> {
    cmd.spawn().map_err(|e| format!("cannot start {name}: {e}"))
}

/// SIGTERM, then wait for a clean exit; SIGKILL past `grace`. True when it exited 0.
async fn stop(child: &mut Child, name: &str, grace: Duration) -> bool {
    if let Ok(Some(status)) = child.try_wait() {
        tracing::warn!(%name, %status, "had already exited");
        return false;
    }
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(status)) if status.success() => true,
        Ok(Ok(status)) => {
            tracing::warn!(%name, %status, "exited uncleanly");
            false
        }
        _ => {
            tracing::warn!(%name, "did not stop in time; killing");
            let _ = child.kill().await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_nodes_put_master_alone_and_a_worker_on_each_other_node() {
        let p = plan(3, &[]);
        assert_eq!(p[0].roles, vec!["master", "scheduler"]);
        assert_eq!(p[1].roles, vec!["listing", "user", "worker"]);
        assert_eq!(p[1].workers, vec!["worker-1"]);
        assert_eq!(p[2].workers, vec!["worker-2"]);
        assert_eq!(p[2].roles, vec!["events", "geo", "worker"]);
    }

    #[test]
    fn one_node_runs_everything_and_names_are_dealt_in_turn() {
        let p = plan(1, &[]);
        assert_eq!(
            p[0].roles,
            vec![
                "master",
                "scheduler",
                "listing",
                "user",
                "events",
                "geo",
                "worker"
            ]
        );
        let p = plan(3, &["a".into(), "b".into(), "c".into()]);
        assert_eq!(p[1].workers, vec!["a", "c"]);
        assert_eq!(p[2].workers, vec!["b"]);
    }
}
