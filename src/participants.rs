//! The participants registry: which institutions, police agencies and oversight bodies the hub
//! knows. Read once at start from a TOML file; a certificate naming an organisation that is not
//! here is refused.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::domain::ids::InstitutionCode;

/// What kind of institution holds accounts: banks hold bank accounts, payment institutions
/// hold payment accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstitutionKind {
    Bank,
    Payment,
}

/// A police agency's level decides what it may do (only city level and above may blacklist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoliceLevel {
    County,
    City,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Institution {
    pub code: String,
    pub name: String,
    pub kind: InstitutionKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoliceAgency {
    pub code: String,
    pub name: String,
    pub level: PoliceLevel,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OversightBody {
    pub code: String,
    pub name: String,
}

/// The file's shape.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ParticipantsFile {
    #[serde(default)]
    pub institutions: Vec<Institution>,
    #[serde(default)]
    pub police: Vec<PoliceAgency>,
    #[serde(default)]
    pub oversight: Vec<OversightBody>,
}

/// The registry, indexed by code.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    institutions: BTreeMap<String, Institution>,
    police: BTreeMap<String, PoliceAgency>,
    oversight: BTreeMap<String, OversightBody>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read participants file {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("participants file {path} is not valid TOML: {cause}")]
    Parse {
        path: String,
        cause: Box<toml::de::Error>,
    },
    #[error("participants file: {0}")]
    Invalid(String),
}

impl Registry {
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        Self::from_file(ParticipantsFile::load(path)?)
    }

    pub fn from_file(file: ParticipantsFile) -> Result<Self, RegistryError> {
        let mut registry = Registry::default();
        for institution in file.institutions {
            InstitutionCode::parse(&institution.code).map_err(|rule| {
                RegistryError::Invalid(format!("institution code {:?}: {rule}", institution.code))
            })?;
            let code = institution.code.clone();
            if registry
                .institutions
                .insert(code.clone(), institution)
                .is_some()
            {
                return Err(RegistryError::Invalid(format!(
                    "institution {code} listed twice"
                )));
            }
        }
        for agency in file.police {
            check_org_code(&agency.code)?;
            let code = agency.code.clone();
            if registry.police.insert(code.clone(), agency).is_some() {
                return Err(RegistryError::Invalid(format!(
                    "police agency {code} listed twice"
                )));
            }
        }
        for body in file.oversight {
            check_org_code(&body.code)?;
            let code = body.code.clone();
            if registry.oversight.insert(code.clone(), body).is_some() {
                return Err(RegistryError::Invalid(format!(
                    "oversight body {code} listed twice"
                )));
            }
        }
        Ok(registry)
    }

    pub fn institution(&self, code: &str) -> Option<&Institution> {
        self.institutions.get(code)
    }

    pub fn police(&self, code: &str) -> Option<&PoliceAgency> {
        self.police.get(code)
    }

    pub fn oversight(&self, code: &str) -> Option<&OversightBody> {
        self.oversight.get(code)
    }

    pub fn institutions(&self) -> impl Iterator<Item = &Institution> {
        self.institutions.values()
    }
}

fn check_org_code(code: &str) -> Result<(), RegistryError> {
    InstitutionCode::parse(code)
        .map(|_| ())
        .map_err(|rule| RegistryError::Invalid(format!("organisation code {code:?}: {rule}")))
}

/// The demo participants that `serve --dev` writes and `certs dev` mints certificates for.
pub fn demo() -> ParticipantsFile {
    let institution = |code: &str, name: &str, kind| Institution {
        code: code.into(),
        name: name.into(),
        kind,
    };
    ParticipantsFile {
        institutions: vec![
            institution(
                "ICBC",
                "Industrial and Commercial Bank of China",
                InstitutionKind::Bank,
            ),
            institution("CCB", "China Construction Bank", InstitutionKind::Bank),
            institution("CMB", "China Merchants Bank", InstitutionKind::Bank),
            institution(
                "ALIPAY",
                "Alipay (payment institution)",
                InstitutionKind::Payment,
            ),
            institution(
                "TENPAY",
                "Tenpay (payment institution)",
                InstitutionKind::Payment,
            ),
        ],
        police: vec![
            PoliceAgency {
                code: "PSB-SZ".into(),
                name: "Shenzhen Municipal Public Security Bureau".into(),
                level: PoliceLevel::City,
            },
            PoliceAgency {
                code: "PSB-SZ-NS".into(),
                name: "Nanshan District Public Security Sub-bureau".into(),
                level: PoliceLevel::County,
            },
        ],
        oversight: vec![OversightBody {
            code: "PBOC".into(),
            name: "People's Bank of China, payment oversight".into(),
        }],
    }
}

impl ParticipantsFile {
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|cause| RegistryError::Read {
            path: path.display().to_string(),
            cause,
        })?;
        toml::from_str(&text).map_err(|cause| RegistryError::Parse {
            path: path.display().to_string(),
            cause: Box::new(cause),
        })
    }

    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_default();
        format!(
            "# stophub participants registry: institutions (kind = bank | payment),\n\
             # police agencies (level = county | city) and oversight bodies.\n\
             # A client certificate's URI SAN urn:stophub:<role>:<code> must name one of these.\n\n{body}"
        )
    }
}
