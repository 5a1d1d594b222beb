//! Development certificate minting, in pure Rust with rcgen (no openssl).
//!
//! This module owns the hub's development PKI: a self-signed CA, the hub's server certificate
//! and one client certificate per participant, each client identified by exactly one URI SAN
//! (`urn:stophub:<role>:<code>`). It also owns the on-disk layout of a development set
//! (`ca.pem`, `ca-key.pem`, `server.pem`, `server-key.pem`, `<role>-<code>.pem`,
//! `<role>-<code>-key.pem`). It is meant for development and tests, not production PKI.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};

use rcgen::string::Ia5String;

use crate::participants::ParticipantsFile;

/// Common name of the hub's server certificate.
const SERVER_COMMON_NAME: &str = "stophub hub";
/// Common name of the CA minted by [`mint_dev`].
const DEV_CA_COMMON_NAME: &str = "stophub development CA";

/// Certificates are valid from this date (UTC)...
const NOT_BEFORE: (i32, u8, u8) = (2024, 1, 1);
/// ...until this date (UTC). Fixed dates avoid reading the wall clock.
const NOT_AFTER: (i32, u8, u8) = (2099, 12, 31);

/// CA certificate file name inside a development set.
pub const CA_CERT_FILE: &str = "ca.pem";
/// CA private key file name inside a development set.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// Server certificate file name inside a development set.
pub const SERVER_CERT_FILE: &str = "server.pem";
/// Server private key file name inside a development set.
pub const SERVER_KEY_FILE: &str = "server-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("cannot write {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error("invalid certificate name {value:?}: {reason}")]
    InvalidName { value: String, reason: String },
    #[error("a server certificate needs at least one host name or address")]
    NoHosts,
    #[error("CA certificate cannot be parsed: {0}")]
    CaParse(String),
    #[error("CA private key does not match the CA certificate")]
    KeyMismatch,
}

/// A certificate authority held in memory.
#[derive(Debug)]
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl Ca {
    /// New self-signed CA with the given common name (ECDSA P-256, basic constraints CA,
    /// keyCertSign).
    pub fn new(common_name: &str) -> Result<Ca, CertError> {
        let key = KeyPair::generate()?;
        let mut params = base_params(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
        })
    }

    /// The CA certificate, PEM encoded.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA private key, PEM encoded (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Load a CA from PEM cert + PEM key (so more certs can be minted later from
    /// `certs/ca.pem` + `certs/ca-key.pem`). Fails if the key does not belong to the
    /// certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, CertError> {
        let key = KeyPair::from_pem(key_pem)?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| CertError::CaParse(e.to_string()))?;
        let cert = pem
            .parse_x509()
            .map_err(|e| CertError::CaParse(e.to_string()))?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CertError::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Ca {
            issuer,
            cert_pem: cert_pem.to_owned(),
        })
    }

    /// Server cert: SAN entries for each host (IP address if it parses as `IpAddr`, else DNS
    /// name), EKU serverAuth, CN "stophub hub". Returns `(cert_pem, key_pem)`.
    pub fn issue_server(&self, hosts: &[String]) -> Result<(String, String), CertError> {
        if hosts.is_empty() {
            return Err(CertError::NoHosts);
        }
        let mut params = leaf_params(SERVER_COMMON_NAME);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.subject_alt_names = hosts
            .iter()
            .map(|h| match h.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => ia5(h).map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        self.sign(&params)
    }

    /// Client cert: exactly one URI SAN `uri` (e.g. `urn:stophub:bank:ICBC`), CN =
    /// `common_name`, EKU clientAuth. Returns `(cert_pem, key_pem)`.
    pub fn issue_client(
        &self,
        uri: &str,
        common_name: &str,
    ) -> Result<(String, String), CertError> {
        let mut params = leaf_params(common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.subject_alt_names = vec![SanType::URI(ia5(uri)?)];
        self.sign(&params)
    }

    /// Generate a fresh key and sign `params` with this CA.
    fn sign(&self, params: &CertificateParams) -> Result<(String, String), CertError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Parameters shared by every certificate: validity window and subject CN.
fn base_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let (y, m, d) = NOT_BEFORE;
    params.not_before = date_time_ymd(y, m, d);
    let (y, m, d) = NOT_AFTER;
    params.not_after = date_time_ymd(y, m, d);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params
}

/// Parameters shared by end-entity certificates.
fn leaf_params(common_name: &str) -> CertificateParams {
    let mut params = base_params(common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params
}

fn ia5(value: &str) -> Result<Ia5String, CertError> {
    Ia5String::try_from(value).map_err(|e| CertError::InvalidName {
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

/// The URI SAN for a participant: `urn:stophub:{role}:{code}` with role one of "bank",
/// "police", "oversight".
pub fn participant_uri(role: &str, code: &str) -> String {
    format!("urn:stophub:{role}:{code}")
}

/// File name stem of a participant's client certificate: `{role}-{code}`; the files are
/// `<stem>.pem` and `<stem>-key.pem`.
pub fn client_stem(role: &str, code: &str) -> String {
    format!("{role}-{code}")
}

/// Mint a whole development set into `out` (created if missing): ca.pem, ca-key.pem,
/// server.pem, server-key.pem (hosts: "localhost", "127.0.0.1" plus `extra_hosts`), and a
/// client cert pair for every participant in `participants`: institutions get role "bank",
/// police role "police", oversight role "oversight".
///
/// Private key files are written with mode 0600 (unix). Overwrites existing files. Returns
/// the paths written.
pub fn mint_dev(
    out: &Path,
    participants: &ParticipantsFile,
    extra_hosts: &[String],
) -> Result<Vec<PathBuf>, CertError> {
    fs::create_dir_all(out).map_err(|cause| io_err(out, cause))?;
    let mut written = Vec::new();

    let ca = Ca::new(DEV_CA_COMMON_NAME)?;
    written.push(write_file(&out.join(CA_CERT_FILE), &ca.cert_pem(), false)?);
    written.push(write_file(&out.join(CA_KEY_FILE), &ca.key_pem(), true)?);

    let mut seen = BTreeSet::new();
    let hosts: Vec<String> = ["localhost", "127.0.0.1"]
        .into_iter()
        .map(str::to_owned)
        .chain(extra_hosts.iter().cloned())
        .filter(|h| seen.insert(h.clone()))
        .collect();
    let (cert, key) = ca.issue_server(&hosts)?;
    written.push(write_file(&out.join(SERVER_CERT_FILE), &cert, false)?);
    written.push(write_file(&out.join(SERVER_KEY_FILE), &key, true)?);

    let clients = participants
        .institutions
        .iter()
        .map(|p| ("bank", &p.code, &p.name))
        .chain(
            participants
                .police
                .iter()
                .map(|p| ("police", &p.code, &p.name)),
        )
        .chain(
            participants
                .oversight
                .iter()
                .map(|p| ("oversight", &p.code, &p.name)),
        );
    for (role, code, name) in clients {
        let (cert, key) = ca.issue_client(&participant_uri(role, code), name)?;
        let stem = client_stem(role, code);
        written.push(write_file(&out.join(format!("{stem}.pem")), &cert, false)?);
        written.push(write_file(
            &out.join(format!("{stem}-key.pem")),
            &key,
            true,
        )?);
    }
    Ok(written)
}

/// True when `dir` has ca.pem, server.pem and server-key.pem.
pub fn dev_set_present(dir: &Path) -> bool {
    [CA_CERT_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE]
        .iter()
        .all(|f| dir.join(f).is_file())
}

fn io_err(path: &Path, cause: std::io::Error) -> CertError {
    CertError::Io {
        path: path.display().to_string(),
        cause,
    }
}

/// Write `contents` to `path`, replacing any existing file. Private files get mode 0600 on
/// unix, both when created and when an existing file is overwritten.
fn write_file(path: &Path, contents: &str, private: bool) -> Result<PathBuf, CertError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| io_err(path, e))?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        // An existing file keeps its old mode on open; tighten it before writing the key.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err(path, e))?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::participants::{
        Institution, InstitutionKind, OversightBody, PoliceAgency, PoliceLevel,
    };
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use std::sync::Arc;
    use std::time::Duration;
    use x509_parser::certificate::X509Certificate;
    use x509_parser::extensions::GeneralName;

    fn participants() -> ParticipantsFile {
        ParticipantsFile {
            institutions: vec![Institution {
                code: "ICBC".into(),
                name: "Industrial and Commercial Bank".into(),
                kind: InstitutionKind::Bank,
            }],
            police: vec![PoliceAgency {
                code: "PSB0101".into(),
                name: "City Anti-Fraud Centre".into(),
                level: PoliceLevel::City,
            }],
            oversight: vec![OversightBody {
                code: "PBOC".into(),
                name: "Central Bank Oversight".into(),
            }],
        }
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    fn with_cert<R>(pem: &str, f: impl FnOnce(&X509Certificate<'_>) -> R) -> R {
        let (rest, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        assert!(rest.iter().all(u8::is_ascii_whitespace));
        let cert = pem.parse_x509().unwrap();
        f(&cert)
    }

    fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
        cert.subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::URI(u) => format!("uri:{u}"),
                GeneralName::DNSName(d) => format!("dns:{d}"),
                GeneralName::IPAddress(ip) => format!("ip:{ip:?}"),
                other => format!("other:{other:?}"),
            })
            .collect()
    }

    fn rustls_cert(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    /// 2026-11-28T00:00:00Z, a fixed "now" for path validation.
    fn now() -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(1_795_824_000))
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn roots(ca_pem: &str) -> Arc<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls_cert(ca_pem)).unwrap();
        Arc::new(roots)
    }

    fn assert_client_cert(cert_pem: &str, expected_uri: &str, expected_cn: &str) {
        with_cert(cert_pem, |cert| {
            assert_eq!(sans(cert), vec![format!("uri:{expected_uri}")]);
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.client_auth);
            assert!(!eku.server_auth);
            let cn: Vec<_> = cert
                .subject()
                .iter_common_name()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(cn, vec![expected_cn.to_owned()]);
            assert!(!cert.is_ca());
        });
    }

    #[test]
    fn uri_and_stem_formats() {
        assert_eq!(participant_uri("bank", "ICBC"), "urn:stophub:bank:ICBC");
        assert_eq!(client_stem("police", "PSB0101"), "police-PSB0101");
    }

    #[test]
    fn mint_dev_writes_a_usable_set() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("certs");
        assert!(!dev_set_present(&out));
        let written = mint_dev(&out, &participants(), &["hub.example".to_owned()]).unwrap();
        assert!(dev_set_present(&out));

        let names: BTreeSet<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let expected: BTreeSet<String> = [
            "ca.pem",
            "ca-key.pem",
            "server.pem",
            "server-key.pem",
            "bank-ICBC.pem",
            "bank-ICBC-key.pem",
            "police-PSB0101.pem",
            "police-PSB0101-key.pem",
            "oversight-PBOC.pem",
            "oversight-PBOC-key.pem",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(names, expected);
        assert_eq!(written.len(), expected.len());

        #[cfg(unix)]
        for path in &written {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
            let is_key = path.to_string_lossy().ends_with("-key.pem");
            if is_key {
                assert_eq!(mode, 0o600, "{}", path.display());
            }
        }

        // Every file is well-formed PEM for rustls.
        for path in &written {
            let pem = read(path);
            if path.to_string_lossy().ends_with("-key.pem") {
                PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap();
            } else {
                rustls_cert(&pem);
            }
        }

        let ca_pem = read(&out.join("ca.pem"));
        with_cert(&ca_pem, |ca| {
            assert!(ca.is_ca());
            let ku = ca.key_usage().unwrap().unwrap().value;
            assert!(ku.key_cert_sign());
        });

        // Client certificates: exactly one URI SAN, clientAuth.
        let bank = read(&out.join("bank-ICBC.pem"));
        assert_client_cert(
            &bank,
            "urn:stophub:bank:ICBC",
            "Industrial and Commercial Bank",
        );
        assert_client_cert(
            &read(&out.join("police-PSB0101.pem")),
            "urn:stophub:police:PSB0101",
            "City Anti-Fraud Centre",
        );
        assert_client_cert(
            &read(&out.join("oversight-PBOC.pem")),
            "urn:stophub:oversight:PBOC",
            "Central Bank Oversight",
        );

        // Server certificate: localhost, 127.0.0.1 and the extra host, serverAuth.
        let server = read(&out.join("server.pem"));
        with_cert(&server, |cert| {
            assert_eq!(
                sans(cert),
                vec![
                    "dns:localhost".to_owned(),
                    format!("ip:{:?}", [127u8, 0, 0, 1]),
                    "dns:hub.example".to_owned(),
                ]
            );
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.server_auth);
            assert!(!eku.client_auth);
            let cn: Vec<_> = cert
                .subject()
                .iter_common_name()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(cn, vec!["stophub hub".to_owned()]);
            let v = cert.validity();
            assert!(v.not_before.timestamp() <= now().as_secs() as i64);
            assert!(v.not_after.timestamp() > now().as_secs() as i64);
        });

        // rustls/webpki accept the chain: server for localhost and 127.0.0.1, client as client.
        let server_verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots(&ca_pem), provider())
                .build()
                .unwrap();
        for name in ["localhost", "127.0.0.1", "hub.example"] {
            use rustls::client::danger::ServerCertVerifier;
            server_verifier
                .verify_server_cert(
                    &rustls_cert(&server),
                    &[],
                    &ServerName::try_from(name).unwrap(),
                    &[],
                    now(),
                )
                .unwrap();
        }
        let client_verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots(&ca_pem), provider())
                .build()
                .unwrap();
        client_verifier
            .verify_client_cert(&rustls_cert(&bank), &[], now())
            .unwrap();
        // A server certificate is not a client certificate.
        assert!(
            client_verifier
                .verify_client_cert(&rustls_cert(&server), &[], now())
                .is_err()
        );

        // Minting again overwrites the set (a new CA).
        mint_dev(&out, &ParticipantsFile::default(), &[]).unwrap();
        assert_ne!(read(&out.join("ca.pem")), ca_pem);
    }

    #[test]
    fn ca_round_trips_through_pem() {
        let ca = Ca::new("round trip CA").unwrap();
        let reloaded = Ca::from_pem(&ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(reloaded.cert_pem(), ca.cert_pem());

        let (cert_pem, key_pem) = reloaded
            .issue_client("urn:stophub:bank:ABC", "ABC Bank")
            .unwrap();
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        assert_client_cert(&cert_pem, "urn:stophub:bank:ABC", "ABC Bank");

        let ca_pem = ca.cert_pem();
        with_cert(&ca_pem, |ca_cert| {
            with_cert(&cert_pem, |leaf| {
                assert_eq!(leaf.issuer().as_raw(), ca_cert.subject().as_raw());
                assert_eq!(leaf.issuer(), ca_cert.subject());
            });
        });

        // The reloaded CA's certificates chain to the original CA certificate.
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots(&ca_pem), provider())
                .build()
                .unwrap();
        verifier
            .verify_client_cert(&rustls_cert(&cert_pem), &[], now())
            .unwrap();
    }

    #[test]
    fn from_pem_rejects_a_foreign_key() {
        let a = Ca::new("A").unwrap();
        let b = Ca::new("B").unwrap();
        assert!(matches!(
            Ca::from_pem(&a.cert_pem(), &b.key_pem()),
            Err(CertError::KeyMismatch)
        ));
        assert!(Ca::from_pem("not a pem", &a.key_pem()).is_err());
    }

    #[test]
    fn server_cert_needs_hosts() {
        let ca = Ca::new("C").unwrap();
        assert!(matches!(ca.issue_server(&[]), Err(CertError::NoHosts)));
    }
}
