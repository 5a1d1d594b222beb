//! A mutual-TLS client connection to a hub, for the CLI, the tests and the benchmarks.

use std::path::Path;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::proto::stophub::bank::v1::bank_service_client::BankServiceClient;
use crate::proto::stophub::oversight::v1::oversight_service_client::OversightServiceClient;
use crate::proto::stophub::police::v1::police_service_client::PoliceServiceClient;
use crate::server::MAX_MESSAGE_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("cannot connect to {url}: {cause}")]
    Connect {
        url: String,
        cause: tonic::transport::Error,
    },
    #[error("invalid hub address {url}: {cause}")]
    Url {
        url: String,
        cause: tonic::transport::Error,
    },
}

/// PEM material for one participant.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    /// The name the hub's certificate must carry (e.g. "localhost").
    pub server_name: String,
}

impl ClientTls {
    pub fn from_files(
        ca: &Path,
        cert: &Path,
        key: &Path,
        server_name: &str,
    ) -> Result<Self, ClientError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|cause| ClientError::Read {
                path: p.display().to_string(),
                cause,
            })
        };
        Ok(Self {
            ca_pem: read(ca)?,
            cert_pem: read(cert)?,
            key_pem: read(key)?,
            server_name: server_name.to_owned(),
        })
    }

    /// A participant's development certificate in `certs` (as minted by
    /// [`crate::certs::mint_dev`]), for a hub whose certificate names "localhost".
    pub fn dev(certs: &Path, role: &str, org: &str) -> Result<Self, ClientError> {
        let stem = crate::certs::client_stem(role, org);
        Self::from_files(
            &certs.join(crate::certs::CA_CERT_FILE),
            &certs.join(format!("{stem}.pem")),
            &certs.join(format!("{stem}-key.pem")),
            "localhost",
        )
    }
}

/// Opens one HTTP/2 connection to `url` (e.g. `https://127.0.0.1:50051`).
pub async fn connect(url: &str, tls: &ClientTls) -> Result<Channel, ClientError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
        .domain_name(tls.server_name.clone());
    let endpoint = Endpoint::from_shared(url.to_owned())
        .and_then(|e| e.tls_config(config))
        .map(|e| {
            // A silent hub is noticed as quickly as the hub notices a silent client.
            e.http2_keep_alive_interval(crate::server::KEEPALIVE_INTERVAL)
                .keep_alive_timeout(crate::server::KEEPALIVE_TIMEOUT)
                .keep_alive_while_idle(true)
        })
        .map_err(|cause| ClientError::Url {
            url: url.to_owned(),
            cause,
        })?;
    endpoint
        .connect()
        .await
        .map_err(|cause| ClientError::Connect {
            url: url.to_owned(),
            cause,
        })
}

pub fn police(channel: Channel) -> PoliceServiceClient<Channel> {
    PoliceServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

pub fn bank(channel: Channel) -> BankServiceClient<Channel> {
    BankServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

pub fn oversight(channel: Channel) -> OversightServiceClient<Channel> {
    OversightServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}
