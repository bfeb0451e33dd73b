//! What the node offers, read from the host: CPUs, memory, PIDs, disk.

use std::path::Path;

/// The machine's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub pids: u64,
}

/// Available resources right now, for the pressure conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub memory_available: u64,
    pub disk_available: u64,
    pub disk_total: u64,
    pub pids_in_use: u64,
}

/// `MemTotal:  16303672 kB` → bytes.
fn meminfo(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
}

fn disk(path: &Path) -> (u64, u64) {
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) => {
            let frag = s.fragment_size();
            (s.blocks() * frag, s.blocks_available() * frag)
        }
        Err(_) => (0, 0),
    }
}

impl Machine {
    pub fn read(root_dir: &Path) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let pids = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(32_768);
        Self {
            cpu_millis: cpus * 1000,
            memory_bytes: meminfo(&mem, "MemTotal").unwrap_or(0),
            ephemeral_storage_bytes: disk(root_dir).0,
            pids,
        }
    }
}

impl Usage {
    pub fn read(root_dir: &Path) -> Self {
        let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let (disk_total, disk_available) = disk(root_dir);
        let pids_in_use = std::fs::read_dir("/proc")
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .bytes()
                            .all(|b| b.is_ascii_digit())
                    })
                    .count() as u64
            })
            .unwrap_or(0);
        Self {
            memory_available: meminfo(&mem, "MemAvailable").unwrap_or(u64::MAX),
            disk_available,
            disk_total,
            pids_in_use,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_values_are_bytes() {
        let text = "MemTotal:       16303672 kB\nMemFree:  100 kB\nMemAvailable:   8000 kB\n";
        assert_eq!(meminfo(text, "MemTotal"), Some(16_303_672 * 1024));
        assert_eq!(meminfo(text, "MemAvailable"), Some(8_000 * 1024));
        assert_eq!(meminfo(text, "Missing"), None);
    }
}
