//! Where the `flotilla` binary under test is.

use std::path::{Path, PathBuf};

/// The cargo profile whose build of `flotilla` to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `target/debug/flotilla`, from `cargo build -p flotilla`.
    Debug,
    /// `target/release/flotilla`, from `cargo build --release -p flotilla`.
    Release,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }
}

/// The `flotilla` binary: `$FLOTILLA_BIN` when set (to run another build, as
/// `scripts/bench-scheduler-compare.sh` does), otherwise `flotilla` in the
/// `profile` directory of the cargo target dir this test or benchmark was built
/// in. Panics, saying which build command is missing, when that file does not
/// exist.
///
/// Crates with a `[[bin]] flotilla` of their own (the `flotilla` crate's tests)
/// pass `env!("CARGO_BIN_EXE_flotilla")` to [`crate::Builder::bin`] instead.
pub fn flotilla_bin(profile: Profile) -> PathBuf {
    if let Some(p) = std::env::var_os("FLOTILLA_BIN") {
        return PathBuf::from(p);
    }
    let bin = profiles_dir().join(profile.dir()).join("flotilla");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build -p flotilla{}` first (with the same target dir), \
         or point FLOTILLA_BIN at a flotilla binary",
        bin.display(),
        if profile == Profile::Release {
            " --release"
        } else {
            ""
        }
    );
    bin
}

/// The directory holding `debug/` and `release/`. Cargo puts test and benchmark
/// executables in `<that>/<profile>/deps/`, so it is found from the running
/// executable (this honours `CARGO_TARGET_DIR` and `--target`); the workspace's
/// `target/` otherwise.
fn profiles_dir() -> PathBuf {
    let from_exe = std::env::current_exe().ok().and_then(|exe| {
        let deps = exe.parent()?;
        if deps.file_name()? != "deps" {
            return None;
        }
        Some(deps.parent()?.parent()?.to_path_buf())
    });
    from_exe.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_tests_find_their_own_target_dir() {
        // This test runs from `<target>/debug/deps/testkit-…`.
        let exe = std::env::current_exe().expect("exe");
        let dir = profiles_dir();
        assert!(
            exe.starts_with(&dir),
            "{} vs {}",
            exe.display(),
            dir.display()
        );
        assert!(dir.join("debug").is_dir() || dir.join("release").is_dir());
    }
}
