//! Configuration: the TOML file ([`raw`]) validated into typed [`Settings`].
//!
//! Two layers, as in zincati: serde reads what is written (nothing is
//! assumed), then each section in `sections.rs` applies its defaults
//! (`defaults.rs`, one table) and checks every value. Each error names the
//! file, the field, the value and what is allowed, because the person reading
//! it is an operator at a terminal.

pub(crate) mod access;
pub(crate) mod arn;
pub mod defaults;
mod files;
mod orgs;
pub use files::state_dir_usable;
mod raw;
mod read;
mod sections;
mod validate;

pub use access::Role;
pub use sections::{is_table_name, LogFormat, LogSettings};
pub(crate) use sections::{
    ApiSettings, Canary, CustomerKeys, FleetStore, KmsBudget, KmsTimeouts, ProviderSettings,
    RetryPolicy, StoreSettings, UnwrapCache,
};

use crate::domain::KeyType;
use crate::schedule::Cadence;
use raw::RawConfig;
use std::path::{Path, PathBuf};
use std::time::Duration;
use validate::Validator;

/// A configuration that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not TOML, or an unknown field, or a value of the wrong type.
    #[error("{file}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// serde/toml's message (names the field and the line).
        message: String,
    },
    /// A field is missing or its value is not allowed.
    #[error("{file}: field `{field}`: {problem}{}; allowed: {allowed}", value.as_ref().map(|v| format!(" (value: {v:?})")).unwrap_or_default())]
    Invalid {
        /// The file.
        file: String,
        /// Dotted field name, e.g. `provider.kms_key_arn`.
        field: String,
        /// The offending value, if there is one.
        value: Option<String>,
        /// What is wrong.
        problem: String,
        /// What would be accepted.
        allowed: String,
    },
}

/// Account ids that stand for \"your account\" in examples (AWS's
/// documentation uses 111122223333); a KMS key there is never real.
const PLACEHOLDER_ACCOUNTS: &[&str] = &["111122223333", "000000000000"];

pub use read::MAX_CONFIG_BYTES;
use read::{read_config_file, syntax_message};

/// Validated, typed settings: everything the daemon needs, nothing unchecked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Bound into every encryption context.
    pub(crate) organization_id: String,
    /// The KMS home region (required for `aws-kms-symmetric`).
    pub(crate) region: Option<String>,
    /// Key provider.
    pub(crate) provider: ProviderSettings,
    /// What new key pairs are (RSA of a size, or the hybrid); older key
    /// pairs keep their own.
    pub(crate) key_type: KeyType,
    /// Rotation cadence.
    pub(crate) cadence: Cadence,
    /// Time zone the cadence is evaluated in.
    pub(crate) timezone: chrono_tz::Tz,
    /// Where the store lives.
    pub(crate) state_dir: PathBuf,
    /// Which store holds the key history.
    pub(crate) store: StoreSettings,
    /// The API socket.
    pub(crate) socket_path: PathBuf,
    /// Keep retired key pairs at least this long; `None` = keep forever.
    pub(crate) retention: Option<Duration>,
    /// The encryption-context key that carries the organization id.
    pub(crate) context_key: String,
    /// KMS client timeouts.
    pub(crate) kms_timeouts: KmsTimeouts,
    /// The daemon's KMS request budget (the file's; every organization
    /// shares it).
    pub(crate) kms_budget: KmsBudget,
    /// Retry backoff.
    pub(crate) retry: RetryPolicy,
    /// The cache behind `unwrap`.
    pub(crate) unwrap: UnwrapCache,
    /// The audit trail (JSON lines, hash-chained).
    pub(crate) audit_path: PathBuf,
    /// Warn (status, metric, log) when the active key pair is older.
    pub(crate) max_key_age_warning: Option<Duration>,
    /// Generate and publish the next key pair this long before a scheduled
    /// rotation (`None`: off).
    pub(crate) announce_ahead: Option<Duration>,
    /// Daemon-wide, with more than one organization: the window before a
    /// scheduled rotation over which organizations prepare their next key
    /// pair, each at its own place (`None`: off).
    pub(crate) prepare_window: Option<Duration>,
    /// The decryptability canary.
    pub(crate) canary: Canary,
    /// The revocation bound and the isolation rule (daemon-wide).
    pub(crate) customer_keys: CustomerKeys,
    /// What this organization does while its key is revoked.
    pub(crate) on_revocation: crate::domain::OnRevocation,
    /// The role in the customer's account kekd assumes to use their key;
    /// `None`: the platform's own credentials.
    pub(crate) assume_role: Option<sections::AssumeRole>,
    /// Logging.
    pub(crate) log: LogSettings,
    /// Who may do what over the socket.
    pub(crate) access: access::Access,
    /// How the socket treats connections.
    pub(crate) api: ApiSettings,
    /// Where Prometheus scrapes `/metrics` over TCP, if anywhere.
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
    /// Accepted but worth a second look (overrides in use); printed by
    /// `check-config` and logged at start.
    pub(crate) warnings: Vec<String>,
    /// The file as written: an organization's settings are this file with
    /// the organization's own fields in place of the file's.
    raw: std::sync::Arc<RawConfig>,
}

impl Settings {
    /// Reads and validates `path`. Blocking: async callers go through
    /// `spawn_blocking`.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let file = path.display().to_string();
        let text = read_config_file(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text, &file)
    }

    /// Parses and validates TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Settings, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.to_string(),
            message: syntax_message(text, &e),
        })?;
        Self::from_raw(&raw, file)
    }

    /// The `--dev` settings: the local provider, state and socket under
    /// `state_dir` (absolute), every other value the documented default.
    pub fn dev(state_dir: &Path) -> Result<Settings, ConfigError> {
        let dir = state_dir.display().to_string();
        let raw = RawConfig {
            organization_id: Some(defaults::DEV_ORGANIZATION.into()),
            cadence: Some(defaults::DEV_CADENCE.into()),
            state_dir: Some(dir.clone()),
            socket_path: Some(
                state_dir
                    .join(defaults::DEV_SOCKET_FILE)
                    .display()
                    .to_string(),
            ),
            provider: Some(raw::RawProvider {
                kind: Some("local".into()),
                root_key_path: Some(
                    state_dir
                        .join(defaults::DEV_ROOT_KEY_FILE)
                        .display()
                        .to_string(),
                ),
                kms_key_arn: None,
                backup_kms_key_arns: None,
                assume_role_arn: None,
                external_id: None,
            }),
            ..RawConfig::default()
        };
        Self::from_raw(&raw, "--dev")
    }

    fn from_raw(raw: &RawConfig, file: &str) -> Result<Settings, ConfigError> {
        let v = Validator::new(file);
        let id = sections::Identity::with_config(raw, &v)?;
        let provider =
            ProviderSettings::with_config(raw.provider.as_ref(), id.region.as_deref(), &v)?;
        let state_dir = sections::state_dir(raw.state_dir.as_deref(), &v)?;
        let socket_path =
            v.absolute_path("socket_path", raw.socket_path.as_deref(), defaults::SOCKET)?;
        let audit_path = sections::audit_log(raw.audit_log.as_deref(), &state_dir, &v)?;
        files::socket_place(&socket_path, &v)?;
        let overrides = sections::Overrides::with_config(raw.overrides.as_ref());
        let mut warnings = Vec::new();
        let timezone = sections::timezone(raw.timezone.as_deref(), &v)?;
        // Without `region`, the KMS key's ARN names it.
        let region = id.region.clone().or_else(|| match &provider {
            ProviderSettings::AwsKms { key, .. } => Some(key.region.clone()),
            ProviderSettings::Local { .. } => None,
        });
        let store = StoreSettings::with_config(raw.store.as_ref(), region.as_deref(), &v)?;
        let announce_ahead = v.duration("announce_ahead", raw.announce_ahead.as_deref(), None)?;
        let prepare_window = match raw.prepare_window.as_deref() {
            Some("off") => None,
            other => v.duration("prepare_window", other, Some(defaults::PREPARE_WINDOW))?,
        };
        let store_file = state_dir.join(defaults::STORE_FILE);
        let mut own = vec![
            files::OwnFile {
                field: "socket_path",
                path: &socket_path,
            },
            files::OwnFile {
                field: "audit_log",
                path: &audit_path,
            },
        ];
        if store == StoreSettings::Redb {
            own.push(files::OwnFile {
                field: "state_dir (its store kekd.redb)",
                path: &store_file,
            });
        }
        if let ProviderSettings::Local { root_key_path } = &provider {
            own.push(files::OwnFile {
                field: "provider.root_key_path",
                path: root_key_path,
            });
        }
        if let ProviderSettings::AwsKms { key, backups } = &provider {
            for k in std::iter::once(key).chain(backups) {
                if PLACEHOLDER_ACCOUNTS.contains(&k.account.as_str()) {
                    warnings.push(format!(
                        "{k} names account {}, the placeholder of AWS's documentation and of the shipped example: put your KMS key's ARN here",
                        k.account
                    ));
                }
            }
        }
        files::distinct(&own, &v)?;
        let assume_role = sections::assume_role(
            raw.provider
                .as_ref()
                .and_then(|p| p.assume_role_arn.as_deref()),
            raw.provider.as_ref().and_then(|p| p.external_id.as_deref()),
            matches!(provider, ProviderSettings::AwsKms { .. }),
            &v,
        )?;
        Ok(Settings {
            organization_id: id.organization_id,
            region,
            context_key: id.context_key,
            provider,
            key_type: sections::key_type(raw.key_type.as_deref(), raw.key_bits, &v)?,
            cadence: sections::cadence(
                raw.cadence.as_deref(),
                timezone,
                overrides,
                &v,
                &mut warnings,
            )?,
            timezone,
            store,
            state_dir,
            socket_path,
            audit_path,
            retention: sections::retention(raw.retention.as_deref(), overrides, &v, &mut warnings)?,
            max_key_age_warning: v.duration(
                "max_key_age_warning",
                raw.max_key_age_warning.as_deref(),
                None,
            )?,
            announce_ahead,
            prepare_window,
            kms_timeouts: KmsTimeouts::with_config(raw.kms.as_ref(), &v)?,
            kms_budget: KmsBudget::with_config(raw.kms.as_ref(), &v)?,
            retry: RetryPolicy::with_config(raw.retry.as_ref(), &v)?,
            unwrap: UnwrapCache::with_config(raw.unwrap.as_ref(), &v)?,
            canary: Canary::with_config(raw.canary.as_ref(), overrides, &v, &mut warnings)?,
            customer_keys: CustomerKeys::with_config(
                raw.customer_keys.as_ref(),
                overrides.allow_frequent_checks,
                &v,
                &mut warnings,
            )?,
            on_revocation: sections::on_revocation(raw.on_revocation.as_deref(), &v)?,
            assume_role,
            log: LogSettings::with_config(raw.log.as_ref(), &v)?,
            access: sections::access(raw.access.as_ref(), &v)?,
            api: ApiSettings::with_config(raw.api.as_ref(), &v)?,
            metrics_listen: sections::metrics_listen(raw.metrics.as_ref(), &v)?,
            warnings,
            raw: std::sync::Arc::new(raw.clone()),
        })
    }

    /// How kekd logs.
    pub fn log(&self) -> &LogSettings {
        &self.log
    }

    /// Overrides the log format (the `--log-format` flag).
    pub fn set_log_format(&mut self, format: LogFormat) {
        self.log.format = format;
    }

    /// Values accepted only because `[overrides]` allows them.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The organization kekd serves.
    pub fn organization_id(&self) -> &str {
        &self.organization_id
    }

    /// The DynamoDB store's region, in fleet mode.
    pub fn store_region(&self) -> Option<String> {
        match &self.store {
            StoreSettings::DynamoDb(f) => Some(f.region.clone()),
            StoreSettings::Redb => None,
        }
    }

    /// The key that wraps new key pairs (a KMS key, or the local root key
    /// file), as written.
    pub(crate) fn provider_key(&self) -> String {
        match &self.provider {
            ProviderSettings::AwsKms { key, .. } => key.to_string(),
            ProviderSettings::Local { root_key_path } => root_key_path.display().to_string(),
        }
    }

    /// The backup KMS keys every key pair is also wrapped under.
    pub(crate) fn backup_keys(&self) -> Vec<arn::KmsKeyArn> {
        match &self.provider {
            ProviderSettings::AwsKms { backups, .. } => backups.clone(),
            ProviderSettings::Local { .. } => Vec::new(),
        }
    }

    /// Whether the provider is a KMS key (not the local root key).
    pub fn uses_kms(&self) -> bool {
        matches!(self.provider, ProviderSettings::AwsKms { .. })
    }

    /// The state directory (the store, the audit trail, the dev root key).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The socket the API listens on.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The resolved settings an operator can misread, one `(name, value)`
    /// per line, for `kekd check-config`.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        // The next three rotation instants, in the configured time zone:
        // what a cron expression or a time zone really means.
        let mut next = Vec::new();
        let mut t = crate::time::now();
        while next.len() < 3 {
            match self.next_rotation_after(t) {
                Some(n) => {
                    next.push(crate::time::human_in(&n, self.timezone));
                    t = n;
                }
                None => break,
            }
        }
        let days = |d: Duration| format!("{} days", d.as_secs() / 86_400);
        vec![
            ("organization", self.organization_id.clone()),
            ("provider", self.provider.to_string()),
            ("cadence", format!("{} ({})", self.cadence, self.timezone)),
            (
                "next rotations",
                if next.is_empty() {
                    "none scheduled (on demand only)".into()
                } else {
                    next.join(", ")
                },
            ),
            (
                "retention",
                self.retention
                    .map_or("keep every key pair forever".into(), |d| {
                        format!("{} (retired key pairs older are pruned)", days(d))
                    }),
            ),
            (
                "announce ahead",
                self.announce_ahead
                    .map_or("off".into(), |d| humantime::format_duration(d).to_string()),
            ),
            ("key type", self.key_type.to_string()),
            ("store", self.store.to_string()),
        ]
    }

    /// When the cadence next comes due after `after` (`None` for `never`).
    pub(crate) fn next_rotation_after(
        &self,
        after: crate::time::Timestamp,
    ) -> Option<crate::time::Timestamp> {
        self.cadence.next_after(after, self.timezone)
    }

    /// Path of the redb store inside the state directory.
    pub(crate) fn store_path(&self) -> PathBuf {
        self.state_dir.join(defaults::STORE_FILE)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
organization_id = "acme"
region = "eu-west-1"
[provider]
type = "aws-kms-symmetric"
kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:alias/kekd"
"#;

    fn err(text: &str) -> String {
        Settings::parse(text, "/etc/kekd/kekd.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn good_file_gets_defaults() {
        let s = Settings::parse(GOOD, "f.toml").unwrap();
        assert_eq!(s.key_type, KeyType::Rsa(crate::domain::KeyBits::Rsa3072));
        assert_eq!(s.cadence.to_string(), "monthly");
        assert_eq!(s.timezone, chrono_tz::UTC);
        assert_eq!(s.context_key, "organization-id");
        assert_eq!(s.socket_path, PathBuf::from(defaults::SOCKET));
        assert!(s.retention.is_none(), "nothing is pruned by default");
    }

    #[test]
    fn backup_keys_are_parsed_in_their_own_regions_and_checked() {
        let with = |list: &str| {
            GOOD.replace(
                "alias/kekd\"",
                &format!("alias/kekd\"\nbackup_kms_key_arns = {list}"),
            )
        };
        let s = Settings::parse(
            &with(r#"["arn:aws:kms:eu-central-1:123456789012:key/mrk-1234abcd1234abcd1234abcd1234abcd"]"#),
            "f.toml",
        )
        .unwrap();
        match &s.provider {
            ProviderSettings::AwsKms { backups, .. } => {
                assert_eq!(backups.len(), 1);
                assert_eq!(backups[0].region, "eu-central-1", "not the home region");
            }
            other => panic!("{other:?}"),
        }
        let e = err(&with(r#"["arn:aws:kms:eu-central-1:1:key"]"#));
        assert!(
            e.contains("provider.backup_kms_key_arns[0]") && e.contains("malformed ARN"),
            "{e}"
        );
        let e = err(&with(
            r#"["arn:aws:kms:eu-west-1:123456789012:alias/kekd"]"#,
        ));
        assert!(
            e.contains("listed twice (or the primary key itself)"),
            "{e}"
        );
    }

    #[test]
    fn the_store_is_redb_unless_a_dynamodb_table_is_configured() {
        let s = Settings::parse(GOOD, "f.toml").unwrap();
        assert_eq!(s.store, StoreSettings::Redb);
        let s = Settings::parse(
            &format!("{GOOD}[store]\ntype = \"dynamodb\"\ntable = \"kekd-keys\"\n"),
            "f.toml",
        )
        .unwrap();
        assert_eq!(
            s.store,
            StoreSettings::DynamoDb(FleetStore {
                table: "kekd-keys".into(),
                region: "eu-west-1".into(),
                refresh_interval: defaults::STORE_REFRESH_INTERVAL,
                lease_duration: defaults::STORE_LEASE_DURATION,
            })
        );
    }

    #[test]
    fn a_bad_store_section_names_the_field_and_what_is_allowed() {
        let store = |body: &str| err(&format!("{GOOD}[store]\n{body}\n"));
        let e = store("type = \"dynamodb\"");
        assert!(
            e.contains("field `store.table`") && e.contains("missing"),
            "{e}"
        );
        let e = store("type = \"dynamodb\"\ntable = \"a b\"");
        assert!(
            e.contains("not a DynamoDB table name") && e.contains("\"a b\""),
            "{e}"
        );
        let e = store("type = \"postgres\"");
        assert!(
            e.contains("field `store.type`") && e.contains("\"dynamodb\""),
            "{e}"
        );
        let e = store("table = \"kekd-keys\"");
        assert!(e.contains("only for store type \"dynamodb\""), "{e}");
        let e = store("type = \"dynamodb\"\ntable = \"t-1\"\nlease_duration = \"500ms\"");
        assert!(
            e.contains("store.lease_duration") && e.contains("1s to 10m"),
            "{e}"
        );
        let e = store("type = \"dynamodb\"\ntable = \"t-1\"\nrefresh = \"1s\"");
        assert!(e.contains("refresh"), "{e}");
    }

    #[test]
    fn malformed_arn_names_file_field_and_value() {
        let e = err(&GOOD.replace("alias/kekd", "alias"));
        assert!(
            e.starts_with("/etc/kekd/kekd.toml: field `provider.kms_key_arn`"),
            "{e}"
        );
        assert!(e.contains("malformed ARN"), "{e}");
        assert!(
            e.contains("arn:aws:kms:eu-west-1:123456789012:alias"),
            "{e}"
        );
        assert!(e.contains("allowed: arn:aws:kms:{region}"), "{e}");
    }

    #[test]
    fn arn_region_must_match_region() {
        let e = err(&GOOD.replace("region = \"eu-west-1\"", "region = \"us-east-1\""));
        assert!(e.contains("provider.kms_key_arn"), "{e}");
        assert!(
            e.contains("region eu-west-1 is not the configured region us-east-1"),
            "{e}"
        );
    }

    #[test]
    fn unknown_cadence_is_named() {
        let e = err(&format!("cadence = \"fortnightly\"\n{GOOD}"));
        assert!(
            e.contains("field `cadence`") && e.contains("\"fortnightly\""),
            "{e}"
        );
        assert!(e.contains("daily, weekly, monthly, yearly, never"), "{e}");
    }

    #[test]
    fn unsupported_key_size_is_named() {
        let e = err(&format!("key_bits = 1024\n{GOOD}"));
        assert!(
            e.contains("field `key_bits`") && e.contains("\"1024\""),
            "{e}"
        );
        assert!(e.contains("2048, 3072, 4096"), "{e}");
    }

    /// `key_type` and the older `key_bits` agree or are refused; a FIPS
    /// build offers only RSA, since X25519 is not FIPS-approved.
    #[test]
    fn key_type_subsumes_key_bits_and_fips_keeps_only_rsa() {
        use crate::domain::KeyBits;
        let parse =
            |extra: &str| Settings::parse(&format!("{extra}\n{GOOD}"), "FILE").map(|s| s.key_type);
        assert_eq!(
            parse("key_bits = 2048").unwrap(),
            KeyType::Rsa(KeyBits::Rsa2048)
        );
        assert_eq!(
            parse("key_type = \"rsa-4096\"\nkey_bits = 4096").unwrap(),
            KeyType::Rsa(KeyBits::Rsa4096)
        );
        let e = parse("key_type = \"rsa-4096\"\nkey_bits = 2048")
            .unwrap_err()
            .to_string();
        assert!(e.contains("conflicts with key_type = \"rsa-4096\""), "{e}");
        let hybrid = parse("key_type = \"x25519-mlkem768\"");
        if crate::fips::FIPS_BUILD {
            let e = hybrid.unwrap_err().to_string();
            assert!(
                e.contains("not available in the FIPS build") && e.contains("X25519"),
                "{e}"
            );
        } else {
            assert_eq!(hybrid.unwrap(), KeyType::X25519MlKem768);
        }
    }

    #[test]
    fn unknown_field_is_named_with_file() {
        let e = err(&format!("key_size = 3072\n{GOOD}"));
        assert!(e.starts_with("/etc/kekd/kekd.toml:"), "{e}");
        assert!(e.contains("unknown field `key_size`"), "{e}");
        let e = err(&GOOD.replace("[provider]", "[provider]\ncolor = 1"));
        assert!(e.contains("unknown field `color`"), "{e}");
    }

    #[test]
    fn access_names_must_exist() {
        let e = err(&format!(
            "{GOOD}\n[access.view]\nusers = [\"no-such-user-kekd\"]\n"
        ));
        assert!(e.contains("field `access.view.users`: no such user on this system (value: \"no-such-user-kekd\")"), "{e}");
        let e = err(&format!(
            "{GOOD}\n[access]\nsocket_group = \"no-such-group-kekd\"\n"
        ));
        assert!(
            e.contains("field `access.socket_group`: no such group"),
            "{e}"
        );
        let e = err(&format!("{GOOD}\n[access.admin]\nusers = [\"root\"]\n"));
        assert!(e.contains("unknown field `admin`"), "{e}");
        let s = Settings::parse(
            &format!("{GOOD}\n[access.edit]\nusers = [\"root\"]\ngroups = [\"root\"]\n"),
            "f",
        )
        .unwrap();
        assert!(s.access.edit.uids.contains(&0) && s.access.edit.gids.contains(&0));
    }

    #[test]
    fn shipped_example_configs_are_valid() {
        for f in ["config/kekd.toml", "config/kekd-local.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
            Settings::load(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn other_checks() {
        assert!(err(&format!("timezone = \"Mars/Olympus\"\n{GOOD}")).contains("field `timezone`"));
        assert!(err(&format!("retention = \"forever\"\n{GOOD}")).contains("field `retention`"));
        assert!(err(&format!("state_dir = \"relative\"\n{GOOD}")).contains("absolute path"));
        assert!(err(&GOOD.replace("acme", "ac me")).contains("field `organization_id`"));
        assert!(err(&GOOD.replace("aws-kms-symmetric", "vault")).contains("unknown provider"));
        assert!(err("organization_id = \"a\"").contains("[provider]"));
        let local =
            "organization_id = \"a\"\n[provider]\ntype = \"local\"\nroot_key_path = \"/tmp/k\"\n";
        assert!(Settings::parse(local, "f").is_ok());
    }

    /// Regression: `[canary] interval = "1ms"` with `recent = 1000` was
    /// accepted and ran 125 canaries a second; every interval that paces
    /// work has a floor (the canary's can be lifted, and says so).
    #[test]
    fn intervals_that_pace_work_have_floors() {
        let e = err(&format!(
            "{GOOD}\n[canary]\ninterval = \"1ms\"\nrecent = 1000\n"
        ));
        assert!(
            e.contains("field `canary.interval`")
                && e.contains("shorter than 1m")
                && e.contains("allow_frequent_checks"),
            "{e}"
        );
        let s = Settings::parse(
            &format!(
                "{GOOD}\n[canary]\ninterval = \"1s\"\n[overrides]\nallow_frequent_checks = true\n"
            ),
            "f",
        )
        .unwrap();
        assert!(s
            .warnings()
            .iter()
            .any(|w| w.contains("canary.interval is 1s")));
        assert!(Settings::parse(&format!("{GOOD}\n[canary]\ninterval = \"1m\"\n"), "f").is_ok());
        let e = err(&format!("{GOOD}\n[retry]\ninitial_delay = \"1ms\"\n"));
        assert!(
            e.contains("field `retry.initial_delay`") && e.contains("100ms"),
            "{e}"
        );
    }

    /// Regression: `region` had to repeat what the KMS key's ARN already
    /// names; it is derived from it, and a different one is still refused.
    #[test]
    fn the_region_comes_from_the_arn_unless_given() {
        let s = Settings::parse(&GOOD.replace("region = \"eu-west-1\"\n", ""), "f").unwrap();
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        let e = err(&GOOD.replace("region = \"eu-west-1\"", "region = \"us-east-1\""));
        assert!(e.contains("is not the configured region us-east-1"), "{e}");
    }

    /// Regression: check-config said `valid` for the shipped example's
    /// placeholder account.
    #[test]
    fn the_placeholder_account_is_warned_about() {
        let s = Settings::parse(&GOOD.replace("123456789012", "111122223333"), "f").unwrap();
        assert!(
            s.warnings()
                .iter()
                .any(|w| w.contains("account 111122223333, the placeholder")),
            "{:?}",
            s.warnings()
        );
        let s = Settings::parse(GOOD, "f").unwrap();
        assert!(s.warnings().is_empty(), "{:?}", s.warnings());
    }

    /// Regression: a misspelt field printed toml's caret diagram flattened
    /// onto one line and all 23 field names, and no suggestion.
    #[test]
    fn a_misspelt_field_is_named_with_its_line_and_the_closest_field() {
        let e = err(&GOOD.replace("region =", "regoin ="));
        assert!(
            e.contains("line 3, column 1: unknown field `regoin`; did you mean `region`?"),
            "{e}"
        );
        assert!(!e.contains('|') && !e.contains("expected one of"), "{e}");
        let e = err(&format!("{GOOD}\n[canary]\nintervall = \"1h\"\n"));
        assert!(e.contains("did you mean `interval`?"), "{e}");
        let e = err(&format!("frobnicate = 1\n{GOOD}"));
        assert!(
            e.contains("unknown field `frobnicate`; this section takes"),
            "{e}"
        );
        let e = err(&format!("{GOOD}frobnicate = 1\n"));
        assert!(
            e.contains("unknown field `frobnicate`; allowed here: `type`, `kms_key_arn`"),
            "{e}"
        );
    }

    /// Every field the parser accepts must be shown (set or commented out)
    /// in the shipped example, so "every field is listed" stays true. The
    /// accepted names come from serde's own refusal of an unknown field.
    #[test]
    fn the_example_config_lists_every_field() {
        let example = include_str!("../../config/kekd.toml");
        let shown = |name: &str| {
            example.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{name} ="))
                    || l == format!("[{name}]")
                    || l.ends_with(&format!(".{name}]"))
                    || l.ends_with(&format!(".{name}]]"))
            })
        };
        let sections = [
            "",
            "provider",
            "kms",
            "retry",
            "log",
            "access",
            "access.view",
            "canary",
            "unwrap",
            "overrides",
            "api",
            "store",
            "metrics",
        ];
        for section in sections {
            let probe = if section.is_empty() {
                "zz_unknown = 1\n".to_string()
            } else {
                format!("[{section}]\nzz_unknown = 1\n")
            };
            let e = toml::from_str::<RawConfig>(&probe).unwrap_err().to_string();
            let expected = e
                .rsplit("expected ")
                .next()
                .filter(|rest| rest.contains('`'))
                .unwrap_or_else(|| panic!("serde names the fields of [{section}]: {e}"));
            let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            assert!(names.len() >= 2, "[{section}]: {e}");
            for name in names {
                assert!(
                    shown(name),
                    "config/kekd.toml does not show `{name}` of [{section}]"
                );
            }
        }
    }
}
