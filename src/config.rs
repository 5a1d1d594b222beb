//! Typed settings for `stophub serve`, from flags with environment fallbacks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::hub::HubConfig;
use crate::server::{ServeOptions, TlsFiles};

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (mutual TLS only; there is no plaintext listener).
    #[arg(long, env = "STOPHUB_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Directory of the sled store.
    #[arg(long, env = "STOPHUB_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Directory holding ca.pem, server.pem and server-key.pem (used when --ca/--cert/--key are not given).
    #[arg(long, env = "STOPHUB_CERTS_DIR", default_value = "certs")]
    pub certs_dir: PathBuf,
    /// CA certificate that client certificates must chain to [default: <certs-dir>/ca.pem].
    #[arg(long, env = "STOPHUB_CA")]
    pub ca: Option<PathBuf>,
    /// The hub's certificate [default: <certs-dir>/server.pem].
    #[arg(long, env = "STOPHUB_CERT")]
    pub cert: Option<PathBuf>,
    /// The hub's private key [default: <certs-dir>/server-key.pem].
    #[arg(long, env = "STOPHUB_KEY")]
    pub key: Option<PathBuf>,
    /// Participants registry (TOML): institutions, police agencies, oversight bodies.
    #[arg(
        long,
        env = "STOPHUB_PARTICIPANTS",
        default_value = "participants.toml"
    )]
    pub participants: PathBuf,
    /// Development mode: create dev certificates and a demo participants file if missing.
    #[arg(long, env = "STOPHUB_DEV")]
    pub dev: bool,
    /// Extra host names or IPs for the dev server certificate (with --dev), e.g. a compose service name.
    #[arg(long = "dev-host", env = "STOPHUB_DEV_HOSTS", value_delimiter = ',')]
    pub dev_hosts: Vec<String>,
    /// Largest amount any request may name, in fen.
    #[arg(long, env = "STOPHUB_MAX_AMOUNT_FEN", default_value_t = HubConfig::default().max_amount_fen)]
    pub max_amount_fen: i64,
    /// How far in the future of the hub's clock a client-supplied time may be, in seconds.
    #[arg(long, env = "STOPHUB_MAX_FUTURE_SKEW_SECS", default_value_t = 300)]
    pub max_future_skew_secs: i64,
    /// Time an institution has to answer a stop-payment, in seconds.
    #[arg(long, env = "STOPHUB_STOP_ANSWER_SECS", default_value_t = 300)]
    pub stop_answer_secs: i64,
    /// On shutdown, how long to wait for open calls, in seconds.
    #[arg(long, env = "STOPHUB_GRACE_SECS", default_value_t = 10)]
    pub grace_secs: u64,
}

impl ServeArgs {
    pub fn options(&self) -> Result<ServeOptions, String> {
        if self.max_amount_fen <= 0 {
            return Err("--max-amount-fen must be > 0".into());
        }
        if self.max_future_skew_secs < 0 {
            return Err("--max-future-skew-secs must be >= 0".into());
        }
        if self.stop_answer_secs <= 0 {
            return Err("--stop-answer-secs must be > 0".into());
        }
        let pick = |given: &Option<PathBuf>, name: &str| {
            given.clone().unwrap_or_else(|| self.certs_dir.join(name))
        };
        Ok(ServeOptions {
            data_dir: self.data_dir.clone(),
            tls: TlsFiles {
                ca: pick(&self.ca, crate::certs::CA_CERT_FILE),
                cert: pick(&self.cert, crate::certs::SERVER_CERT_FILE),
                key: pick(&self.key, crate::certs::SERVER_KEY_FILE),
            },
            participants: self.participants.clone(),
            hub: HubConfig {
                max_amount_fen: self.max_amount_fen,
                max_future_skew_ms: self.max_future_skew_secs * 1000,
                stop_answer_deadline_ms: self.stop_answer_secs * 1000,
            },
            grace: Duration::from_secs(self.grace_secs),
        })
    }
}
