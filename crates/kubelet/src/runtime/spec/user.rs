//! The user a container's process runs as: `runAsUser`/`runAsGroup` or the
//! image's `User` (`uid`, `uid:gid`, `name`, `name:group`), names resolved from
//! the rootfs's `/etc/passwd` and `/etc/group`, plus the groups the user is a
//! member of and the pod's supplemental groups, as containerd's CRI plugin
//! resolves them.
//!
//! Files are read inside the rootfs only: symbolic links are followed as if the
//! rootfs were `/`, so an image cannot make the agent read the host's files.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use crate::runtime::{RuntimeError, SecurityContext};

/// What goes into the spec's `process.user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// The primary gid first, then the groups listing the user, then the
    /// supplemental groups; no duplicates.
    pub additional_gids: Vec<u32>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves the user of a container whose root filesystem is `rootfs`.
pub(super) fn resolve(
    rootfs: &Path,
    security: &SecurityContext,
    image_user: Option<&str>,
) -> Result<ResolvedUser, RuntimeError> {
    let image_user = image_user.unwrap_or("").trim();
    let image_user_part = image_user.split(':').next().unwrap_or("");
    let run_as_user = security
        .run_as_user
        .map(|u| id("runAsUser", u))
        .transpose()?;
    let run_as_group = security
        .run_as_group
        .map(|g| id("runAsGroup", g))
        .transpose()?;

    let passwd = || read_entries(rootfs, "/etc/passwd", parse_passwd_line);
    let groups = || read_entries(rootfs, "/etc/group", parse_group_line);

    // The user and primary group.
    let (uid, mut gid) = match run_as_user {
        Some(uid) => (uid, primary_gid(&passwd(), uid)),
        None if image_user.is_empty() => (0, 0),
        None => from_user_string(image_user, &passwd, &groups)?,
    };
    if let Some(group) = run_as_group {
        gid = group;
    }

    // Groups listing the user by name.
    let member_name = match run_as_user {
        Some(uid) => passwd().into_iter().find(|p| p.uid == uid).map(|p| p.name),
        None if image_user_part.is_empty() => {
            passwd().into_iter().find(|p| p.uid == 0).map(|p| p.name)
        }
        None => match image_user_part.parse::<u32>() {
            Ok(uid) => passwd().into_iter().find(|p| p.uid == uid).map(|p| p.name),
            Err(_) => Some(image_user_part.to_string()),
        },
    };
    let mut additional_gids = vec![gid];
    if let Some(name) = member_name {
        for group in groups() {
            if group.name != name && group.members.contains(&name) {
                push_unique(&mut additional_gids, group.gid);
            }
        }
    }
    for group in &security.supplemental_groups {
        push_unique(&mut additional_gids, id("supplementalGroups", *group)?);
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

fn push_unique(gids: &mut Vec<u32>, gid: u32) {
    if !gids.contains(&gid) {
        gids.push(gid);
    }
}

fn id(field: &str, value: i64) -> Result<u32, RuntimeError> {
    u32::try_from(value)
        .map_err(|_| RuntimeError::Spec(format!("{field} {value} is not a valid user or group id")))
}

/// The primary group of `uid` from /etc/passwd, or 0 when it is not listed.
fn primary_gid(passwd: &[PasswdEntry], uid: u32) -> u32 {
    passwd.iter().find(|p| p.uid == uid).map_or(0, |p| p.gid)
}

/// `uid`, `uid:gid`, `name`, `name:group`, `uid:group`, `name:gid`.
fn from_user_string(
    user: &str,
    passwd: &dyn Fn() -> Vec<PasswdEntry>,
    groups: &dyn Fn() -> Vec<GroupEntry>,
) -> Result<(u32, u32), RuntimeError> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let numeric_user = user_part.parse::<u32>().ok();
    let (uid, passwd_gid) = match numeric_user {
        Some(uid) => (uid, None),
        None => {
            let entry = passwd()
                .into_iter()
                .find(|p| p.name == user_part)
                .ok_or_else(|| {
                    RuntimeError::Spec(format!(
                        "unable to find user {user_part}: no matching entries in passwd file"
                    ))
                })?;
            (entry.uid, Some(entry.gid))
        }
    };
    let gid = match group_part {
        None => passwd_gid.unwrap_or_else(|| primary_gid(&passwd(), uid)),
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                groups()
                    .into_iter()
                    .find(|g| g.name == group)
                    .ok_or_else(|| {
                        RuntimeError::Spec(format!(
                            "unable to find group {group}: no matching entries in group file"
                        ))
                    })?
                    .gid
            }
        },
    };
    Ok((uid, gid))
}

fn parse_passwd_line(line: &str) -> Option<PasswdEntry> {
    let fields: Vec<&str> = line.split(':').collect();
    if fields.len() < 4 {
        return None;
    }
    Some(PasswdEntry {
        name: fields[0].to_string(),
        uid: fields[2].trim().parse().ok()?,
        gid: fields[3].trim().parse().ok()?,
    })
}

fn parse_group_line(line: &str) -> Option<GroupEntry> {
    let fields: Vec<&str> = line.split(':').collect();
    if fields.len() < 3 {
        return None;
    }
    let members = fields
        .get(3)
        .map(|m| {
            m.split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(GroupEntry {
        name: fields[0].to_string(),
        gid: fields[2].trim().parse().ok()?,
        members,
    })
}

/// The parsed lines of a file of the rootfs; none when it is missing or
/// unreadable (an image without /etc/passwd runs numeric users fine).
fn read_entries<T>(rootfs: &Path, path: &str, parse: fn(&str) -> Option<T>) -> Vec<T> {
    let Some(host_path) = resolve_in_root(rootfs, path) else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(host_path) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(parse)
        .collect()
}

/// `path` inside `root`, following symbolic links as if `root` were `/`
/// (absolute targets restart at `root`, `..` stops at it). None after too
/// many links.
fn resolve_in_root(root: &Path, path: &str) -> Option<PathBuf> {
    let mut pending: VecDeque<String> = path.split('/').map(str::to_string).collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&resolved);
        candidate.push(&part);
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return None;
                }
                let target = std::fs::read_link(&candidate).ok()?;
                let target = target.to_string_lossy();
                if target.starts_with('/') {
                    resolved.clear();
                }
                for piece in target.split('/').rev() {
                    pending.push_front(piece.to_string());
                }
            }
            _ => resolved.push(part),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&resolved);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # a comment\n\
        daemon:x:1:1::/:/sbin/nologin\n\
        app:x:1000:1000::/home/app:/bin/sh\n\
        broken line\n";
    const GROUP: &str = "root:x:0:\n\
        wheel:x:10:root,app\n\
        app:x:1000:app\n\
        audio:x:29:app\n\
        staff:x:50:\n";

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(dir.path().join("etc/group"), GROUP).unwrap();
        dir
    }

    fn image(rootfs: &Path, user: &str) -> Result<ResolvedUser, RuntimeError> {
        resolve(rootfs, &SecurityContext::default(), Some(user))
    }

    #[test]
    fn no_user_is_root_with_roots_groups() {
        let dir = rootfs();
        let u = resolve(dir.path(), &SecurityContext::default(), None).unwrap();
        assert_eq!((u.uid, u.gid), (0, 0));
        assert_eq!(u.additional_gids, vec![0, 10]);
    }

    #[test]
    fn image_user_forms() {
        let dir = rootfs();
        let u = image(dir.path(), "app").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        // The group named like the user is its primary group, not an extra.
        assert_eq!(u.additional_gids, vec![1000, 10, 29]);
        let u = image(dir.path(), "1000").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.additional_gids, vec![1000, 10, 29]);
        let u = image(dir.path(), "app:staff").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 50));
        assert_eq!(u.additional_gids, vec![50, 10, 29]);
        let u = image(dir.path(), "4242:4343").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 4343));
        assert_eq!(u.additional_gids, vec![4343]);
        // A uid without a passwd entry gets gid 0.
        let u = image(dir.path(), "4242").unwrap();
        assert_eq!((u.uid, u.gid), (4242, 0));
    }

    #[test]
    fn unknown_names_are_errors() {
        let dir = rootfs();
        let err = image(dir.path(), "nobody").unwrap_err().to_string();
        assert!(err.contains("unable to find user nobody"), "{err}");
        let err = image(dir.path(), "app:nogroup").unwrap_err().to_string();
        assert!(err.contains("unable to find group nogroup"), "{err}");
    }

    #[test]
    fn run_as_user_and_group_override_the_image() {
        let dir = rootfs();
        let security = SecurityContext {
            run_as_user: Some(1000),
            supplemental_groups: vec![2000, 29],
            ..Default::default()
        };
        let u = resolve(dir.path(), &security, Some("daemon")).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        assert_eq!(u.additional_gids, vec![1000, 10, 29, 2000]);
        let security = SecurityContext {
            run_as_user: Some(1),
            run_as_group: Some(3000),
            ..Default::default()
        };
        let u = resolve(dir.path(), &security, None).unwrap();
        assert_eq!((u.uid, u.gid), (1, 3000));
        // runAsGroup alone keeps the image's user.
        let security = SecurityContext {
            run_as_group: Some(3000),
            ..Default::default()
        };
        let u = resolve(dir.path(), &security, Some("app")).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 3000));
        let security = SecurityContext {
            run_as_user: Some(-1),
            ..Default::default()
        };
        assert!(resolve(dir.path(), &security, None).is_err());
    }

    #[test]
    fn missing_files_allow_numeric_users_only() {
        let dir = tempfile::tempdir().unwrap();
        let u = image(dir.path(), "123:456").unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (123, 456, vec![456]));
        assert!(image(dir.path(), "app").is_err());
    }

    #[test]
    fn symlinks_stay_inside_the_rootfs() {
        let dir = rootfs();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("passwd"), "evil:x:7:7::/:/bin/sh\n").unwrap();
        std::fs::remove_file(dir.path().join("etc/passwd")).unwrap();
        // An absolute link resolves inside the rootfs, where there is nothing.
        std::os::unix::fs::symlink(outside.path().join("passwd"), dir.path().join("etc/passwd"))
            .unwrap();
        assert!(image(dir.path(), "evil").is_err());
        // A relative link inside the rootfs works.
        std::fs::remove_file(dir.path().join("etc/passwd")).unwrap();
        std::fs::write(dir.path().join("etc/passwd.real"), PASSWD).unwrap();
        std::os::unix::fs::symlink("../etc/./passwd.real", dir.path().join("etc/passwd")).unwrap();
        assert_eq!(image(dir.path(), "app").unwrap().uid, 1000);
    }
}
