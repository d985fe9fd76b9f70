//! The demo's operations endpoint (`--metrics-addr ADDR`): the Prometheus recorder for the `metrics` facade, and an
//! HTTP server for `/metrics`, `/healthz` and `/readyz`.
//!
//! ```text
//! cargo run --release -p server -- --metrics-addr 127.0.0.1:9100     # prints `metrics listening on 127.0.0.1:9100`
//! curl -s 127.0.0.1:9100/metrics | promtool check metrics
//! ```
//!
//! - The recorder is `metrics-exporter-prometheus` (docs/OPERATIONS.md says why not `prometheus-client`), installed
//!   globally before any server starts, since the runtime resolves its handles at start
//!   (`ServerBuilder::export_metrics`); the histograms get the runtime's buckets (1 us to 100 ms,
//!   [`packet_runtime::export::HANDLER_BUCKETS`]); in a cluster every series carries `node`.
//! - The HTTP server (hyper, HTTP/1.1, its own thread and current-thread runtime, so that a scrape never competes
//!   with the IO threads' tasks) answers `GET /metrics` with the exposition, `/healthz` with 200 while the process
//!   runs, `/readyz` with 200 while it accepts work ([`Health`]) and 503 otherwise, anything else with 404.
//! - What it must never do: block or slow the game (rendering happens on its own thread; headers must arrive within
//!   [`HEADER_TIMEOUT`], at most [`MAX_CONNECTIONS`] scrapers at once).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use packet_runtime::export::HANDLER_BUCKETS;

/// A scraper must send its request headers within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 64;
/// How often histograms are drained into their buckets when nobody scrapes (so their sample buffers stay small).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Whether the process accepts work, for `/readyz`: not once it received its stop signal (it is draining or
/// shutting down), and, in a cluster, only while at least one shard is live (a gateway with no shard to route to
/// turns every client away).
#[derive(Default)]
pub struct Health {
    stopping: AtomicBool,
    cluster: OnceLock<Box<dyn Fn() -> Result<(), &'static str> + Send + Sync>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("stopping", &self.stopping.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl Health {
    /// The process is stopping: `/readyz` says so from now on.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// In a cluster: `check` says whether the node can take work (`Err` names why not). Set once.
    pub fn cluster_check(&self, check: impl Fn() -> Result<(), &'static str> + Send + Sync + 'static) {
        let _ = self.cluster.set(Box::new(check));
    }

    /// `Ok` while the process accepts work; otherwise why not.
    pub fn ready(&self) -> Result<(), &'static str> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err("stopping");
        }
        self.cluster.get().map_or(Ok(()), |check| check())
    }
}

/// The running endpoint: the recorder's handle and the address it serves on.
#[derive(Debug)]
pub struct MetricsEndpoint {
    addr: SocketAddr,
    health: Arc<Health>,
}

impl MetricsEndpoint {
    /// Installs the Prometheus recorder as the global `metrics` recorder (every series labelled `node` when
    /// `node` is given), binds `addr` and serves on a thread of its own until the process exits. Stop signals
    /// (SIGINT, SIGTERM) turn `/readyz` to 503 from the first one on; the servers handle the signals themselves.
    /// Call it before starting any server. Fails if `addr` cannot be bound or a global recorder is installed already.
    pub fn start(addr: SocketAddr, node: Option<&str>) -> io::Result<MetricsEndpoint> {
        let mut builder = PrometheusBuilder::new();
        for name in ["packet_handler_seconds", "packet_logic_batch_seconds"] {
            builder = builder.set_buckets_for_metric(Matcher::Full(name.into()), HANDLER_BUCKETS).map_err(other)?;
        }
        if let Some(node) = node {
            builder = builder.add_global_label("node", node);
        }
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(other)?;

        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let health = Arc::new(Health::default());
        // Created here, before the caller starts anything or announces an address, so that no signal is missed.
        let signals = {
            use tokio::signal::unix::{SignalKind, signal};
            let _enter = runtime.enter();
            (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?)
        };
        let listener = {
            let _enter = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let served = Arc::clone(&health);
        std::thread::Builder::new().name("metrics-http".into()).spawn(move || {
            runtime.block_on(serve(listener, handle, served, signals));
        })?;
        Ok(MetricsEndpoint { addr, health })
    }

    /// The address it serves on (the port it got, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What `/readyz` reports.
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }
}

fn other(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    health: Arc<Health>,
    (mut interrupt, mut terminate): (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
) {
    let stop_watch = Arc::clone(&health);
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        stop_watch.stopping();
    });
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(UPKEEP_EVERY);
        loop {
            ticker.tick().await;
            upkeep.run_upkeep();
        }
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { return };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::debug!(%error, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (handle, health) = (handle.clone(), Arc::clone(&health));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let response = respond(&request, &handle, &health);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!(%error, "metrics endpoint: connection ended with an error");
            }
            drop(slot);
        });
    }
}

/// The answer to one request.
fn respond<B>(request: &Request<B>, handle: &PrometheusHandle, health: &Health) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid response")
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
    }
    match request.uri().path() {
        "/metrics" => Response::builder()
            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
            .body(Full::new(Bytes::from(handle.render())))
            .expect("a valid response"),
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => match health.ready() {
            Ok(()) => text(StatusCode::OK, "ready\n".into()),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
        },
        _ => text(StatusCode::NOT_FOUND, "not found: try /metrics, /healthz or /readyz\n".into()),
    }
}

/// The node name when `--node` is not given: the host name and the process id, `host:pid`.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str) -> Request<()> {
        Request::builder().method(method).uri(path).body(()).expect("a request")
    }

    fn status(health: &Health, method: Method, path: &str) -> StatusCode {
        let handle = PrometheusBuilder::new().build_recorder().handle();
        respond(&request(method, path), &handle, health).status()
    }

    #[test]
    fn readyz_is_200_until_the_stop_signal_and_healthz_stays_200() {
        let health = Health::default();
        assert_eq!(status(&health, Method::GET, "/readyz"), StatusCode::OK);
        health.stopping();
        assert_eq!(health.ready(), Err("stopping"));
        assert_eq!(status(&health, Method::GET, "/readyz"), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(status(&health, Method::GET, "/healthz"), StatusCode::OK);
        assert_eq!(status(&health, Method::GET, "/metrics"), StatusCode::OK);
    }

    #[test]
    fn readyz_follows_the_cluster_check() {
        let health = Health::default();
        let live = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&live);
        health.cluster_check(move || if seen.load(Ordering::Relaxed) { Ok(()) } else { Err("no shard live") });
        assert_eq!(health.ready(), Err("no shard live"));
        assert_eq!(status(&health, Method::GET, "/readyz"), StatusCode::SERVICE_UNAVAILABLE);
        live.store(true, Ordering::Relaxed);
        assert_eq!(status(&health, Method::GET, "/readyz"), StatusCode::OK);
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        let health = Health::default();
        assert_eq!(status(&health, Method::GET, "/"), StatusCode::NOT_FOUND);
        assert_eq!(status(&health, Method::POST, "/metrics"), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn the_exposition_has_prometheus_text_content_type() {
        let handle = PrometheusBuilder::new().build_recorder().handle();
        let response = respond(&request(Method::GET, "/metrics"), &handle, &Health::default());
        assert_eq!(response.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    }

    #[test]
    fn the_default_node_name_is_host_and_pid() {
        let name = default_node_name();
        let (host, pid) = name.rsplit_once(':').expect("host:pid");
        assert!(!host.is_empty());
        assert_eq!(pid, std::process::id().to_string());
    }
}
