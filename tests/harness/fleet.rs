//! Fleet mode: a DynamoDB table on the same moto server (moto serves every
//! service on one port), and kekd instances that share it.

use super::daemon::{kms_config, TestDaemon};
use super::moto::{moto_env, Moto, REGION};
use super::run;
use std::path::Path;
use std::process::Command;

/// How often members re-read the fleet's head, and how long a lease lasts:
/// short, so takeovers happen within a test.
pub const REFRESH: &str = "300ms";
/// See [`REFRESH`].
pub const LEASE: &str = "2s";

/// The `[store]` section of a member of the fleet on `table`.
pub fn store_section(table: &str) -> String {
    store_section_with(table, REFRESH)
}

/// [`store_section`] with another refresh interval.
pub fn store_section_with(table: &str, refresh: &str) -> String {
    format!(
        "[store]\ntype = \"dynamodb\"\ntable = \"{table}\"\nrefresh_interval = \"{refresh}\"\nlease_duration = \"{LEASE}\"\n"
    )
}

/// A member's config: KMS key `kms_key_arn`, the table `table`.
pub fn member_config(dir: &Path, kms_key_arn: &str, table: &str) -> String {
    kms_config(dir, kms_key_arn, &store_section(table))
}

/// The environment pointing kekd or kekctl at moto, DynamoDB included.
pub fn fleet_env(moto: &Moto, dynamodb_endpoint: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = moto_env(moto)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    env.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), dynamodb_endpoint.into()));
    env.push(("AWS_REGION".into(), REGION.into()));
    env
}

/// Runs `kekctl ARGS` (no socket needed) against moto.
pub fn kekctl_aws(moto: &Moto, args: &[&str]) -> (i32, String, String) {
    run(Command::new(env!("CARGO_BIN_EXE_kekctl"))
        .args(args)
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .envs(fleet_env(moto, &moto.endpoint)))
}

/// Creates the fleet table with `kekctl store init`.
pub fn create_table(moto: &Moto, table: &str) {
    let (code, out, err) = kekctl_aws(moto, &["store", "init", "--table", table]);
    assert_eq!(code, 0, "kekctl store init: {out}{err}");
}

/// A member of the fleet on `table`, its DynamoDB requests sent to
/// `dynamodb_endpoint` (moto, or a fault proxy in front of it); not started.
pub fn member(moto: &Moto, kms_key_arn: &str, table: &str, dynamodb_endpoint: &str) -> TestDaemon {
    member_with(moto, kms_key_arn, table, dynamodb_endpoint, REFRESH)
}

/// [`member`] with another refresh interval.
pub fn member_with(
    moto: &Moto,
    kms_key_arn: &str,
    table: &str,
    dynamodb_endpoint: &str,
    refresh: &str,
) -> TestDaemon {
    let mut d = TestDaemon::launch_only(moto, |dir| {
        kms_config(dir, kms_key_arn, &store_section_with(table, refresh))
    });
    d.env = vec![(
        "AWS_ENDPOINT_URL_DYNAMODB".into(),
        dynamodb_endpoint.to_string(),
    )];
    d
}

/// Turns the decryptability canary off in the config of `member` (not
/// started): it reads each organization's recent key pairs once per canary
/// interval, a cost apart from the fleet's refreshes.
pub fn without_canary(member: &TestDaemon) {
    let mut config = std::fs::read_to_string(&member.config).unwrap();
    config.push_str("\n[canary]\ninterval = \"off\"\n");
    std::fs::write(&member.config, config).unwrap();
}

/// Starts a member and waits until it serves an active key pair.
pub async fn start_member(
    moto: &Moto,
    kms_key_arn: &str,
    table: &str,
    dynamodb_endpoint: &str,
) -> TestDaemon {
    let mut d = member(moto, kms_key_arn, table, dynamodb_endpoint);
    d.spawn();
    d.wait_active().await;
    d
}

/// A DynamoDB client for moto (what an operator's own tooling would use).
pub fn dynamodb(moto: &Moto) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&moto.sdk_config())
}

/// The fleet's table as a library user opens it, on moto.
pub async fn table_store(moto: &Moto, table: &str) -> std::sync::Arc<dyn kekd::store::KeyStore> {
    table_store_of(moto, table, "acme-test").await
}

/// [`table_store`] for organization `org`.
pub async fn table_store_of(
    moto: &Moto,
    table: &str,
    org: &str,
) -> std::sync::Arc<dyn kekd::store::KeyStore> {
    let client = dynamodb(moto);
    std::sync::Arc::new(
        kekd::store::DynamoStore::with_client(client, table, org)
            .await
            .expect("the fleet table opens"),
    )
}
