//! Making `crun` usable on a hybrid cgroup layout.
//!
//! On a host with cgroup v1 hierarchies under /sys/fs/cgroup and cgroup2 at
//! /sys/fs/cgroup/unified, every controller that no v1 hierarchy claims
//! belongs to cgroup2. On such hosts hugetlb is often one of them: nothing
//! mounts a v1 hugetlb hierarchy. crun (1.8) then refuses every container
//! ("drop all controllers from cgroupv2"): in hybrid mode it only accepts a
//! cgroup2 tree without controllers. runc does not mind. Mounting a v1
//! hugetlb hierarchy moves the controller out of cgroup2, after which crun
//! runs as it does elsewhere; this is what a v1 distribution mounts at boot.
//!
//! The agent does it once at start, only when it runs crun. The mount is
//! left in place (as the other v1 hierarchies are): other agents on the host
//! share it, and the agent's cgroup cleanup already covers every mounted
//! hierarchy.

use std::io;
use std::path::Path;

/// Whether `root` (a cgroup v1 root such as /sys/fs/cgroup) needs a hugetlb
/// hierarchy mounted: the host is hybrid (cgroup2 at `root/unified`), hugetlb
/// is among cgroup2's controllers, and no v1 hierarchy has it. `mountinfo` is
/// the text of /proc/self/mountinfo, `v2_controllers` that of
/// `root/unified/cgroup.controllers` (`None` when absent).
pub fn needs_mount(mountinfo: &str, v2_controllers: Option<&str>) -> bool {
    let Some(controllers) = v2_controllers else {
        return false;
    };
    if !controllers.split_whitespace().any(|c| c == "hugetlb") {
        return false;
    }
    // A v1 hugetlb hierarchy anywhere would have taken it out of cgroup2;
    // checked all the same, in case the controllers file was read first.
    !mountinfo.lines().any(|line| {
        let Some((_, after)) = line.split_once(" - ") else {
            return false;
        };
        let mut fields = after.split_whitespace();
        fields.next() == Some("cgroup")
            && fields
                .nth(1)
                .is_some_and(|opts| opts.split(',').any(|o| o == "hugetlb"))
    })
}

/// Mounts a v1 hugetlb hierarchy at `root/hugetlb` when [`needs_mount`] says
/// so. Returns whether it mounted one.
pub fn ensure_v1_hierarchy(root: &Path) -> io::Result<bool> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let controllers = std::fs::read_to_string(root.join("unified/cgroup.controllers")).ok();
    if !needs_mount(&mountinfo, controllers.as_deref()) {
        return Ok(false);
    }
    let target = root.join("hugetlb");
    std::fs::create_dir_all(&target)?;
    nix::mount::mount(
        Some("cgroup"),
        &target,
        Some("cgroup"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        Some("hugetlb"),
    )
    .map_err(|e| {
        io::Error::other(format!(
            "mounting cgroup hugetlb at {}: {e}",
            target.display()
        ))
    })?;
    tracing::info!(
        path = %target.display(),
        "mounted a cgroup v1 hugetlb hierarchy (crun refuses controllers in the hybrid cgroup2)"
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn mounts_only_when_hugetlb_sits_in_the_hybrid_cgroup2() {
        assert!(needs_mount(HYBRID, Some("hugetlb\n")));
        assert!(!needs_mount(HYBRID, Some("")));
        assert!(!needs_mount(HYBRID, None), "not a hybrid layout");
        let mounted = format!(
            "{HYBRID}50 31 0:40 / /sys/fs/cgroup/hugetlb rw,relatime - cgroup cgroup rw,hugetlb\n"
        );
        assert!(!needs_mount(&mounted, Some("hugetlb")));
    }
}
