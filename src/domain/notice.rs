//! What a well-formed police notice is, once parsed at the edge.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::{AccountNumber, Fen, InstitutionCode, Timestamp};

/// The most suspect accounts one notice may carry (the bulk safeguard of the 2024 rule).
pub const MAX_ACCOUNTS_PER_NOTICE: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    StopPayment,
    Freeze,
    RenewFreeze,
    ReleaseStop,
    ReleaseFreeze,
}

impl Action {
    /// Delivery priority in an institution's backlog: lower goes first. Stops and releases
    /// free or hold money now; freezes and renewals follow.
    pub fn priority(self) -> u8 {
        match self {
            Action::StopPayment | Action::ReleaseStop | Action::ReleaseFreeze => 0,
            Action::Freeze | Action::RenewFreeze => 1,
        }
    }

    /// Stops and freezes hold money for a term; renewals and releases act on one of them.
    pub fn holds_money(self) -> bool {
        match self {
            Action::StopPayment | Action::Freeze => true,
            Action::RenewFreeze | Action::ReleaseStop | Action::ReleaseFreeze => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FreezeMode {
    AmountLimited,
    ReceiveOnly,
}

/// A case as filed (立案): what a freeze requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseFiling {
    pub case_number: String,
    pub filed_at: Timestamp,
}

/// City-level approval of a major case: freezes run the longer term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MajorApproval {
    pub reference: String,
    pub approved_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeTerms {
    pub mode: FreezeMode,
    pub major: Option<MajorApproval>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountKind {
    Bank,
    Payment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VictimTransfer {
    pub institution_code: InstitutionCode,
    pub account_number: AccountNumber,
    pub account_name: String,
    pub currency: String,
    pub amount: Fen,
    pub transfer_time: Timestamp,
    pub transaction_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspectAccount {
    pub institution_code: InstitutionCode,
    pub account_number: AccountNumber,
    pub account_name: String,
    pub account_kind: AccountKind,
    pub amount: Fen,
    /// Freeze only: the stop-payment instruction this freeze follows.
    #[serde(default)]
    pub follows: Option<String>,
}

/// A validated notice as submitted, before the hub gives it ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewNotice {
    pub request_id: String,
    pub case_reference: String,
    pub action: Action,
    pub victim: VictimTransfer,
    pub accounts: Vec<SuspectAccount>,
    pub case_filing: Option<CaseFiling>,
    pub freeze: Option<FreezeTerms>,
    /// Follow the money down to this level (0: do not follow).
    pub follow_depth: u8,
}

/// A renewal or release: one instruction that acts on an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewFollowUp {
    pub request_id: String,
    pub target: String,
    pub kind: FollowUpKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FollowUpKind {
    Renew { until: Option<Timestamp> },
    Release { reason: String },
}

impl NewFollowUp {
    pub fn payload_hash(&self) -> String {
        let mut copy = self.clone();
        copy.request_id.clear();
        let bytes = serde_json::to_vec(&copy).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}

impl NewNotice {
    /// A digest of everything but the request id, to tell an identical retry from a reuse of
    /// the request id for something else.
    pub fn payload_hash(&self) -> String {
        let mut copy = self.clone();
        copy.request_id.clear();
        let bytes = serde_json::to_vec(&copy).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}

/// A stored notice. Its instructions are stored on their own, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeRecord {
    pub notice_id: String,
    pub request_id: String,
    pub case_reference: String,
    pub police_agency: String,
    pub action: Action,
    pub victim: VictimTransfer,
    pub instruction_ids: Vec<String>,
    pub created_at: Timestamp,
    pub payload_hash: String,
    #[serde(default)]
    pub case_filing: Option<CaseFiling>,
    #[serde(default)]
    pub freeze: Option<FreezeTerms>,
    #[serde(default)]
    pub follow_depth: u8,
}

/// What the idempotency index keeps per (agency, request id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub notice_id: String,
    pub payload_hash: String,
}
