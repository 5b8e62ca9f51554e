//! What the daemon's KMS request budget shows (status and `/metrics`):
//! the words of both, kept with the rest of the vocabulary.

use serde::{Deserialize, Serialize};

/// The daemon's KMS request budget in use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KmsBudgetView {
    /// GenerateDataKey, Decrypt, Encrypt, ReEncrypt.
    pub requests: BucketView,
    /// DescribeKey.
    pub describe_key: BucketView,
}

/// One kind of KMS request in the budget.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BucketView {
    /// The configured requests per second.
    pub max_per_second: f64,
    /// The rate in force (lower after throttling, growing back).
    pub current_per_second: f64,
    /// Requests let through since start.
    pub granted: u64,
    /// Requests KMS throttled since start.
    pub throttled: u64,
    /// Requests waiting for their turn now.
    pub waiting: usize,
}
