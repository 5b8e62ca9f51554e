//! The KMS key-policy statements kekd needs (`kekctl policy`): exactly the
//! actions it calls, and only for its own organizations' encryption
//! contexts.

use serde_json::{json, Value};

/// Why the statements cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The principal is not an IAM/STS ARN.
    #[error(
        "--principal {0:?} is not an IAM principal ARN (e.g. arn:aws:iam::111122223333:role/kekd)"
    )]
    Principal(String),
    /// An organization id kekd would refuse.
    #[error("--org {0:?} is not an organization id (1-128 of A-Z a-z 0-9 . _ -)")]
    Organization(String),
    /// No organization given.
    #[error("at least one --org is needed: the statement is scoped to organizations")]
    NoOrganization,
}

fn valid_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The statements to add to the key policy's `Statement` array.
///
/// `DescribeKey` (preflight) carries no encryption context, so it gets its
/// own statement; `GenerateDataKey`, `Decrypt` and `ReEncrypt*` (rewrap) are
/// allowed only with `context_key` equal to one of `orgs` and no context
/// keys other than kekd's two.
pub fn statements(
    principal: &str,
    orgs: &[String],
    context_key: &str,
) -> Result<Value, PolicyError> {
    let parts: Vec<&str> = principal.splitn(6, ':').collect();
    if parts.len() != 6
        || parts[0] != "arn"
        || !matches!(parts[2], "iam" | "sts")
        || parts[5].is_empty()
    {
        return Err(PolicyError::Principal(principal.to_string()));
    }
    if orgs.is_empty() {
        return Err(PolicyError::NoOrganization);
    }
    if let Some(bad) = orgs.iter().find(|o| !valid_id(o)) {
        return Err(PolicyError::Organization(bad.clone()));
    }
    let mut context_keys = vec![
        context_key.to_string(),
        crate::domain::KEY_PAIR_CONTEXT_KEY.to_string(),
    ];
    context_keys.sort();
    Ok(json!([
        {
            "Sid": "KekdPreflight",
            "Effect": "Allow",
            "Principal": { "AWS": principal },
            "Action": "kms:DescribeKey",
            "Resource": "*"
        },
        {
            "Sid": "KekdEnvelopeEncryption",
            "Effect": "Allow",
            "Principal": { "AWS": principal },
            "Action": ["kms:GenerateDataKey", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo"],
            "Resource": "*",
            "Condition": {
                "StringEquals": { format!("kms:EncryptionContext:{context_key}"): orgs },
                "ForAllValues:StringEquals": { "kms:EncryptionContextKeys": context_keys }
            }
        }
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_name_the_actions_and_the_context_condition() {
        let v = statements(
            "arn:aws:iam::111122223333:role/kekd",
            &["acme".into(), "globex".into()],
            "organization-id",
        )
        .unwrap();
        assert_eq!(v[0]["Action"], "kms:DescribeKey");
        assert!(
            v[0].get("Condition").is_none(),
            "DescribeKey has no encryption context"
        );
        assert_eq!(
            v[1]["Action"],
            json!([
                "kms:GenerateDataKey",
                "kms:Decrypt",
                "kms:ReEncryptFrom",
                "kms:ReEncryptTo"
            ])
        );
        assert_eq!(
            v[1]["Condition"]["StringEquals"]["kms:EncryptionContext:organization-id"],
            json!(["acme", "globex"])
        );
        assert_eq!(
            v[1]["Condition"]["ForAllValues:StringEquals"]["kms:EncryptionContextKeys"],
            json!(["key-pair-id", "organization-id"])
        );
        assert_eq!(
            v[1]["Principal"]["AWS"],
            "arn:aws:iam::111122223333:role/kekd"
        );
    }

    #[test]
    fn bad_input_is_named() {
        assert!(matches!(
            statements("kekd", &["a".into()], "organization-id"),
            Err(PolicyError::Principal(_))
        ));
        assert!(matches!(
            statements(
                "arn:aws:iam::111122223333:role/kekd",
                &[],
                "organization-id"
            ),
            Err(PolicyError::NoOrganization)
        ));
        assert!(matches!(
            statements(
                "arn:aws:iam::111122223333:role/kekd",
                &["a b".into()],
                "organization-id"
            ),
            Err(PolicyError::Organization(_))
        ));
    }
}
