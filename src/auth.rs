//! Identity: the peer certificate -> `Caller { role, org }`, and the role check.
//!
//! The TLS layer has already verified the chain against the hub's CA. Here the certificate's
//! one `urn:stophub:<role>:<code>` URI SAN is read and the organisation looked up in the
//! registry. Nothing else in a request says who the caller is.

use tonic::Request;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::Error;
use crate::participants::Registry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Police,
    Bank,
    Oversight,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Police => "police",
            Role::Bank => "bank",
            Role::Oversight => "oversight",
        }
    }
    fn parse(s: &str) -> Option<Role> {
        match s {
            "police" => Some(Role::Police),
            "bank" => Some(Role::Bank),
            "oversight" => Some(Role::Oversight),
            _ => None,
        }
    }
}

/// Who is calling, as its certificate says and the registry confirms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    pub org: String,
}

const URN_PREFIX: &str = "urn:stophub:";

/// The caller of `request`, who must hold `role`.
pub fn caller<T>(request: &Request<T>, registry: &Registry, role: Role) -> Result<Caller, Error> {
    let certs = request
        .peer_certs()
        .ok_or_else(|| Error::Unauthenticated("a client certificate is required".into()))?;
    let leaf = certs
        .first()
        .ok_or_else(|| Error::Unauthenticated("a client certificate is required".into()))?;
    let caller = identity_from_der(leaf.as_ref())?;
    let registered = match caller.role {
        Role::Police => registry.police(&caller.org).is_some(),
        Role::Bank => registry.institution(&caller.org).is_some(),
        Role::Oversight => registry.oversight(&caller.org).is_some(),
    };
    if !registered {
        return Err(Error::PermissionDenied(format!(
            "{} {} is not in the hub's participants registry",
            caller.role.as_str(),
            caller.org
        )));
    }
    if caller.role != role {
        return Err(Error::PermissionDenied(format!(
            "this service is for {} callers; the certificate names {} {}",
            role.as_str(),
            caller.role.as_str(),
            caller.org
        )));
    }
    Ok(caller)
}

/// Reads the one stophub URI SAN of a DER certificate.
pub fn identity_from_der(der: &[u8]) -> Result<Caller, Error> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|_| Error::Unauthenticated("the client certificate cannot be parsed".into()))?;
    let mut found = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name
                && let Some(rest) = uri.strip_prefix(URN_PREFIX)
            {
                found.push(rest.to_owned());
            }
        }
    }
    let [one] = found.as_slice() else {
        return Err(Error::PermissionDenied(format!(
            "the client certificate must carry exactly one {URN_PREFIX}<role>:<code> URI SAN (found {})",
            found.len()
        )));
    };
    let (role, org) = one
        .split_once(':')
        .ok_or_else(|| Error::PermissionDenied(format!("malformed identity {URN_PREFIX}{one}")))?;
    let role = Role::parse(role).ok_or_else(|| {
        Error::PermissionDenied(format!("unknown role {role:?} in the client certificate"))
    })?;
    Ok(Caller {
        role,
        org: org.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::Ca;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn reads_the_role_and_org_from_the_uri_san() {
        let ca = Ca::new("test").unwrap();
        let (cert, _) = ca.issue_client("urn:stophub:bank:ICBC", "ICBC").unwrap();
        assert_eq!(
            identity_from_der(&der(&cert)).unwrap(),
            Caller {
                role: Role::Bank,
                org: "ICBC".into()
            }
        );
    }

    #[test]
    fn refuses_unknown_roles_and_missing_sans() {
        let ca = Ca::new("test").unwrap();
        let (cert, _) = ca.issue_client("urn:stophub:admin:ROOT", "x").unwrap();
        assert!(matches!(
            identity_from_der(&der(&cert)),
            Err(Error::PermissionDenied(_))
        ));
        let (cert, _) = ca.issue_client("https://example.invalid/", "x").unwrap();
        assert!(matches!(
            identity_from_der(&der(&cert)),
            Err(Error::PermissionDenied(_))
        ));
        assert!(matches!(
            identity_from_der(b"junk"),
            Err(Error::Unauthenticated(_))
        ));
    }
}
