//! `[access]`: roles granted to local users and groups, resolved to ids when
//! the file is validated, so a typo in a name fails `check-config` instead of
//! silently granting nothing.

use super::raw::{RawAccess, RawGrant, RawScopedGrant};
use std::collections::BTreeSet;

/// What a caller may do over the socket.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Status, history, public key, metrics.
    View,
    /// Rotate, test, reload, rewrap, envelope export (implies `view`).
    Edit,
    /// Unwrap content keys.
    Decrypt,
}

impl Role {
    /// The name used in the config and in errors.
    pub fn name(self) -> &'static str {
        match self {
            Role::View => "view",
            Role::Edit => "edit",
            Role::Decrypt => "decrypt",
        }
    }
}

/// One role's grant, by numeric id (names kept for messages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Grant {
    /// Granted user ids.
    pub(crate) uids: BTreeSet<u32>,
    /// Granted group ids (primary or supplementary membership counts).
    pub(crate) gids: BTreeSet<u32>,
}

/// The validated `[access]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Access {
    /// Group that owns the socket (mode 0660); `None` = the daemon's group.
    pub(crate) socket_group: Option<u32>,
    /// `view` grant.
    pub(crate) view: Grant,
    /// `edit` grant.
    pub(crate) edit: Grant,
    /// `decrypt` grant.
    pub(crate) decrypt: Grant,
    /// Roles held for some organizations only (`[[access.grant]]`).
    pub(crate) scoped: Vec<ScopedGrant>,
}

/// A role for some organizations only: a player service for one customer
/// gets `decrypt` for that customer, and nothing for the others or for the
/// daemon-wide endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScopedGrant {
    /// The role.
    pub(crate) role: Role,
    /// Who holds it.
    pub(crate) grant: Grant,
    /// For which organizations.
    pub(crate) organizations: BTreeSet<String>,
}

impl Access {
    /// Whether a caller with `uid`, primary group `gid` and supplementary
    /// groups `groups` holds `role` for organization `org` (`None`: a
    /// daemon-wide endpoint, which only unlimited grants cover). Root and
    /// the daemon's own user always do; `edit` implies `view`.
    pub(crate) fn allows(
        &self,
        role: Role,
        org: Option<&str>,
        uid: u32,
        gid: u32,
        groups: &[u32],
        daemon_uid: u32,
    ) -> bool {
        if uid == 0 || uid == daemon_uid {
            return true;
        }
        let held = |g: &Grant| {
            g.uids.contains(&uid)
                || g.gids.contains(&gid)
                || groups.iter().any(|gid| g.gids.contains(gid))
        };
        let covers = |r: Role| match role {
            Role::View => r == Role::View || r == Role::Edit,
            other => r == other,
        };
        let global = match role {
            Role::View => held(&self.view) || held(&self.edit),
            Role::Edit => held(&self.edit),
            Role::Decrypt => held(&self.decrypt),
        };
        global
            || org.is_some_and(|org| {
                self.scoped
                    .iter()
                    .any(|s| covers(s.role) && s.organizations.contains(org) && held(&s.grant))
            })
    }
}

/// A name that does not resolve.
pub(crate) struct Unknown {
    /// Dotted field.
    pub(crate) field: String,
    /// The name.
    pub(crate) value: String,
    /// `user` or `group`.
    pub(crate) kind: &'static str,
    /// Not a name to look up but a value that is not allowed: the problem
    /// and what is allowed.
    pub(crate) invalid: Option<(&'static str, &'static str)>,
}

fn uid_of(name: &str) -> Option<u32> {
    nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
}

fn gid_of(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

fn grant(role: &str, raw: Option<RawGrant>) -> Result<Grant, Unknown> {
    let raw = raw.unwrap_or_default();
    names(&format!("access.{role}"), raw.users, raw.groups)
}

/// The uids and gids of user and group names; `at` names the table.
fn names(
    at: &str,
    users: Option<Vec<String>>,
    groups: Option<Vec<String>>,
) -> Result<Grant, Unknown> {
    let mut g = Grant::default();
    for name in users.unwrap_or_default() {
        g.uids.insert(uid_of(&name).ok_or_else(|| Unknown {
            field: format!("{at}.users"),
            value: name.clone(),
            kind: "user",
            invalid: None,
        })?);
    }
    for name in groups.unwrap_or_default() {
        g.gids.insert(gid_of(&name).ok_or_else(|| Unknown {
            field: format!("{at}.groups"),
            value: name.clone(),
            kind: "group",
            invalid: None,
        })?);
    }
    Ok(g)
}

/// One `[[access.grant]]` (the `n`th): a known role, known names, and
/// at least one valid organization id.
fn scoped(n: usize, raw: RawScopedGrant) -> Result<ScopedGrant, Unknown> {
    let at = format!("access.grant[{n}]");
    let role = match raw.role.as_deref() {
        Some("view") => Role::View,
        Some("edit") => Role::Edit,
        Some("decrypt") => Role::Decrypt,
        other => {
            return Err(Unknown {
                field: format!("{at}.role"),
                value: other.unwrap_or("").to_string(),
                kind: "role",
                invalid: Some(("not a role", "view, edit or decrypt")),
            })
        }
    };
    let organizations: BTreeSet<String> =
        raw.organizations.unwrap_or_default().into_iter().collect();
    if organizations.is_empty() {
        return Err(Unknown {
            field: format!("{at}.organizations"),
            value: String::new(),
            kind: "organizations",
            invalid: Some((
                "missing or empty",
                "a list of organization ids (a grant for every organization goes in [access.ROLE])",
            )),
        });
    }
    if let Some(bad) = organizations.iter().find(|o| !crate::domain::is_org_id(o)) {
        return Err(Unknown {
            field: format!("{at}.organizations"),
            value: bad.clone(),
            kind: "organization",
            invalid: Some((
                "not a valid organization id",
                "1-64 characters of A-Z a-z 0-9 . _ -",
            )),
        });
    }
    Ok(ScopedGrant {
        role,
        grant: names(&at, raw.users, raw.groups)?,
        organizations,
    })
}

/// Resolves every name in `[access]`.
pub(crate) fn resolve(raw: Option<&RawAccess>) -> Result<Access, Unknown> {
    let raw = raw.cloned().unwrap_or_default();
    let socket_group = match raw.socket_group {
        None => None,
        Some(name) => Some(gid_of(&name).ok_or(Unknown {
            field: "access.socket_group".into(),
            value: name,
            kind: "group",
            invalid: None,
        })?),
    };
    Ok(Access {
        socket_group,
        view: grant("view", raw.view)?,
        edit: grant("edit", raw.edit)?,
        decrypt: grant("decrypt", raw.decrypt)?,
        scoped: raw
            .grant
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(n, g)| scoped(n, g))
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Access {
        fn allows_all(&self, role: Role, uid: u32, gid: u32, groups: &[u32], me: u32) -> bool {
            self.allows(role, None, uid, gid, groups, me)
        }
    }

    /// A grant limited to organizations holds for those and no other, and
    /// never for the daemon-wide endpoints; edit implies view there too.
    #[test]
    fn a_scoped_grant_holds_for_its_organizations_only() {
        let mut a = Access::default();
        let mut g = Grant::default();
        g.uids.insert(2000);
        a.scoped.push(ScopedGrant {
            role: Role::Decrypt,
            grant: g.clone(),
            organizations: ["acme".to_string()].into(),
        });
        a.scoped.push(ScopedGrant {
            role: Role::Edit,
            grant: g,
            organizations: ["beta".to_string()].into(),
        });
        let me = 999;
        assert!(a.allows(Role::Decrypt, Some("acme"), 2000, 2000, &[], me));
        assert!(!a.allows(Role::Decrypt, Some("beta"), 2000, 2000, &[], me));
        assert!(
            !a.allows(Role::Decrypt, None, 2000, 2000, &[], me),
            "daemon-wide"
        );
        assert!(
            !a.allows(Role::View, Some("acme"), 2000, 2000, &[], me),
            "decrypt is not view"
        );
        assert!(
            a.allows(Role::View, Some("beta"), 2000, 2000, &[], me),
            "edit implies view"
        );
        assert!(
            !a.allows(Role::Decrypt, Some("acme"), 2001, 2001, &[], me),
            "another uid"
        );
    }

    #[test]
    fn roles_and_implications() {
        let mut a = Access::default();
        a.view.uids.insert(1000);
        a.edit.gids.insert(50);
        a.decrypt.uids.insert(2000);
        let me = 999;
        assert!(a.allows_all(Role::Edit, 0, 0, &[], me), "root");
        assert!(
            a.allows_all(Role::Decrypt, me, me, &[], me),
            "the daemon's own user"
        );
        assert!(a.allows_all(Role::View, 1000, 1000, &[], me));
        assert!(!a.allows_all(Role::Edit, 1000, 1000, &[], me));
        assert!(
            a.allows_all(Role::Edit, 3000, 3000, &[50], me),
            "supplementary group"
        );
        assert!(a.allows_all(Role::Edit, 3000, 50, &[], me), "primary group");
        assert!(
            a.allows_all(Role::View, 3000, 3000, &[50], me),
            "edit implies view"
        );
        assert!(
            !a.allows_all(Role::Decrypt, 3000, 3000, &[50], me),
            "edit does not imply decrypt"
        );
        assert!(a.allows_all(Role::Decrypt, 2000, 2000, &[], me));
        assert!(
            !a.allows_all(Role::View, 2000, 2000, &[], me),
            "decrypt does not imply view"
        );
    }
}
