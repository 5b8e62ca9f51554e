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
    /// The table name is not one DynamoDB accepts, or the region is not a
    /// region.
    #[error("--table {0:?} with --table-region {1:?}: expected a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -) and a region such as eu-west-1")]
    Table(String, String),
    /// Not an IAM role ARN.
    #[error(
        "--role-arn {0:?} is not an IAM role ARN (e.g. arn:aws:iam::210987654321:role/kekd-access)"
    )]
    Role(String),
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
/// own statement; `GenerateDataKey`, `Encrypt` (the backup wrappings: put
/// the same statements into each backup key's policy), `Decrypt` and
/// `ReEncrypt*` (rewrap) are
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
            "Action": ["kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo"],
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
                "kms:Encrypt",
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

/// What a customer installs to give kekd their key through a role in their
/// account (and what the platform's own role needs): the role's trust
/// policy — the platform's principal, only with the external id — its
/// permissions policy on the customer's key, scoped to the organization's
/// encryption context as the key-policy statements are, and the
/// platform's IAM policy that lets it assume that role.
pub fn assume_role_policies(
    principal: &str,
    org: &str,
    role_arn: &str,
    external_id: &str,
    key_arn: &str,
    context_key: &str,
) -> Result<Value, PolicyError> {
    let statements = statements(principal, &[org.to_string()], context_key)?;
    if !role_arn.starts_with("arn:aws") || !role_arn.contains(":role/") {
        return Err(PolicyError::Role(role_arn.to_string()));
    }
    // The key-policy statements, as an identity policy of the role: the same
    // actions and conditions, on the customer's key, without a principal.
    let on_key = |mut s: Value| {
        if let Some(o) = s.as_object_mut() {
            o.remove("Principal");
            o.insert("Resource".into(), json!(key_arn));
        }
        s
    };
    let permissions: Vec<Value> = statements
        .as_array()
        .into_iter()
        .flatten()
        .cloned()
        .map(on_key)
        .collect();
    Ok(json!({
        "role_trust_policy": {
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "KekdAssumesThisRole",
                "Effect": "Allow",
                "Principal": { "AWS": principal },
                "Action": "sts:AssumeRole",
                "Condition": { "StringEquals": { "sts:ExternalId": external_id } }
            }]
        },
        "role_permissions_policy": { "Version": "2012-10-17", "Statement": permissions },
        "platform_iam_policy": {
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "KekdAssumesCustomerRoles",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": role_arn
            }]
        }
    }))
}

/// The identity-based IAM policy a fleet member needs on its DynamoDB
/// table (attach it to the role kekd runs as): the item operations kekd
/// makes — `TransactWriteItems` is authorized as the Put/Update/Delete/
/// ConditionCheck it contains — limited by `dynamodb:LeadingKeys` to the
/// organizations' own partitions, so one table can hold several
/// organizations that cannot read each other's key pairs; and
/// `DescribeTable` for the preflight (it takes no item condition).
pub fn dynamodb_policy(
    principal: &str,
    orgs: &[String],
    table: &str,
    region: &str,
) -> Result<Value, PolicyError> {
    // The same checks as the key-policy statements.
    statements(principal, orgs, crate::config::defaults::CONTEXT_KEY)?;
    if !crate::config::is_table_name(table) || !crate::config::arn::is_region(region) {
        return Err(PolicyError::Table(table.to_string(), region.to_string()));
    }
    let account = principal.split(':').nth(4).unwrap_or_default();
    let table_arn = format!("arn:aws:dynamodb:{region}:{account}:table/{table}");
    Ok(json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "KekdStoreItems",
                "Effect": "Allow",
                "Action": [
                    "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query",
                    "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                    "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem"
                ],
                "Resource": [table_arn.clone(), format!("{table_arn}/index/history")],
                "Condition": {
                    "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": orgs }
                }
            },
            {
                "Sid": "KekdStorePreflight",
                "Effect": "Allow",
                "Action": "dynamodb:DescribeTable",
                "Resource": table_arn
            }
        ]
    }))
}

#[cfg(test)]
mod role_tests {
    use super::*;

    #[test]
    fn the_role_trusts_the_platform_only_with_the_external_id() {
        let key = "arn:aws:kms:eu-west-1:210987654321:key/k";
        let p = assume_role_policies(
            "arn:aws:iam::111122223333:role/kekd",
            "acme",
            "arn:aws:iam::210987654321:role/kekd-access",
            "ext-123",
            key,
            "organization-id",
        )
        .unwrap();
        let trust = &p["role_trust_policy"]["Statement"][0];
        assert_eq!(trust["Action"], "sts:AssumeRole");
        assert_eq!(
            trust["Condition"]["StringEquals"]["sts:ExternalId"],
            "ext-123"
        );
        let perms = &p["role_permissions_policy"]["Statement"];
        assert_eq!(perms[1]["Resource"], key);
        assert!(perms[1].get("Principal").is_none());
        assert_eq!(
            perms[1]["Condition"]["StringEquals"]["kms:EncryptionContext:organization-id"],
            json!(["acme"])
        );
        assert_eq!(
            p["platform_iam_policy"]["Statement"][0]["Resource"],
            "arn:aws:iam::210987654321:role/kekd-access"
        );
        assert!(matches!(
            assume_role_policies(
                "arn:aws:iam::111122223333:role/kekd",
                "acme",
                "kekd-access",
                "x",
                key,
                "organization-id"
            ),
            Err(PolicyError::Role(_))
        ));
    }
}

#[cfg(test)]
mod dynamodb_tests {
    use super::*;

    #[test]
    fn the_dynamodb_policy_is_scoped_to_the_table_and_the_organizations_partitions() {
        let orgs = vec!["acme".to_string(), "globex".to_string()];
        let p = dynamodb_policy(
            "arn:aws:iam::111122223333:role/kekd",
            &orgs,
            "kekd-keys",
            "eu-west-1",
        )
        .unwrap();
        let items = &p["Statement"][0];
        assert_eq!(
            items["Resource"][0],
            "arn:aws:dynamodb:eu-west-1:111122223333:table/kekd-keys"
        );
        assert_eq!(
            items["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"],
            json!(orgs)
        );
        assert!(items["Action"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a.as_str().unwrap().starts_with("dynamodb:")));
        assert!(matches!(
            dynamodb_policy("arn:aws:iam::1:role/k", &orgs, "a", "eu-west-1"),
            Err(PolicyError::Table(..))
        ));
    }
}
