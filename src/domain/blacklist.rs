//! The account blacklist (惩戒名单): subjects and their identity documents, the legal bases
//! as data (term, effects, cap on consecutive listing), and the listing transitions.
//!
//! A change of rules is a change of the basis table, not of code: the table is built in and
//! may be replaced by a file at start; every entry records which basis and which table version
//! set its term, so a new table changes new entries only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::Timestamp;
use super::policy::{add_months, rfc3339};
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DocumentType {
    ResidentId,
    Passport,
    CreditCode,
}

impl DocumentType {
    fn tag(self) -> &'static str {
        match self {
            DocumentType::ResidentId => "RID",
            DocumentType::Passport => "PPT",
            DocumentType::CreditCode => "USCC",
        }
    }
}

/// A subject as identified by a document, normalised: the blacklist's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Subject {
    pub document_type: DocumentType,
    pub number: String,
}

impl Subject {
    /// Parses and normalises a document number: full-width digits and letters become ASCII,
    /// letters upper case; then the document's own rules, check characters included.
    pub fn parse(document_type: DocumentType, raw: &str) -> Result<Subject, String> {
        let number: String = raw
            .trim()
            .chars()
            .map(|c| match c {
                '\u{FF10}'..='\u{FF19}' | '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}' => {
                    char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
                }
                c => c,
            })
            .collect::<String>()
            .to_ascii_uppercase();
        if number.is_empty() {
            return Err("is required".into());
        }
        match document_type {
            DocumentType::ResidentId => check_resident_id(&number)?,
            DocumentType::Passport => {
                if !(5..=20).contains(&number.len())
                    || !number
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                {
                    return Err("a passport number is 5-20 of A-Z and 0-9".into());
                }
            }
            DocumentType::CreditCode => check_credit_code(&number)?,
        }
        Ok(Subject {
            document_type,
            number,
        })
    }

    /// The store key: `RID:110105...`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.document_type.tag(), self.number)
    }

    pub fn from_key(key: &str) -> Option<Subject> {
        let (tag, number) = key.split_once(':')?;
        let document_type = [
            DocumentType::ResidentId,
            DocumentType::Passport,
            DocumentType::CreditCode,
        ]
        .into_iter()
        .find(|t| t.tag() == tag)?;
        Some(Subject {
            document_type,
            number: number.to_owned(),
        })
    }

    /// For logs: the type and the last four characters only.
    pub fn masked(&self) -> String {
        format!(
            "{}:{}",
            self.document_type.tag(),
            super::ids::mask(&self.number)
        )
    }
}

/// 18 characters: 17 digits and an ISO 7064 MOD 11-2 check character (GB 11643).
fn check_resident_id(n: &str) -> Result<(), String> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [u8; 11] = *b"10X98765432";
    let b = n.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return Err(
            "a resident identity number is 17 digits and a check character (18 in all)".into(),
        );
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let expected = CHECK[(sum % 11) as usize];
    if b[17] != expected {
        return Err(format!(
            "check character is wrong (the first 17 digits give {}): a mistyped number",
            expected as char
        ));
    }
    Ok(())
}

/// 18 characters from GB 32100's alphabet, the last a check character (mod 31).
fn check_credit_code(n: &str) -> Result<(), String> {
    const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    const WEIGHTS: [u32; 17] = [
        1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
    ];
    let b = n.as_bytes();
    let values: Option<Vec<u32>> = b
        .iter()
        .map(|c| ALPHABET.iter().position(|a| a == c).map(|p| p as u32))
        .collect();
    let Some(values) = values.filter(|v| v.len() == 18) else {
        return Err(
            "a unified social credit code is 18 characters of 0-9 and A-Z without I, O, S, V, Z"
                .into(),
        );
    };
    let sum: u32 = values[..17].iter().zip(WEIGHTS).map(|(v, w)| v * w).sum();
    let check = (31 - sum % 31) % 31;
    if values[17] != check {
        return Err(format!(
            "check character is wrong (the first 17 characters give {}): a mistyped code",
            ALPHABET[check as usize] as char
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effects {
    /// Bank accounts lose non-counter business.
    pub bank_non_counter_suspended: bool,
    /// Payment accounts lose all business.
    pub payment_accounts_suspended: bool,
    pub no_new_accounts: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalBasis {
    pub code: String,
    pub description: String,
    /// The term of one listing, in calendar months.
    pub term_months: u32,
    /// The longest consecutive listing, in calendar months, however often it is extended.
    pub cap_months: u32,
    pub effects: Effects,
}

/// The legal bases in force, with the version that entries record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasisTable {
    pub version: String,
    #[serde(rename = "basis")]
    pub bases: Vec<LegalBasis>,
}

/// The default basis: account renting, lending, selling, buying and impersonated opening.
pub const DEFAULT_BASIS: &str = "PBOC-2019-ACCOUNT-TRADING";

impl Default for BasisTable {
    fn default() -> Self {
        let all = Effects {
            bank_non_counter_suspended: true,
            payment_accounts_suspended: true,
            no_new_accounts: true,
        };
        let basis = |code: &str, description: &str, term_months, cap_months| LegalBasis {
            code: code.into(),
            description: description.into(),
            term_months,
            cap_months,
            effects: all,
        };
        BasisTable {
            version: "builtin-2026.1".into(),
            bases: vec![
                basis(
                    DEFAULT_BASIS,
                    "Renting, lending, selling or buying bank or payment accounts, organising it, or opening accounts by impersonation or fake agency (PBOC notice, 2019): five years",
                    60,
                    60,
                ),
                basis(
                    "JPM-2024-CONVICTED",
                    "Joint Punishment Measures 2024: persons convicted of the offence: three years, at most five consecutive",
                    36,
                    60,
                ),
                basis(
                    "JPM-2024-IDENTIFIED",
                    "Joint Punishment Measures 2024: persons identified by police: two years, at most five consecutive",
                    24,
                    60,
                ),
            ],
        }
    }
}

impl BasisTable {
    /// Reads a table from TOML (`version = "..."` and `[[basis]]` entries) and checks it.
    pub fn from_toml(text: &str) -> Result<BasisTable, String> {
        let table: BasisTable = toml::from_str(text).map_err(|e| e.to_string())?;
        if table.version.trim().is_empty() {
            return Err("version is required".into());
        }
        let mut seen = BTreeMap::new();
        for b in &table.bases {
            if b.term_months == 0 || b.cap_months < b.term_months {
                return Err(format!(
                    "basis {}: term_months must be > 0 and cap_months >= term_months",
                    b.code
                ));
            }
            if seen.insert(b.code.clone(), ()).is_some() {
                return Err(format!("basis {} listed twice", b.code));
            }
        }
        if table.bases.is_empty() {
            return Err("at least one [[basis]] is required".into());
        }
        Ok(table)
    }

    pub fn get(&self, code: &str) -> Option<&LegalBasis> {
        self.bases.iter().find(|b| b.code == code)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListingState {
    Listed,
    Delisted,
    Lapsed,
    AppealUpheld,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub subject: Subject,
    pub subject_name: String,
    pub state: ListingState,
    pub basis: String,
    pub table_version: String,
    pub effects: Effects,
    pub listed_by: String,
    pub case_reference: String,
    pub listed_at: Timestamp,
    pub consecutive_since: Timestamp,
    pub expires_at: Timestamp,
    /// The blacklist version of the entry's last change.
    pub version: u64,
    pub removal_reason: String,
}

/// What a change tells institutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    Listed,
    Extended,
    Delisted,
    Lapsed,
}

/// A listing request, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewListing {
    pub request_id: String,
    pub subject: Subject,
    pub subject_name: String,
    pub basis: String,
    pub case_reference: String,
}

/// Lists `new` on top of what is stored: a fresh listing, or an extension of one in force
/// within the basis's cap. The version is filled in by the caller.
pub fn list(
    existing: Option<&Entry>,
    new: &NewListing,
    agency: &str,
    table: &BasisTable,
    now: Timestamp,
) -> Result<(Entry, ChangeKind), Error> {
    let basis = table.get(&new.basis).ok_or_else(|| {
        let known: Vec<&str> = table.bases.iter().map(|b| b.code.as_str()).collect();
        Error::invalid(
            "legal_basis",
            format!(
                "{:?} is not in the legal-basis table (known: {})",
                new.basis,
                known.join(", ")
            ),
        )
    })?;
    let in_force = existing.filter(|e| e.state == ListingState::Listed && e.expires_at > now);
    let since = in_force.map_or(now, |e| e.consecutive_since);
    let cap = add_months(since, basis.cap_months);
    let wanted = add_months(now, basis.term_months);
    let expires_at = wanted.min(cap);
    if let Some(e) = in_force {
        if expires_at <= e.expires_at {
            let why = if wanted > cap {
                format!(
                    "consecutive-listing cap: under {} a listing runs at most {} months in a row, counted from {}",
                    basis.code,
                    basis.cap_months,
                    rfc3339(since)
                )
            } else {
                format!(
                    "a new term under {} would end at {}, no later",
                    basis.code,
                    rfc3339(wanted)
                )
            };
            return Err(Error::FailedPrecondition(format!(
                "{} is already listed until {}; {why}: nothing was changed",
                new.subject.masked(),
                rfc3339(e.expires_at)
            )));
        }
    }
    // An extension keeps who listed it (and so who may delist), the case and the name; it
    // takes the new basis's effects and term.
    let entry = match in_force {
        Some(e) => Entry {
            basis: basis.code.clone(),
            table_version: table.version.clone(),
            effects: basis.effects,
            expires_at,
            subject_name: if new.subject_name.is_empty() {
                e.subject_name.clone()
            } else {
                new.subject_name.clone()
            },
            ..e.clone()
        },
        None => Entry {
            subject: new.subject.clone(),
            subject_name: new.subject_name.clone(),
            state: ListingState::Listed,
            basis: basis.code.clone(),
            table_version: table.version.clone(),
            effects: basis.effects,
            listed_by: agency.to_owned(),
            case_reference: new.case_reference.clone(),
            listed_at: now,
            consecutive_since: since,
            expires_at,
            version: 0,
            removal_reason: String::new(),
        },
    };
    Ok((
        entry,
        if in_force.is_some() {
            ChangeKind::Extended
        } else {
            ChangeKind::Listed
        },
    ))
}

/// Ends a listing in force: delisted by its agency, lapsed, or removed on appeal.
pub fn remove(
    entry: &Entry,
    to: ListingState,
    reason: &str,
    now: Timestamp,
) -> Result<Entry, Error> {
    if entry.state != ListingState::Listed {
        return Err(Error::FailedPrecondition(format!(
            "{} is not listed (it is {:?})",
            entry.subject.masked(),
            entry.state
        )));
    }
    if to == ListingState::Lapsed && entry.expires_at > now {
        return Err(Error::FailedPrecondition(format!(
            "{} is listed until {} ms",
            entry.subject.masked(),
            entry.expires_at.millis()
        )));
    }
    let mut next = entry.clone();
    next.state = to;
    next.removal_reason = reason.to_owned();
    Ok(next)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppealState {
    Pending,
    Upheld,
    Dismissed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appeal {
    pub appeal_id: String,
    pub request_id: String,
    pub subject: Subject,
    pub grounds: String,
    pub state: AppealState,
    pub decision_reason: String,
    pub recorded_by: String,
    pub recorded_at: Timestamp,
    pub decided_by: String,
    pub decided_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn resident_ids_need_their_check_character() {
        assert!(Subject::parse(DocumentType::ResidentId, "11010519491231002X").is_ok());
        assert!(Subject::parse(DocumentType::ResidentId, "11010519491231002x").is_ok());
        let err = Subject::parse(DocumentType::ResidentId, "110105194912310021").unwrap_err();
        assert!(err.contains("check character"), "{err}");
        assert!(Subject::parse(DocumentType::ResidentId, "1101051949123100").is_err());
        // Full-width digits are normalised, not stored as given.
        let s = Subject::parse(
            DocumentType::ResidentId,
            "１１０１０５１９４９１２３１００２Ｘ",
        )
        .unwrap();
        assert_eq!(s.number, "11010519491231002X");
        assert_eq!(s.masked(), "RID:**************002X");
        assert_eq!(Subject::from_key(&s.key()), Some(s));
    }

    #[test]
    fn credit_codes_need_their_check_character() {
        assert!(Subject::parse(DocumentType::CreditCode, "91350100M000100Y43").is_ok());
        let err = Subject::parse(DocumentType::CreditCode, "91350100M000100Y44").unwrap_err();
        assert!(err.contains("check character"), "{err}");
        assert!(Subject::parse(DocumentType::CreditCode, "91350100M000100I43").is_err());
        assert!(Subject::parse(DocumentType::Passport, "E1234567").is_ok());
        assert!(Subject::parse(DocumentType::Passport, "E1-34567").is_err());
    }

    fn new(basis: &str) -> NewListing {
        NewListing {
            request_id: "r".into(),
            subject: Subject::parse(DocumentType::ResidentId, "11010519491231002X").unwrap(),
            subject_name: "Zhao".into(),
            basis: basis.into(),
            case_reference: "C".into(),
        }
    }

    #[test]
    fn term_and_effects_come_from_the_basis() {
        let table = BasisTable::default();
        let now = Timestamp(1_800_000_000_000);
        let (e, kind) = list(None, &new(DEFAULT_BASIS), "PSB", &table, now).unwrap();
        assert_eq!(
            (kind, e.expires_at),
            (ChangeKind::Listed, add_months(now, 60))
        );
        assert!(
            e.effects.bank_non_counter_suspended
                && e.effects.payment_accounts_suspended
                && e.effects.no_new_accounts
        );
        assert_eq!(e.table_version, "builtin-2026.1");
        let (e, _) = list(None, &new("JPM-2024-IDENTIFIED"), "PSB", &table, now).unwrap();
        assert_eq!(e.expires_at, add_months(now, 24));
        assert!(list(None, &new("NO-SUCH"), "PSB", &table, now).is_err());
    }

    #[test]
    fn relisting_extends_up_to_the_cap_of_consecutive_years() {
        let table = BasisTable::default();
        let t0 = Timestamp(1_800_000_000_000);
        let (first, _) = list(None, &new("JPM-2024-IDENTIFIED"), "PSB", &table, t0).unwrap();
        // A year later: two more years from now, within five from t0.
        let t1 = t0.plus_millis(365 * DAY);
        let (second, kind) =
            list(Some(&first), &new("JPM-2024-IDENTIFIED"), "PSB", &table, t1).unwrap();
        assert_eq!(
            (kind, second.expires_at, second.consecutive_since),
            (ChangeKind::Extended, add_months(t1, 24), t0)
        );
        // Four years in: capped at five years from t0.
        let t4 = t0.plus_millis(4 * 365 * DAY);
        let third = Entry {
            expires_at: add_months(t0, 52),
            ..second.clone()
        };
        let (capped, _) =
            list(Some(&third), &new("JPM-2024-IDENTIFIED"), "PSB", &table, t4).unwrap();
        assert_eq!(capped.expires_at, add_months(t0, 60));
        // At the cap: refused, naming the rule.
        let err = list(
            Some(&capped),
            &new("JPM-2024-IDENTIFIED"),
            "PSB",
            &table,
            t4,
        )
        .unwrap_err();
        assert!(err.to_string().contains("consecutive-listing cap"), "{err}");
        // After a lapse a new run starts.
        let lapsed = Entry {
            state: ListingState::Lapsed,
            ..capped
        };
        let (fresh, kind) = list(
            Some(&lapsed),
            &new("JPM-2024-IDENTIFIED"),
            "PSB",
            &table,
            t4,
        )
        .unwrap();
        assert_eq!((kind, fresh.consecutive_since), (ChangeKind::Listed, t4));
    }

    #[test]
    fn an_extension_keeps_who_listed_and_why() {
        let table = BasisTable::default();
        let t0 = Timestamp(1_800_000_000_000);
        let (first, _) = list(None, &new("JPM-2024-IDENTIFIED"), "PSB-A", &table, t0).unwrap();
        let mut again = new(DEFAULT_BASIS);
        again.subject_name.clear();
        again.case_reference = "OTHER".into();
        let (second, kind) =
            list(Some(&first), &again, "PSB-B", &table, t0.plus_millis(DAY)).unwrap();
        assert_eq!(kind, ChangeKind::Extended);
        assert_eq!(
            (second.listed_by.as_str(), second.case_reference.as_str()),
            ("PSB-A", "C")
        );
        assert_eq!(
            (second.subject_name.as_str(), second.listed_at),
            ("Zhao", t0)
        );
        assert_eq!(
            (second.basis.as_str(), second.expires_at),
            (DEFAULT_BASIS, add_months(t0, 60))
        );
        // A basis whose term would end sooner changes nothing, and says so.
        let err = list(
            Some(&second),
            &new("JPM-2024-IDENTIFIED"),
            "PSB-A",
            &table,
            t0.plus_millis(2 * DAY),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no later"), "{err}");
    }

    #[test]
    fn removal_only_from_listed_and_lapse_only_at_expiry() {
        let table = BasisTable::default();
        let now = Timestamp(1_800_000_000_000);
        let (e, _) = list(None, &new(DEFAULT_BASIS), "PSB", &table, now).unwrap();
        assert!(remove(&e, ListingState::Lapsed, "", now).is_err());
        assert_eq!(
            remove(&e, ListingState::Lapsed, "", e.expires_at)
                .unwrap()
                .state,
            ListingState::Lapsed
        );
        let gone = remove(&e, ListingState::Delisted, "error", now).unwrap();
        assert!(remove(&gone, ListingState::AppealUpheld, "x", now).is_err());
    }

    #[test]
    fn a_table_file_replaces_the_bases() {
        let t = BasisTable::from_toml(
            "version = \"2027.1\"\n[[basis]]\ncode = \"X\"\ndescription = \"d\"\nterm_months = 12\ncap_months = 24\n\
             [basis.effects]\nbank_non_counter_suspended = true\npayment_accounts_suspended = false\nno_new_accounts = true\n",
        )
        .unwrap();
        assert_eq!(
            (t.version.as_str(), t.get("X").unwrap().term_months),
            ("2027.1", 12)
        );
        assert!(BasisTable::from_toml("version = \"v\"\n[[basis]]\ncode = \"X\"\ndescription = \"d\"\nterm_months = 12\ncap_months = 6\n[basis.effects]\nbank_non_counter_suspended = true\npayment_accounts_suspended = true\nno_new_accounts = true\n").is_err());
    }
}
