//! The account checks Postfix makes when it reads main.cf (global/mail_params.c):
//! `default_privs` and `mail_owner` name existing unprivileged users, `setgid_group` an
//! existing unprivileged group, and none of them share a user or group ID.
//!
//! The password and group databases are reached through [`Accounts`], so the checks are
//! table-tested without touching the host; [`SystemAccounts`] is the real one.

use nix::unistd::{Gid, Group, Uid, User};

/// A user as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The password and group databases.
pub trait Accounts {
    fn user_by_name(&self, name: &str) -> Option<Account>;
    fn user_by_uid(&self, uid: u32) -> Option<Account>;
    /// A group's name and ID.
    fn group_by_name(&self, name: &str) -> Option<(String, u32)>;
    fn group_by_gid(&self, gid: u32) -> Option<(String, u32)>;
}

/// getpwnam() and friends. A lookup error counts as "not found", as Postfix's does.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemAccounts;

impl Accounts for SystemAccounts {
    fn user_by_name(&self, name: &str) -> Option<Account> {
        User::from_name(name).ok().flatten().map(account)
    }
    fn user_by_uid(&self, uid: u32) -> Option<Account> {
        User::from_uid(Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(account)
    }
    fn group_by_name(&self, name: &str) -> Option<(String, u32)> {
        Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| (g.name, g.gid.as_raw()))
    }
    fn group_by_gid(&self, gid: u32) -> Option<(String, u32)> {
        Group::from_gid(Gid::from_raw(gid))
            .ok()
            .flatten()
            .map(|g| (g.name, g.gid.as_raw()))
    }
}

fn account(user: User) -> Account {
    Account {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    }
}

/// The identities the rest of the check works with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owners {
    pub mail_owner: Account,
    /// `setgid_group`'s name and ID.
    pub setgid_group: (String, u32),
}

/// Why the accounts are refused; `Display` is Postfix's text after `file DIR/main.cf: `
/// (the caller adds that prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerError {
    #[error("parameter {param}: unknown user name value: {name}")]
    UnknownUser { param: &'static str, name: String },
    #[error("parameter {param}: user {name} has privileged user ID")]
    PrivilegedUid { param: &'static str, name: String },
    #[error("parameter {param}: user {name} has privileged group ID")]
    PrivilegedGid { param: &'static str, name: String },
    #[error("parameter {param}: user {name} has same user ID as {other}")]
    SharedUid {
        param: &'static str,
        name: String,
        other: String,
    },
    #[error("parameter setgid_group: unknown group name: {0}")]
    UnknownGroup(String),
    #[error("parameter setgid_group: group {0} has privileged group ID")]
    PrivilegedGroup(String),
    #[error("parameter setgid_group: group {name} has same group ID as {other}")]
    SharedGid { name: String, other: String },
    #[error("parameters default_privs and mail_owner specify the same user {0}")]
    SameUser(String),
    #[error(
        "parameters default_privs and mail_owner: users {privs} and {owner} have the same user ID: {id}"
    )]
    SameUid {
        privs: String,
        owner: String,
        id: u32,
    },
    #[error(
        "parameters default_privs and mail_owner: users {privs} and {owner} have the same group ID: {id}"
    )]
    SameUserGid {
        privs: String,
        owner: String,
        id: u32,
    },
    #[error(
        "parameters {user_param} and setgid_group: user {user} and group {group} have the same group ID: {id}"
    )]
    SameGroupGid {
        user_param: &'static str,
        user: String,
        group: String,
        id: u32,
    },
}

/// Runs Postfix's check_default_privs(), check_mail_owner(), check_sgid_group() and
/// check_overlap(), in that order, on the expanded parameter values.
pub fn check(
    db: &dyn Accounts,
    default_privs: &str,
    mail_owner: &str,
    setgid_group: &str,
) -> Result<Owners, OwnerError> {
    let privs = unprivileged_user(db, "default_privs", default_privs)?;
    let owner = unprivileged_user(db, "mail_owner", mail_owner)?;
    // Postfix looks for sharing of mail_owner's UID only: enumerating the whole password
    // file would be expensive, and the point is to discourage packagers from sharing.
    if let Some(other) = db.user_by_uid(owner.uid)
        && other.name != mail_owner
    {
        return Err(OwnerError::SharedUid {
            param: "mail_owner",
            name: mail_owner.to_owned(),
            other: other.name,
        });
    }
    let Some((_, sgid)) = db.group_by_name(setgid_group) else {
        return Err(OwnerError::UnknownGroup(setgid_group.to_owned()));
    };
    if sgid == 0 {
        return Err(OwnerError::PrivilegedGroup(setgid_group.to_owned()));
    }
    if let Some((other, _)) = db.group_by_gid(sgid)
        && other != setgid_group
    {
        return Err(OwnerError::SharedGid {
            name: setgid_group.to_owned(),
            other,
        });
    }
    if default_privs == mail_owner {
        return Err(OwnerError::SameUser(default_privs.to_owned()));
    }
    if privs.uid == owner.uid {
        return Err(OwnerError::SameUid {
            privs: default_privs.to_owned(),
            owner: mail_owner.to_owned(),
            id: owner.uid,
        });
    }
    if privs.gid == owner.gid {
        return Err(OwnerError::SameUserGid {
            privs: default_privs.to_owned(),
            owner: mail_owner.to_owned(),
            id: owner.gid,
        });
    }
    for (param, user, gid) in [
        ("default_privs", default_privs, privs.gid),
        ("mail_owner", mail_owner, owner.gid),
    ] {
        if gid == sgid {
            return Err(OwnerError::SameGroupGid {
                user_param: param,
                user: user.to_owned(),
                group: setgid_group.to_owned(),
                id: sgid,
            });
        }
    }
    Ok(Owners {
        mail_owner: owner,
        setgid_group: (setgid_group.to_owned(), sgid),
    })
}

fn unprivileged_user(
    db: &dyn Accounts,
    param: &'static str,
    name: &str,
) -> Result<Account, OwnerError> {
    let Some(user) = db.user_by_name(name) else {
        return Err(OwnerError::UnknownUser {
            param,
            name: name.to_owned(),
        });
    };
    if user.uid == 0 {
        return Err(OwnerError::PrivilegedUid {
            param,
            name: name.to_owned(),
        });
    }
    if user.gid == 0 {
        return Err(OwnerError::PrivilegedGid {
            param,
            name: name.to_owned(),
        });
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small password and group file.
    struct Fake;

    const USERS: &[(&str, u32, u32)] = &[
        ("root", 0, 0),
        ("postfix", 105, 112),
        ("nobody", 65534, 65534),
        ("toor", 0, 0),
        ("wheelie", 300, 0),
        ("pfalias", 105, 112),
        ("twin", 400, 113),
    ];
    const GROUPS: &[(&str, u32)] = &[
        ("root", 0),
        ("postdrop", 113),
        ("postfix", 112),
        ("nogroup", 65534),
        ("dropalias", 113),
    ];

    impl Accounts for Fake {
        fn user_by_name(&self, name: &str) -> Option<Account> {
            USERS.iter().find(|u| u.0 == name).map(|u| Account {
                name: u.0.to_owned(),
                uid: u.1,
                gid: u.2,
            })
        }
        fn user_by_uid(&self, uid: u32) -> Option<Account> {
            USERS
                .iter()
                .find(|u| u.1 == uid)
                .and_then(|u| self.user_by_name(u.0))
        }
        fn group_by_name(&self, name: &str) -> Option<(String, u32)> {
            GROUPS
                .iter()
                .find(|g| g.0 == name)
                .map(|g| (g.0.to_owned(), g.1))
        }
        fn group_by_gid(&self, gid: u32) -> Option<(String, u32)> {
            GROUPS
                .iter()
                .find(|g| g.1 == gid)
                .map(|g| (g.0.to_owned(), g.1))
        }
    }

    #[test]
    fn accounts_checked_in_postfix_order() {
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            ("nobody", "postfix", "postdrop", None),
            (
                "nobody",
                "nosuchuser",
                "postdrop",
                Some("parameter mail_owner: unknown user name value: nosuchuser"),
            ),
            (
                "nobody",
                "root",
                "postdrop",
                Some("parameter mail_owner: user root has privileged user ID"),
            ),
            (
                "nobody",
                "wheelie",
                "postdrop",
                Some("parameter mail_owner: user wheelie has privileged group ID"),
            ),
            (
                "nosuch",
                "root",
                "postdrop",
                Some("parameter default_privs: unknown user name value: nosuch"),
            ),
            (
                "nobody",
                "pfalias",
                "postdrop",
                Some("parameter mail_owner: user pfalias has same user ID as postfix"),
            ),
            (
                "nobody",
                "postfix",
                "nosuch",
                Some("parameter setgid_group: unknown group name: nosuch"),
            ),
            (
                "nobody",
                "postfix",
                "root",
                Some("parameter setgid_group: group root has privileged group ID"),
            ),
            (
                "nobody",
                "postfix",
                "dropalias",
                Some("parameter setgid_group: group dropalias has same group ID as postdrop"),
            ),
            (
                "postfix",
                "postfix",
                "postdrop",
                Some("parameters default_privs and mail_owner specify the same user postfix"),
            ),
            (
                "nobody",
                "postfix",
                "postfix",
                Some(
                    "parameters mail_owner and setgid_group: user postfix and group postfix \
                     have the same group ID: 112",
                ),
            ),
            (
                "twin",
                "postfix",
                "postdrop",
                Some(
                    "parameters default_privs and setgid_group: user twin and group postdrop \
                     have the same group ID: 113",
                ),
            ),
        ];
        for (privs, owner, group, want) in cases {
            let got = check(&Fake, privs, owner, group)
                .err()
                .map(|e| e.to_string());
            assert_eq!(got.as_deref(), *want, "{privs} {owner} {group}");
        }
    }
}
