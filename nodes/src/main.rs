//! The `troupe` binary: parses its subcommand and hands over to the runner for it.

mod cluster;
mod config;
mod edge;
mod geoip_stub;
mod node;
mod restart;
mod roles;
mod signals;
mod tls;
mod up;

use std::process::ExitCode;

use clap::Parser;
use config::{Cli, Command};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ractor_cluster=warn,ractor=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: log files and pipes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    log_config(&cli.command);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("troupe: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Node(args) => {
                require_cookie(&args.cluster)?;
                node::run(args).await
            }
            Command::Edge(args) => {
                require_cookie(&args.cluster)?;
                edge::run(args).await
            }
            Command::Up(args) => up::run(args).await,
            Command::GeoipStub(args) => geoip_stub::run(args).await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("troupe: {message}");
            ExitCode::FAILURE
        }
    }
}

fn require_cookie(cluster: &config::ClusterArgs) -> Result<(), String> {
    match cluster.cookie.as_deref() {
        Some(c) if !c.is_empty() => Ok(()),
        _ => Err(
            "a cluster cookie is required: pass --cookie or set TROUPE_COOKIE \
                  (troupe up makes one for its children)"
                .into(),
        ),
    }
}

/// Logs the resolved configuration, with secrets (cookie, API tokens) redacted.
fn log_config(command: &Command) {
    tracing::info!(config = %redacted(command), "troupe starting");
}

/// The configuration as `Debug` shows it, with every secret replaced.
fn redacted(command: &Command) -> String {
    let mut shown = format!("{command:?}");
    let secrets: Vec<String> = match command {
        Command::Node(a) => a.cluster.cookie.iter().cloned().collect(),
        Command::Edge(a) => a
            .cluster
            .cookie
            .iter()
            .chain(a.api_tokens.iter())
            .cloned()
            .collect(),
        Command::Up(a) => a.api_tokens.clone(),
        Command::GeoipStub(_) => Vec::new(),
    };
    // Replaced as the quoted literal `Debug` prints, so a short secret cannot mangle the words
    // of the rest of the line (a cookie "e" would otherwise take every letter e with it).
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        shown = shown.replace(&format!("{secret:?}"), "\"<redacted>\"");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_nothing_else() {
        let cli = Cli::try_parse_from([
            "troupe",
            "edge",
            "--cookie",
            "e",
            "--api-token",
            "tok3n",
            "--seed",
            "127.0.0.1:1",
        ])
        .unwrap();
        let shown = redacted(&cli.command);
        assert!(
            !shown.contains("\"e\"") && !shown.contains("tok3n"),
            "{shown}"
        );
        assert_eq!(shown.matches("<redacted>").count(), 2, "{shown}");
        // A short cookie does not take the letters of other fields with it.
        assert!(shown.contains("seed"), "{shown}");
    }
}
