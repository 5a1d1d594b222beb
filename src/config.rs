//! Typed settings for `stophub serve`, from flags with environment fallbacks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::domain::blacklist::BasisTable;
use crate::domain::policy::Policy;
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
    #[arg(long, env = "STOPHUB_DEV", value_parser = clap::builder::BoolishValueParser::new(), default_missing_value = "true", num_args = 0..=1)]
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
    /// Time an institution has to answer a stop-payment or a release, in seconds.
    #[arg(long, env = "STOPHUB_STOP_ANSWER_SECS", default_value_t = 300)]
    pub stop_answer_secs: i64,
    /// Time an institution has to answer a freeze or a renewal, in seconds.
    #[arg(long, env = "STOPHUB_FREEZE_ANSWER_SECS", default_value_t = 1800)]
    pub freeze_answer_secs: i64,
    /// A stop-payment's term from its execution time, in hours.
    #[arg(long, env = "STOPHUB_STOP_TERM_HOURS", default_value_t = 48)]
    pub stop_term_hours: i64,
    /// A freeze's term, in calendar months.
    #[arg(long, env = "STOPHUB_FREEZE_TERM_MONTHS", default_value_t = 6)]
    pub freeze_term_months: u32,
    /// A freeze's term for a major case approved at city level, in calendar months.
    #[arg(long, env = "STOPHUB_MAJOR_FREEZE_TERM_MONTHS", default_value_t = 12)]
    pub major_freeze_term_months: u32,
    /// A renewal must arrive at least this many days before the freeze expires.
    #[arg(long, env = "STOPHUB_RENEWAL_LEAD_DAYS", default_value_t = 10)]
    pub renewal_lead_days: i64,
    /// Police are reminded this many days before a freeze expires.
    #[arg(long, env = "STOPHUB_REMINDER_LEAD_DAYS", default_value_t = 10)]
    pub reminder_lead_days: i64,
    /// How far an institution's reported execution time may be from the hub's clock, in
    /// seconds, before the hub uses its own receipt time (and records the discrepancy).
    #[arg(long, env = "STOPHUB_MAX_EXECUTION_SKEW_SECS", default_value_t = 300)]
    pub max_execution_skew_secs: i64,
    /// Legal-basis table of the blacklist (TOML: `version` and `[[basis]]` entries with code,
    /// description, term_months, cap_months and [basis.effects]) [default: the built-in table].
    #[arg(long, env = "STOPHUB_LEGAL_BASES")]
    pub legal_bases: Option<PathBuf>,
    /// Blacklist changes kept for banks to replay; one further behind gets a fresh snapshot.
    #[arg(long, env = "STOPHUB_BLACKLIST_LOG_RETAIN", default_value_t = 100_000)]
    pub blacklist_log_retain: u64,
    /// Blacklist subject checks allowed per institution per second.
    #[arg(long, env = "STOPHUB_CHECKS_PER_SECOND", default_value_t = 1000)]
    pub checks_per_second: u32,
    /// Calls each caller (one certificate's organisation) may start per second; 0 for no limit.
    #[arg(long, env = "STOPHUB_REQUESTS_PER_SECOND", default_value_t = HubConfig::default().callers.requests_per_second)]
    pub requests_per_second: u32,
    /// Streams (Subscribe, SyncBlacklist, WatchNotice, StreamAudit) each caller may hold open.
    #[arg(long, env = "STOPHUB_MAX_STREAMS_PER_CALLER", default_value_t = HubConfig::default().callers.max_streams)]
    pub max_streams_per_caller: usize,
    /// Instructions an institution may have awaiting its answer before new notices for it are
    /// refused (RESOURCE_EXHAUSTED, naming the institution).
    #[arg(long, env = "STOPHUB_MAX_BACKLOG", default_value_t = HubConfig::default().max_backlog)]
    pub max_backlog: u64,
    /// Free disk space (MiB) kept in reserve on the data directory's filesystem: below it,
    /// writes are refused with UNAVAILABLE until space returns; 0 to never refuse.
    #[arg(long, env = "STOPHUB_MIN_FREE_MIB", default_value_t = HubConfig::default().min_free_bytes >> 20)]
    pub min_free_mib: u64,
    /// Where to serve Prometheus metrics (plain HTTP, GET /metrics); "off" for nowhere.
    #[arg(long, env = "STOPHUB_METRICS_LISTEN", default_value = "127.0.0.1:9464")]
    pub metrics_listen: String,
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
        for (name, v) in [
            ("--stop-answer-secs", self.stop_answer_secs),
            ("--freeze-answer-secs", self.freeze_answer_secs),
            ("--stop-term-hours", self.stop_term_hours),
            ("--freeze-term-months", i64::from(self.freeze_term_months)),
            (
                "--major-freeze-term-months",
                i64::from(self.major_freeze_term_months),
            ),
        ] {
            if v <= 0 {
                return Err(format!("{name} must be > 0"));
            }
        }
        for (name, v) in [
            ("--renewal-lead-days", self.renewal_lead_days),
            ("--reminder-lead-days", self.reminder_lead_days),
            ("--max-execution-skew-secs", self.max_execution_skew_secs),
        ] {
            if v < 0 {
                return Err(format!("{name} must be >= 0"));
            }
        }
        let bases = match &self.legal_bases {
            None => BasisTable::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read --legal-bases {}: {e}", path.display()))?;
                BasisTable::from_toml(&text)
                    .map_err(|e| format!("--legal-bases {}: {e}", path.display()))?
            }
        };
        if self.blacklist_log_retain == 0 || self.checks_per_second == 0 {
            return Err("--blacklist-log-retain and --checks-per-second must be > 0".into());
        }
        if self.max_streams_per_caller == 0 || self.max_backlog == 0 {
            return Err("--max-streams-per-caller and --max-backlog must be > 0".into());
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
                policy: Policy {
                    answer_stop_ms: self.stop_answer_secs * 1000,
                    answer_freeze_ms: self.freeze_answer_secs * 1000,
                    stop_term_ms: self.stop_term_hours * 3_600_000,
                    max_stops_per_account: 2,
                    freeze_term_months: self.freeze_term_months,
                    major_freeze_term_months: self.major_freeze_term_months,
                    renewal_lead_ms: self.renewal_lead_days * 86_400_000,
                    reminder_lead_ms: self.reminder_lead_days * 86_400_000,
                    max_execution_skew_ms: self.max_execution_skew_secs * 1000,
                },
                bases,
                blacklist_log_retain: self.blacklist_log_retain,
                checks_per_second: self.checks_per_second,
                callers: crate::limits::CallerLimits {
                    requests_per_second: self.requests_per_second,
                    max_streams: self.max_streams_per_caller,
                },
                max_backlog: self.max_backlog,
                min_free_bytes: self.min_free_mib << 20,
            },
            metrics_listen: match self.metrics_listen.as_str() {
                "off" | "" => None,
                addr => Some(
                    addr.parse()
                        .map_err(|e| format!("--metrics-listen {addr:?}: {e}"))?,
                ),
            },
            grace: Duration::from_secs(self.grace_secs),
        })
    }
}
