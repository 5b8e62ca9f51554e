//! `[access]`: roles granted to local users and groups, resolved to ids when
//! the file is validated, so a typo in a name fails `check-config` instead of
//! silently granting nothing.

use super::raw::{RawAccess, RawGrant};
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
}

impl Access {
    /// Whether a caller with `uid`, primary group `gid` and supplementary
    /// groups `groups` holds `role`. Root and the daemon's own user always
    /// do; `edit` implies `view`.
    pub(crate) fn allows(
        &self,
        role: Role,
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
        match role {
            Role::View => held(&self.view) || held(&self.edit),
            Role::Edit => held(&self.edit),
            Role::Decrypt => held(&self.decrypt),
        }
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
    let mut g = Grant::default();
    for name in raw.users.unwrap_or_default() {
        g.uids.insert(uid_of(&name).ok_or_else(|| Unknown {
            field: format!("access.{role}.users"),
            value: name.clone(),
            kind: "user",
        })?);
    }
    for name in raw.groups.unwrap_or_default() {
        g.gids.insert(gid_of(&name).ok_or_else(|| Unknown {
            field: format!("access.{role}.groups"),
            value: name.clone(),
            kind: "group",
        })?);
    }
    Ok(g)
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
        })?),
    };
    Ok(Access {
        socket_group,
        view: grant("view", raw.view)?,
        edit: grant("edit", raw.edit)?,
        decrypt: grant("decrypt", raw.decrypt)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_implications() {
        let mut a = Access::default();
        a.view.uids.insert(1000);
        a.edit.gids.insert(50);
        a.decrypt.uids.insert(2000);
        let me = 999;
        assert!(a.allows(Role::Edit, 0, 0, &[], me), "root");
        assert!(
            a.allows(Role::Decrypt, me, me, &[], me),
            "the daemon's own user"
        );
        assert!(a.allows(Role::View, 1000, 1000, &[], me));
        assert!(!a.allows(Role::Edit, 1000, 1000, &[], me));
        assert!(
            a.allows(Role::Edit, 3000, 3000, &[50], me),
            "supplementary group"
        );
        assert!(a.allows(Role::Edit, 3000, 50, &[], me), "primary group");
        assert!(
            a.allows(Role::View, 3000, 3000, &[50], me),
            "edit implies view"
        );
        assert!(
            !a.allows(Role::Decrypt, 3000, 3000, &[50], me),
            "edit does not imply decrypt"
        );
        assert!(a.allows(Role::Decrypt, 2000, 2000, &[], me));
        assert!(
            !a.allows(Role::View, 2000, 2000, &[], me),
            "decrypt does not imply view"
        );
    }
}
