//! The ceiling: a bare unary echo over the hub's own mutual TLS (same certificates, same
//! server TLS and transport settings, same client connection), served by a child process
//! (`stophub bench-echo-serve`) and driven by the same load generator as the hub, so that
//! each throughput can be reported as a share of what gRPC alone does on this machine.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::load::{self, Level};

#[allow(clippy::all, missing_docs)]
mod pb {
    tonic::include_proto!("stophub.bench.v1");
}

use pb::echo_service_client::EchoServiceClient;
use pb::echo_service_server::{EchoService, EchoServiceServer};
use pb::{EchoRequest, EchoResponse};

/// Bytes each echo carries: about a one-account notice.
pub const PAYLOAD_BYTES: usize = 300;

#[derive(Debug, Clone, Args)]
pub struct EchoServeArgs {
    /// Address to listen on.
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// Directory with ca.pem, server.pem and server-key.pem.
    #[arg(long)]
    pub certs_dir: PathBuf,
}

struct Echo;

#[tonic::async_trait]
impl EchoService for Echo {
    async fn echo(&self, req: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        Ok(Response::new(EchoResponse {
            payload: req.into_inner().payload,
        }))
    }
}

/// `stophub bench-echo-serve`: serves the echo until the process is stopped.
pub async fn serve(args: EchoServeArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = crate::server::tls_config(&crate::server::TlsFiles {
        ca: args.certs_dir.join(crate::certs::CA_CERT_FILE),
        cert: args.certs_dir.join(crate::certs::SERVER_CERT_FILE),
        key: args.certs_dir.join(crate::certs::SERVER_KEY_FILE),
    })?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<EchoServiceServer<Echo>>().await;
    crate::server::transport(tls)?
        .add_service(health_service)
        .add_service(EchoServiceServer::new(Echo))
        .serve_with_incoming(crate::server::incoming(listener))
        .await?;
    Ok(())
}

/// Echo calls at `concurrency` in flight over `channels`.
pub async fn measure(
    channels: &[Channel],
    concurrency: usize,
    seconds: Duration,
    server_pid: u32,
) -> Level {
    let clients: Vec<EchoServiceClient<Channel>> = channels
        .iter()
        .cloned()
        .map(EchoServiceClient::new)
        .collect();
    load::closed_loop(concurrency, seconds, Some(server_pid), move |w, _| {
        let mut client = clients[w % clients.len()].clone();
        async move {
            client
                .echo(EchoRequest {
                    payload: vec![0x5a; PAYLOAD_BYTES],
                })
                .await
                .is_ok()
        }
    })
    .await
}
