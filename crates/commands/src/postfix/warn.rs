//! The ownership and permission findings of Postfix's `postfix-script check-warn`: files that
//! are not owned by root or by `mail_owner`, that are group or other writable, symlinks that
//! leave the configuration directory, queue directories not in `setgid_group`, chroot copies
//! that differ from the host's, damaged messages.
//!
//! The script runs `find`; this module walks the same trees in the same order (each tree
//! pre-order, entries in directory order as `find` reads them) and prints paths exactly as
//! `find` builds them (`/etc/postfix/./main.cf`). Only what exists is looked at: Postfix
//! creates missing queue directories before this step and Tern does not, so a missing one is
//! simply not reported. It reads the file system and trusts nothing in it; unreadable
//! directories are skipped.

use std::fs::{self, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The queue subdirectories whose trees must belong to `mail_owner` (postfix-script's list;
/// maildrop, the least trusted, is checked without descending).
const QUEUE_SUBDIRS: &[&str] = &[
    "saved", "incoming", "active", "defer", "deferred", "bounce", "hold", "trace", "corrupt",
    "public", "private", "flush",
];

/// The chroot copies of host directories that may live in the queue directory.
const CHROOT_DIRS: &[&str] = &["bin", "etc", "lib", "sbin", "usr"];

/// Where to look and whom to expect.
#[derive(Debug, Clone)]
pub struct Layout {
    pub config_dir: String,
    pub queue_dir: String,
    pub data_dir: String,
    pub command_dir: String,
    pub daemon_dir: String,
    pub meta_dir: String,
    /// `no` when Postfix is built without shared libraries.
    pub shlib_dir: String,
    /// Whether this instance also checks the files it shares with other instances (false
    /// for a secondary instance listed in the default instance's multi_instance_directories).
    pub check_shared: bool,
    /// The owner of the root-owned trees: `("root", 0)`, or the invoking user when Tern is
    /// started by an ordinary user. In that mode everything runs as that user, so files of
    /// root's stay acceptable where root is expected (the shared program files are
    /// installed by root), and so do the user's own where mail_owner is expected.
    pub root: (String, u32),
    /// Whether Tern was started by an ordinary user (`root` is then that user).
    pub ordinary_user: bool,
    pub mail_owner: (String, u32),
    pub setgid_group: (String, u32),
}

/// Every finding, in postfix-script's order, as the text after `warning: `.
pub fn check_warn(layout: &Layout) -> Vec<String> {
    let mut out = Vec::new();
    let q = &layout.queue_dir;
    let (root, root_uid) = (&layout.root.0, layout.root.1);
    let (owner, owner_uid) = (&layout.mail_owner.0, layout.mail_owner.1);
    let root_ok = |uid: u32| uid == root_uid || (layout.ordinary_user && uid == 0);
    let owner_ok = |uid: u32| uid == owner_uid || (layout.ordinary_user && uid == root_uid);
    let (group, gid) = (&layout.setgid_group.0, layout.setgid_group.1);

    // The queue directory itself and its pid directory belong to root.
    let queue_top = [format!("{q}/."), format!("{q}/pid")];
    for path in &queue_top {
        if let Ok(meta) = fs::symlink_metadata(path)
            && !root_ok(meta.uid())
        {
            out.push(format!("not owned by {root}: {path}"));
        }
    }
    for path in &queue_top {
        if fs::symlink_metadata(path).is_ok_and(|m| writable(&m)) {
            out.push(format!("group or other writable: {path}"));
        }
    }

    // The root-owned trees: the configuration directory, and the program directories that
    // all instances share.
    let mut todo = vec![format!("{}/.", layout.config_dir)];
    if layout.check_shared {
        todo.push(format!("{}/.", layout.daemon_dir));
        todo.push(format!("{}/.", layout.meta_dir));
        if layout.shlib_dir != "no" {
            todo.push(format!("{}/.", layout.shlib_dir));
        }
    }
    todo.sort();
    todo.dedup();
    for top in &todo {
        walk(Path::new(top), false, &mut |path, meta| {
            if !root_ok(meta.uid()) {
                out.push(format!("not owned by {root}: {}", path.display()));
            }
        });
    }
    // `find -L`: a symlink is judged by its target (a dangling one by itself).
    for top in &todo {
        walk(Path::new(top), true, &mut |path, meta| {
            if writable(meta) {
                out.push(format!("group or other writable: {}", path.display()));
            }
        });
    }
    for top in &todo {
        walk(Path::new(top), false, &mut |path, meta| {
            if meta.file_type().is_symlink()
                // Debian's makedefs.out is a known symlink into /usr/share.
                && path != Path::new("/etc/postfix/./makedefs.out")
                && fs::read_link(path).is_ok_and(|t| t.as_os_str().as_encoded_bytes().contains(&b'/'))
            {
                out.push(format!("symlink leaves directory: {}", path.display()));
            }
        });
    }

    // The data directory belongs to mail_owner.
    let data = format!("{}/.", layout.data_dir);
    walk(Path::new(&data), false, &mut |path, meta| {
        if !owner_ok(meta.uid()) {
            out.push(format!("not owned by {owner}: {}", path.display()));
        }
    });
    walk(Path::new(&data), false, &mut |path, meta| {
        if writable(meta) {
            out.push(format!("group or other writable: {}", path.display()));
        }
    });

    // The queue trees belong to mail_owner, except for the fifos and sockets that the
    // master creates (`ls -d` lists them sorted by name).
    let mut queues: Vec<String> = read_names(Path::new(q))
        .into_iter()
        .filter(|n| QUEUE_SUBDIRS.contains(&n.as_str()))
        .collect();
    queues.sort();
    for name in &queues {
        walk(&Path::new(q).join(name), false, &mut |path, meta| {
            let kind = meta.file_type();
            if !kind.is_fifo() && !kind.is_socket() && !owner_ok(meta.uid()) {
                out.push(format!("not owned by {owner}: {}", path.display()));
            }
        });
    }
    let maildrop = format!("{q}/maildrop");
    if fs::symlink_metadata(&maildrop).is_ok_and(|m| !owner_ok(m.uid())) {
        out.push(format!("not owned by {owner}: {maildrop}"));
    }

    // setgid_group: the set-gid submission programs and the directories they write to.
    let mut sgid_todo = Vec::new();
    let programs = [
        format!("{}/postqueue", layout.command_dir),
        format!("{}/postdrop", layout.command_dir),
    ];
    if layout.check_shared {
        sgid_todo.extend(programs.iter().cloned());
    }
    sgid_todo.push(format!("{q}/public"));
    sgid_todo.push(maildrop);
    for path in &sgid_todo {
        if fs::symlink_metadata(path).is_ok_and(|m| m.gid() != gid) {
            out.push(format!("not owned by group {group}: {path}"));
        }
    }
    if layout.check_shared {
        for path in &programs {
            if fs::symlink_metadata(path).is_ok_and(|m| m.mode() & 0o2111 != 0o2111) {
                out.push(format!(
                    "not set-gid or not owner+group+world executable: {path}"
                ));
            }
        }
    }

    // Chroot copies of host files: root-owned, and the same as the host's.
    for dir in CHROOT_DIRS {
        let top = Path::new(q).join(dir);
        if !top.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        walk(&top, false, &mut |path, meta| {
            if !root_ok(meta.uid()) {
                out.push(format!("not owned by {root}: {}", path.display()));
            }
            if meta.is_file() {
                files.push(path.to_path_buf());
            }
        });
        for file in files {
            let Ok(rel) = file.strip_prefix(q) else {
                continue;
            };
            let host = Path::new("/").join(rel);
            if host.is_file() && !same_content(&file, &host) {
                out.push(format!("{} and {} differ", file.display(), host.display()));
            }
        }
    }

    // Messages that the queue manager set aside; the script names them relative to the
    // queue directory.
    let corrupt = Path::new(q).join("corrupt");
    walk(&corrupt, false, &mut |path, meta| {
        if meta.is_file()
            && let Ok(rel) = path.strip_prefix(q)
        {
            out.push(format!("damaged message: {}", rel.display()));
        }
    });

    // Remnants of another MTA.
    let (sbin, lib) = (
        Path::new("/usr/sbin/sendmail"),
        Path::new("/usr/lib/sendmail"),
    );
    if layout.check_shared && sbin.is_file() && lib.is_file() && !same_content(sbin, lib) {
        out.push("/usr/lib/sendmail and /usr/sbin/sendmail differ".to_owned());
        out.push("Replace one by a symbolic link to the other".to_owned());
    }
    out
}

/// `-perm -020 -o -perm -002`.
fn writable(meta: &Metadata) -> bool {
    meta.mode() & 0o022 != 0
}

/// Visits `top` and everything below it, pre-order, in directory order. With `follow`
/// (find -L) symlinks are judged and descended through by their targets, with a guard
/// against loops; without it they are judged as links.
fn walk(top: &Path, follow: bool, visit: &mut dyn FnMut(&Path, &Metadata)) {
    let mut ancestors = Vec::new();
    walk_inner(top, follow, &mut ancestors, visit);
}

fn walk_inner(
    path: &Path,
    follow: bool,
    ancestors: &mut Vec<(u64, u64)>,
    visit: &mut dyn FnMut(&Path, &Metadata),
) {
    let meta = if follow {
        fs::metadata(path).or_else(|_| fs::symlink_metadata(path))
    } else {
        fs::symlink_metadata(path)
    };
    let Ok(meta) = meta else {
        return;
    };
    visit(path, &meta);
    if !meta.is_dir() {
        return;
    }
    let id = (meta.dev(), meta.ino());
    if ancestors.contains(&id) {
        return;
    }
    let Ok(entries) = fs::read_dir(path) else {
        return;
    };
    ancestors.push(id);
    for entry in entries.flatten() {
        let child: PathBuf = path.join(entry.file_name());
        walk_inner(&child, follow, ancestors, visit);
    }
    ancestors.pop();
}

/// The names in a directory (none when it cannot be read).
fn read_names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `cmp -s`: both readable and byte for byte the same.
fn same_content(a: &Path, b: &Path) -> bool {
    match (fs::read(a), fs::read(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn layout(base: &Path) -> Layout {
        let s = |p: &str| base.join(p).to_string_lossy().into_owned();
        let me = nix::unistd::getuid().as_raw();
        let my_gid = nix::unistd::getgid().as_raw();
        Layout {
            config_dir: s("conf"),
            queue_dir: s("queue"),
            data_dir: s("data"),
            command_dir: s("bin"),
            daemon_dir: s("bin"),
            meta_dir: s("conf"),
            shlib_dir: "no".to_owned(),
            check_shared: false,
            root: ("me".to_owned(), me),
            ordinary_user: me != 0,
            mail_owner: ("me".to_owned(), me),
            setgid_group: ("mine".to_owned(), my_gid),
        }
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn findings_follow_the_script() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path();
        for d in [
            "conf",
            "queue",
            "queue/pid",
            "queue/active",
            "data",
            "queue/corrupt",
        ] {
            fs::create_dir(base.join(d)).expect("mkdir");
            chmod(&base.join(d), 0o755);
        }
        fs::write(base.join("conf/main.cf"), "").expect("write");
        chmod(&base.join("conf/main.cf"), 0o664);
        std::os::unix::fs::symlink("/etc/hosts", base.join("conf/out")).expect("symlink");
        std::os::unix::fs::symlink("main.cf", base.join("conf/in")).expect("symlink");
        fs::write(base.join("queue/corrupt/ABC"), "").expect("write");
        chmod(&base.join("data"), 0o775);
        let b = base.display();
        let mut got = check_warn(&layout(base));
        // Directory order is the file system's: compare as sets within each step.
        got.sort();
        let mut want = vec![
            format!("group or other writable: {b}/conf/./main.cf"),
            // -L judges conf/in by its target, main.cf.
            format!("group or other writable: {b}/conf/./in"),
            format!("symlink leaves directory: {b}/conf/./out"),
            format!("group or other writable: {b}/data/."),
            "damaged message: corrupt/ABC".to_owned(),
        ];
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn ownership_against_expected_ids() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path();
        for d in ["conf", "queue", "queue/maildrop", "queue/public", "data"] {
            fs::create_dir(base.join(d)).expect("mkdir");
            chmod(&base.join(d), 0o700);
        }
        let mut l = layout(base);
        let other = l.root.1.wrapping_add(1);
        if l.root.1 == 0 {
            l.root = ("root".to_owned(), other);
        } else {
            // An ordinary user's files are acceptable in place of root's: skip.
            return;
        }
        l.mail_owner = ("postfix".to_owned(), other);
        l.setgid_group = ("postdrop".to_owned(), l.setgid_group.1.wrapping_add(1));
        let b = base.display();
        let got = check_warn(&l);
        let want = vec![
            format!("not owned by root: {b}/queue/."),
            format!("not owned by root: {b}/conf/."),
            format!("not owned by postfix: {b}/data/."),
            format!("not owned by postfix: {b}/queue/public"),
            format!("not owned by postfix: {b}/queue/maildrop"),
            format!("not owned by group postdrop: {b}/queue/public"),
            format!("not owned by group postdrop: {b}/queue/maildrop"),
        ];
        assert_eq!(got, want);
    }
}
