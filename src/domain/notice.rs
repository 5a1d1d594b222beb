//! What a well-formed police notice is, once parsed at the edge.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::{AccountNumber, Fen, InstitutionCode, Timestamp};

/// The most suspect accounts one notice may carry (the bulk safeguard of the 2024 rule).
pub const MAX_ACCOUNTS_PER_NOTICE: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    StopPayment,
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
}

/// A validated notice as submitted, before the hub gives it ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewNotice {
    pub request_id: String,
    pub case_reference: String,
    pub action: Action,
    pub victim: VictimTransfer,
    pub accounts: Vec<SuspectAccount>,
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
}

/// What the idempotency index keeps per (agency, request id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub notice_id: String,
    pub payload_hash: String,
}
