//! `run(listener, options, clock, shutdown)`: open the store, build mutual TLS, start the hub's
//! writer, serve the three audiences plus health and reflection, and drain on shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::clock::SharedClock;
use crate::hub::{Hub, HubConfig};
use crate::participants::Registry;
use crate::proto::stophub::bank::v1::bank_service_server::BankServiceServer;
use crate::proto::stophub::oversight::v1::oversight_service_server::OversightServiceServer;
use crate::proto::stophub::police::v1::police_service_server::PoliceServiceServer;
use crate::service::bank::BankApi;
use crate::service::oversight::OversightApi;
use crate::service::police::PoliceApi;
use crate::store::Store;

/// Largest request or response message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// HTTP/2 pings on every connection this often; a peer that does not answer one within
/// [`KEEPALIVE_TIMEOUT`] is dropped, so a silent peer is detected within 20 s and its streams
/// (and their slots) are freed.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the hub's TLS material is.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA that client certificates must chain to.
    pub ca: PathBuf,
    /// The hub's certificate chain and key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub tls: TlsFiles,
    pub participants: PathBuf,
    pub hub: HubConfig,
    /// Where to serve Prometheus metrics over plain HTTP (`GET /metrics`); None for nowhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How long shutdown waits for open calls before it stops anyway.
    pub grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Registry(#[from] crate::participants::RegistryError),
    #[error("cannot read {path}: {cause}")]
    Tls { path: String, cause: std::io::Error },
    #[error(transparent)]
    Store(#[from] crate::error::Error),
    #[error("transport")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection")]
    Reflection(#[from] tonic_reflection::server::Error),
}

fn read(path: &PathBuf) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|cause| ServerError::Tls {
        path: path.display().to_string(),
        cause,
    })
}

/// The hub's mutual TLS: its identity, and client certificates required and chained to the CA.
pub fn tls_config(files: &TlsFiles) -> Result<ServerTlsConfig, ServerError> {
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(read(&files.cert)?, read(&files.key)?))
        .client_ca_root(Certificate::from_pem(read(&files.ca)?))
        .client_auth_optional(false))
}

/// The hub's transport settings (TLS, HTTP/2 keepalive); the benchmark's echo server uses the
/// same, so that its ceiling is the hub's.
pub fn transport(tls: ServerTlsConfig) -> Result<Server, ServerError> {
    Ok(Server::builder()
        .tls_config(tls)?
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT)))
}

/// Accepted connections, with Nagle off (small gRPC frames must not wait for an ACK).
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Serves until `shutdown` completes, then drains within the grace period.
pub async fn run(
    listener: TcpListener,
    options: ServeOptions,
    clock: SharedClock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = Arc::new(Registry::load(&options.participants)?);
    let tls = tls_config(&options.tls)?;

    let store = Arc::new(Store::open(&options.data_dir)?);
    let token = CancellationToken::new();
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let (hub, writer) = Hub::start_with_metrics(
        store,
        registry,
        options.hub.clone(),
        clock,
        token.clone(),
        metrics.clone(),
    )?;
    if let Some(addr) = options.metrics_listen {
        // Metrics are for operators: a busy metrics port must not keep the hub from serving.
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "metrics at /metrics");
                tokio::spawn(crate::metrics::serve(
                    listener,
                    metrics.clone(),
                    token.clone(),
                ));
            }
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot serve metrics; serving without them")
            }
        }
    }
    let timer_task = tokio::spawn(crate::timers::run(hub.clone()));

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<PoliceServiceServer<PoliceApi>>().await;
    health.set_serving::<BankServiceServer<BankApi>>().await;
    health
        .set_serving::<OversightServiceServer<OversightApi>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let police = PoliceServiceServer::new(PoliceApi { hub: hub.clone() })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let bank = BankServiceServer::new(BankApi {
        hub: hub.clone(),
        checks: crate::ratelimit::RateLimiter::new(options.hub.checks_per_second),
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let oversight = OversightServiceServer::new(OversightApi { hub: hub.clone() })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    drop(hub);

    let local = listener.local_addr().ok();
    tracing::info!(addr = %local.map(|a| a.to_string()).unwrap_or_default(), data_dir = %options.data_dir.display(), "stophub serving (mutual TLS)");
    let incoming = incoming(listener);
    let signal = {
        let token = token.clone();
        async move {
            tokio::select! {
                _ = shutdown => tracing::info!("shutdown requested: closing streams and draining"),
                _ = token.cancelled() => tracing::error!("the store failed: closing streams and stopping"),
            }
            token.cancel();
        }
    };
    let serve = transport(tls)?
        .layer(
            tower::ServiceBuilder::new()
                .layer(crate::observe::ObserveLayer { metrics })
                .layer(crate::limits::LimitLayer::new(options.hub.callers))
                .into_inner(),
        )
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(police)
        .add_service(bank)
        .add_service(oversight)
        .serve_with_incoming_shutdown(incoming, signal);
    let mut serve = Box::pin(serve);
    let grace = options.grace;
    let result = tokio::select! {
        r = &mut serve => r.map_err(ServerError::from),
        _ = async { token.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "grace period over; closing the remaining connections");
            Ok(())
        }
    };
    drop(serve);
    token.cancel();
    let _ = timer_task.await;
    // Everything a caller was answered for is durable already; this syncs the rest.
    let failed = writer.failed();
    writer.stop().await;
    if failed {
        return Err(ServerError::Store(crate::error::Error::Store(
            "a sync to stable storage failed: the hub stopped; restart it to recover from disk"
                .into(),
        )));
    }
    tracing::info!("stophub stopped");
    result
}
