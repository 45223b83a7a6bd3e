//! `troupe edge`: a cluster member with no service roles that serves HTTP.

use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use troupe_http_edge::protect::{Protection, RateLimit};
use troupe_http_edge::{AppState, Draining, EdgeConfig, Shared};

use crate::cluster::{Cluster, ClusterOptions};
use crate::config::EdgeArgs;
use crate::signals;

pub async fn run(args: EdgeArgs) -> Result<ExitCode, String> {
    let cookie = args.cluster.cookie.clone().unwrap_or_default();
    let cluster = Cluster::start(ClusterOptions {
        name: args.name.clone(),
        listen: args.cluster.cluster,
        cookie,
        seeds: args.cluster.seeds.clone(),
        tls: args.cluster.tls_files(),
        hung_peer_after: args.cluster.hung_peer_after,
    })
    .await
    .map_err(|e| e.to_string())?;

    let trusted_proxies =
        troupe_http_edge::client_ip::TrustedProxies::parse(&args.trusted_proxies)?;
    let rate_limit = RateLimit::parse(&args.rate_limit)?;
    let mut tokens = args.api_tokens.clone();
    if let Some(file) = &args.api_token_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the token file {}: {e}", file.display()))?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    tracing::info!(
        tokens = tokens.len(),
        ?rate_limit,
        "public listener protection"
    );
    let protection = Arc::new(Protection::new(
        tokens,
        rate_limit,
        args.max_in_flight,
        args.max_header_bytes,
    ));
    let forgetting = protection.clone();
    let forget_task = tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            every.tick().await;
            forgetting.forget_idle_clients();
        }
    });
    let state = AppState::new(Shared {
        config: EdgeConfig {
            call_timeout: args.cluster.call_timeout,
            wait_timeout: args.wait_timeout,
            question_timeout: args.question_timeout,
            trusted_proxies,
            max_text_bytes: args.max_text_bytes,
            max_body_bytes: args.max_body_bytes,
            request_timeout: args.request_timeout,
        },
        membership: cluster.membership.clone(),
        draining: Draining::default(),
        protection,
        http_metrics: Default::default(),
        user_cache: Default::default(),
        last_known_nodes: Default::default(),
    });
    let public = TcpListener::bind(args.http)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.http))?;
    let internal = TcpListener::bind(args.internal_http)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.internal_http))?;
    tracing::info!(public = %args.http, internal = %args.internal_http, "edge listening");

    let (stop_tx, stop) = watch::channel(false);
    let serve = |listener: TcpListener, router: axum::Router| {
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        })
    };
    let public_task = serve(public, troupe_http_edge::public_router(state.clone()));
    let internal_task = serve(internal, troupe_http_edge::internal_router(state.clone()));

    let sig = signals::shutdown_requested().await;
    let deadline = args.cluster.shutdown_deadline;
    tracing::info!(
        signal = sig,
        in_flight = state.draining.in_flight(),
        "draining"
    );
    state.draining.start();
    if tokio::time::timeout(deadline, state.draining.idle())
        .await
        .is_err()
    {
        tracing::warn!(
            in_flight = state.draining.in_flight(),
            ?deadline,
            "drain deadline passed"
        );
    }
    let _ = stop_tx.send(true);
    // Idle keep-alive connections close at once; anything still running gets a short grace.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let _ = public_task.await;
        let _ = internal_task.await;
    })
    .await;
    forget_task.abort();
    cluster.shutdown().await;
    tracing::info!("edge stopped");
    Ok(ExitCode::SUCCESS)
}
