//! KMS key ARNs: `arn:{partition}:kms:{region}:{account}:alias/{name}` or
//! `…:key/{id}`. Parsed up front so a typo fails at `check-config`, not at
//! the first rotation.

use std::fmt;

/// What the ARN points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KmsKeyTarget {
    /// `alias/{name}`: resolved by KMS to a key on every call.
    Alias(String),
    /// `key/{id}`: a key id (UUID, or `mrk-…` for a multi-Region key).
    Key(String),
}

/// A parsed KMS key or alias ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KmsKeyArn {
    /// `aws`, `aws-cn` or `aws-us-gov`.
    pub(crate) partition: String,
    /// The region the key lives in.
    pub(crate) region: String,
    /// The 12-digit account id.
    pub(crate) account: String,
    /// Alias or key.
    pub(crate) target: KmsKeyTarget,
}

impl fmt::Display for KmsKeyArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, name) = match &self.target {
            KmsKeyTarget::Alias(n) => ("alias", n),
            KmsKeyTarget::Key(n) => ("key", n),
        };
        write!(
            f,
            "arn:{}:kms:{}:{}:{}/{}",
            self.partition, self.region, self.account, kind, name
        )
    }
}

/// The accepted shape, quoted in error messages.
pub(crate) const ARN_FORMS: &str =
    "arn:aws:kms:{region}:{12-digit account}:alias/{name} or arn:aws:kms:{region}:{12-digit account}:key/{key id}";

impl std::str::FromStr for KmsKeyArn {
    type Err = String;

    /// Parses an ARN; the error says which part is wrong.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" {
            return Err("not an ARN (expected six ':'-separated parts starting with 'arn')".into());
        }
        let (partition, service, region, account, resource) =
            (parts[1], parts[2], parts[3], parts[4], parts[5]);
        if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
            return Err(format!(
                "partition '{partition}' is not one of aws, aws-cn, aws-us-gov"
            ));
        }
        if service != "kms" {
            return Err(format!("service is '{service}', not 'kms'"));
        }
        if !is_region(region) {
            return Err(format!(
                "region '{region}' is not a region name like eu-west-1"
            ));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("account '{account}' is not a 12-digit account id"));
        }
        let target = if let Some(name) = resource.strip_prefix("alias/") {
            if name.is_empty()
                || name.starts_with("aws/")
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
            {
                return Err(format!(
                    "alias name '{name}' must be non-empty, not an AWS-managed aws/… alias, and use only A-Z a-z 0-9 / _ -"
                ));
            }
            KmsKeyTarget::Alias(name.to_string())
        } else if let Some(id) = resource.strip_prefix("key/") {
            if !is_key_id(id) {
                return Err(format!(
                    "key id '{id}' is neither a UUID nor a multi-Region id mrk-<32 hex>"
                ));
            }
            KmsKeyTarget::Key(id.to_string())
        } else {
            return Err(format!(
                "resource '{resource}' is neither alias/{{name}} nor key/{{id}}"
            ));
        };
        Ok(KmsKeyArn {
            partition: partition.into(),
            region: region.into(),
            account: account.into(),
            target,
        })
    }
}

/// `xx-xxxx-N` style, lower-case: `eu-west-1`, `us-gov-west-1`, `ap-southeast-3`.
pub(crate) fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1]
            .parse::<u8>()
            .is_ok_and(|_| !parts[parts.len() - 1].is_empty())
}

fn is_key_id(id: &str) -> bool {
    let is_hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(rest) = id.strip_prefix("mrk-") {
        return rest.len() == 32 && is_hex(rest);
    }
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && is_hex(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alias_and_key_arns() {
        let a: KmsKeyArn = "arn:aws:kms:eu-west-1:123456789012:alias/kekd-acme"
            .parse()
            .unwrap();
        assert_eq!(a.region, "eu-west-1");
        assert_eq!(a.target, KmsKeyTarget::Alias("kekd-acme".into()));
        let k: KmsKeyArn =
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                .parse()
                .unwrap();
        assert!(matches!(k.target, KmsKeyTarget::Key(_)));
        assert_eq!(
            k.to_string(),
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        );
        let m: KmsKeyArn =
            "arn:aws:kms:us-east-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab"
                .parse()
                .unwrap();
        assert!(matches!(m.target, KmsKeyTarget::Key(_)));
    }

    #[test]
    fn names_the_broken_part() {
        let cases = [
            ("kms-key", "not an ARN"),
            (
                "arn:aws:s3:eu-west-1:123456789012:alias/x",
                "service is 's3'",
            ),
            ("arn:aws:kms:EU:123456789012:alias/x", "region 'EU'"),
            ("arn:aws:kms:eu-west-1:1234:alias/x", "account '1234'"),
            ("arn:aws:kms:eu-west-1:123456789012:alias/", "alias name ''"),
            (
                "arn:aws:kms:eu-west-1:123456789012:alias/aws/ebs",
                "AWS-managed",
            ),
            (
                "arn:aws:kms:eu-west-1:123456789012:key/nope",
                "key id 'nope'",
            ),
            (
                "arn:aws:kms:eu-west-1:123456789012:bucket/x",
                "resource 'bucket/x'",
            ),
            (
                "arn:foo:kms:eu-west-1:123456789012:alias/x",
                "partition 'foo'",
            ),
        ];
        for (arn, want) in cases {
            let err = arn.parse::<KmsKeyArn>().unwrap_err();
            assert!(err.contains(want), "{arn}: {err}");
        }
    }
}
