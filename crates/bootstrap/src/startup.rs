//! Building and running the application: wiring, the bootstrap administrator, the HTTP server,
//! the background workers and graceful shutdown.

use crate::config::{Config, Secret};
use crate::wiring::{self, Consumers, Wiring, WiringError};
use crate::workers::Workers;
use actix_web::HttpServer;
use actix_web::dev::Server;
use application::{Shop, ShopError};
use base64::Engine;
use http_actix::ApiState;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rand::RngCore;
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

/// How long in-flight requests may take to finish after a stop signal.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the application could not start. Each displays as one line naming the culprit.
#[derive(Debug)]
pub enum StartupError {
    Wiring(WiringError),
    /// The listener could not be bound.
    Bind {
        address: String,
        source: std::io::Error,
    },
    /// The bootstrap administrator could not be set up.
    Admin(ShopError),
    Io(std::io::Error),
}

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Wiring(e) => e.fmt(f),
            Self::Bind { address, source } => {
                write!(f, "HOST/PORT: cannot listen on {address}: {source}")
            }
            Self::Admin(e) => write!(f, "ADMIN_TOKEN: cannot set up the administrator: {e}"),
            Self::Io(e) => write!(f, "start-up failed: {e}"),
        }
    }
}

impl std::error::Error for StartupError {}

impl From<WiringError> for StartupError {
    fn from(e: WiringError) -> Self {
        Self::Wiring(e)
    }
}

/// A built application, listening but not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    shop: Shop,
    consumers: Consumers,
    samplers: wiring::Samplers,
    admin_token: Secret,
    admin_token_generated: bool,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let wiring = wiring::wire(&config).await?;
        Self::build_with(config, wiring).await
    }

    /// Builds on adapters wired by the caller (tests keep handles on some of them, e.g. to
    /// switch the coupon gate off).
    pub async fn build_with(config: Config, wiring: Wiring) -> Result<Self, StartupError> {
        let shop = Shop::new(wiring.ports, config.shop.clone());

        let (admin_token, admin_token_generated) = match config.admin_token.clone() {
            Some(token) => (token, false),
            None => (generate_token(), true),
        };
        if !admin_token_generated && admin_token.expose().len() < 16 {
            tracing::warn!("ADMIN_TOKEN is shorter than 16 characters; use a long random token");
        }
        if config.database_url.is_some() && config.shop.token_keys.configured.is_empty() {
            tracing::warn!(
                "TOKEN_SIGNING_KEYS is not set: bearer tokens are signed with a secret kept in \
                 the database, so a copy of the database is enough to mint any token"
            );
        }
        shop.ensure_admin(admin_token.expose())
            .await
            .map_err(StartupError::Admin)?;

        let address = format!("{}:{}", config.host, config.port);
        let listener = listen(&address).map_err(|source| StartupError::Bind {
            address: address.clone(),
            source,
        })?;
        let port = listener.local_addr().map_err(StartupError::Io)?.port();

        let state = ApiState {
            shop: shop.clone(),
            health: wiring.health,
            metrics: prometheus(),
            rate_limits: wiring.rate_limits,
            trusted_proxies: config.trusted_proxies.clone(),
            metrics_token: config
                .metrics_token
                .as_ref()
                .map(|token| Arc::from(token.expose())),
            body_timeout: http_actix::BodyTimeout(config.body_timeout),
        };
        let server = HttpServer::new(move || http_actix::app(state.clone()))
            .listen(listener)
            .map_err(StartupError::Io)?
            // Signals are handled by `run_until_stopped`, which also stops the workers.
            .disable_signals()
            .shutdown_timeout(SHUTDOWN_TIMEOUT.as_secs())
            .run();
        Ok(Self {
            port,
            server,
            shop,
            consumers: wiring.consumers,
            samplers: wiring.samplers,
            admin_token,
            admin_token_generated,
        })
    }

    /// The port it listens on (useful with `PORT=0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The use cases this application serves (tests drive background jobs through it).
    pub fn shop(&self) -> &Shop {
        &self.shop
    }

    pub fn admin_token(&self) -> &str {
        self.admin_token.expose()
    }

    /// Whether the token was generated (then it must be shown once to the operator).
    pub fn admin_token_generated(&self) -> bool {
        self.admin_token_generated
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then: stops accepting connections, lets in-flight
    /// requests finish (at most [`SHUTDOWN_TIMEOUT`]), stops the background workers.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> std::io::Result<()> {
        let workers = Workers::start(&self.shop, &self.consumers, &self.samplers);
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        tracing::info!(port = self.port, "serving");
        let result = tokio::select! {
            finished = &mut server => finished,
            () = stop => {
                tracing::info!("stop requested: finishing in-flight requests");
                handle.stop(true).await;
                server.await
            }
        };
        workers.stop().await;
        tracing::info!("stopped");
        match result {
            Ok(served) => served,
            Err(join) => Err(std::io::Error::other(join)),
        }
    }
}

/// Pending connections the kernel queues before `accept`. `std::net::TcpListener::bind`
/// listens with a backlog of 128: a burst of 256 clients connecting at once overflowed it and
/// the kernel dropped SYNs, which clients retry only after a second (the 1 s latency outliers
/// of the coupon-burst benchmark). Capped by `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 1024;

/// Binds `address` (`host:port`) with [`LISTEN_BACKLOG`] and `SO_REUSEADDR` (a restarted
/// server does not wait for its old connections' TIME_WAIT).
fn listen(address: &str) -> std::io::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = address.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    })?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

/// 32 random bytes, URL-safe base64 (the random part of a user's token; unsigned, so it is
/// looked up like any `ADMIN_TOKEN`).
fn generate_token() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Latency buckets of every `*_duration_seconds` histogram (HTTP requests, gate calls), in
/// seconds: from a quarter of a millisecond (a gate round trip to Redis) to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder (a process has one global recorder, and tests build
/// several applications in one process, so it is installed once and shared).
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = match builder.set_buckets_for_metric(
                Matcher::Suffix("_duration_seconds".into()),
                LATENCY_BUCKETS,
            ) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "latency buckets rejected; using summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder was already installed; /metrics shows only this one's"
                );
            }
            crate::operations_metrics::register_series();
            handle
        })
        .clone()
}
