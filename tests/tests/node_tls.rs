//! Mutual TLS between nodes, with certificates made fresh for each run: members holding a
//! certificate of the cluster's CA work as usual; a node with another CA's certificate, a node
//! without TLS, and a node with a good certificate but the wrong cookie never join and get no
//! work; a silent connection to the cluster port keeps nobody else out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use serde_json::json;
use troupe_tests::{eventually, job_files, TestCluster};

/// A certificate authority that signs member certificates into a folder as PEM files.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

impl Authority {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let ca_pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: Issuer::new(params, key),
            ca_pem,
        }
    }

    /// Writes `<member>.crt`, `<member>.key` and `<member>-ca.crt` under `dir`; returns the
    /// node flags that use them. The certificate names this machine the way seeds do.
    fn member_flags(&self, dir: &Path, member: &str) -> Vec<String> {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, member);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let file = |suffix: &str| -> PathBuf { dir.join(format!("{member}{suffix}")) };
        std::fs::write(file(".crt"), cert.pem()).unwrap();
        std::fs::write(file(".key"), key.serialize_pem()).unwrap();
        std::fs::write(file("-ca.crt"), &self.ca_pem).unwrap();
        [
            ("--tls-cert", ".crt"),
            ("--tls-key", ".key"),
            ("--tls-ca", "-ca.crt"),
        ]
        .iter()
        .flat_map(|(flag, suffix)| [flag.to_string(), file(suffix).display().to_string()])
        .collect()
    }
}

/// Handshakes the master's node turned away so far.
fn refused(c: &TestCluster) -> usize {
    c.log("n1").matches("cluster TLS handshake refused").count()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_members_with_the_cluster_ca_and_cookie_join_over_tls() {
    let mut c = TestCluster::new();
    let pki = c.dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let cluster_ca = Authority::new("troupe test cluster CA");
    let other_ca = Authority::new("someone else's CA");

    let mut n1 = cluster_ca.member_flags(&pki, "n1");
    // Long enough that the member below joins, even on a loaded machine, while a silent
    // connection still holds its handshake open.
    n1.extend(["--tls-handshake-timeout".into(), "60s".into()]);
    c.start_node("n1", &["master"], &[], &strs(&n1));
    let edge = cluster_ca.member_flags(&pki, "edge");
    c.start_edge(&strs(&edge));
    // The edge reaches the master only through a TLS session.
    c.wait_groups(&["troupe.master"]).await;
    let (s, b) = c
        .post_json("/jobs", json!({"text": "for members only"}))
        .await;
    assert_eq!(s, 202, "{b}");
    let id = b["job_id"].as_str().unwrap().to_string();

    // A certificate from another CA (and the right cookie), though it trusts the cluster's CA:
    // the member checks the client's certificate too.
    let stranger = other_ca.member_flags(&pki, "stranger");
    std::fs::write(pki.join("stranger-ca.crt"), &cluster_ca.ca_pem).unwrap();
    c.start_node("stranger", &["worker"], &["sneaky"], &strs(&stranger));
    eventually(
        Duration::from_secs(20),
        "the stranger's certificate refused",
        || async { refused(&c) >= 1 },
    )
    .await;
    // A node that trusts only its own CA does not even accept the member as a server.
    let suspicious = other_ca.member_flags(&pki, "suspicious");
    c.start_node("suspicious", &["worker"], &["wary"], &strs(&suspicious));
    eventually(
        Duration::from_secs(20),
        "the member's certificate refused by the outsider",
        || async { c.log("suspicious").contains("cluster TLS handshake failed") },
    )
    .await;
    // No TLS at all: the member sees bytes that are not a TLS handshake.
    let before = refused(&c);
    c.start_node("plain", &["worker"], &["bare"], &[]);
    eventually(
        Duration::from_secs(20),
        "the plaintext node turned away",
        || async {
            c.log("plain").contains("closed before authenticating") && refused(&c) > before
        },
    )
    .await;
    // A good certificate but another cookie: TLS is not enough.
    let impostor = cluster_ca.member_flags(&pki, "impostor");
    let mut impostor_flags = strs(&impostor);
    impostor_flags.extend(["--cookie", "not-the-cookie"]);
    c.start_node("impostor", &["worker"], &["mole"], &impostor_flags);
    eventually(
        Duration::from_secs(20),
        "the impostor's cookie was refused",
        || async { c.log("impostor").contains("closed before authenticating") },
    )
    .await;

    let (_, cluster) = c.get_json("/cluster").await;
    assert!(cluster["groups"]["troupe.worker"].is_null(), "{cluster}");
    for outsider in ["stranger", "suspicious", "plain", "impostor"] {
        assert!(!cluster.to_string().contains(outsider), "{cluster}");
        assert!(job_files(&c.data_dir(outsider)).is_empty(), "{outsider}");
    }
    let (_, job) = c.get_json(&format!("/jobs/{id}")).await;
    assert_eq!(job["status"], "queued", "{job}");

    // A connection that never says a word holds a handshake open on the master's port. A member
    // still joins meanwhile (ractor_cluster's own TLS listener would keep it out until the silent
    // one closed).
    let silent = std::net::TcpStream::connect(c.node_addrs["n1"]).unwrap();
    let member = cluster_ca.member_flags(&pki, "n2");
    c.start_node("n2", &["worker"], &["w2"], &strs(&member));
    eventually(Duration::from_secs(30), "the job done by w2", || async {
        let (_, job) = c.get_json(&format!("/jobs/{id}")).await;
        job["status"] == "done" && job["worker"] == "w2"
    })
    .await;
    assert!(
        !c.log("n1").contains("not finished within"),
        "the member joined only after the silent connection was dropped:\n{}",
        c.log("n1")
    );
    assert_eq!(job_files(&c.data_dir("n2")).len(), 1);
    drop(silent);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_connection_is_dropped_at_the_handshake_deadline() {
    let mut c = TestCluster::new();
    let pki = c.dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let mut n1 = Authority::new("troupe test cluster CA").member_flags(&pki, "n1");
    n1.extend(["--tls-handshake-timeout".into(), "300ms".into()]);
    c.start_node("n1", &["master"], &[], &strs(&n1));
    let addr = c.node_addrs["n1"];
    eventually(Duration::from_secs(20), "n1 listening", || async {
        std::net::TcpStream::connect(addr).is_ok()
    })
    .await;
    let silent = std::net::TcpStream::connect(addr).unwrap();
    eventually(
        Duration::from_secs(20),
        "the silent handshake dropped",
        || async { c.log("n1").contains("not finished within 300ms") },
    )
    .await;
    // The node closed its end: reading gives end of file, not a wait.
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    let read = std::io::Read::read(&mut &silent, &mut buf);
    assert!(matches!(read, Ok(0)), "{read:?}");
}

#[test]
fn a_node_refuses_to_start_with_half_a_tls_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(troupe_tests::troupe_bin())
        .args(["node", "--name", "n1", "--roles", "master", "--data"])
        .arg(dir.path())
        .args(["--tls-cert", "/nonexistent.crt"])
        .env("TROUPE_COOKIE", "c")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tls-key"), "{stderr}");

    let out = std::process::Command::new(troupe_tests::troupe_bin())
        .args(["node", "--name", "n1", "--roles", "master", "--data"])
        .arg(dir.path())
        .args(["--cluster", "127.0.0.1:0"])
        .args(["--tls-cert", "/nonexistent.crt"])
        .args(["--tls-key", "/nonexistent.key"])
        .args(["--tls-ca", "/nonexistent-ca.crt"])
        .env("TROUPE_COOKIE", "c")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent.crt"), "{stderr}");
}
