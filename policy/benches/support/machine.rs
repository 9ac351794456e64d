//! What the machine is and how busy it was: printed with every result.

/// What the machine is, for the top of every benchmark's output.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, load average {load}")
}

/// `ext4 on /dev/vda at /`, so a result never silently comes from tmpfs.
pub fn file_system_of(path: &std::path::Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, mount_point, fs) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(mount_point).then(|| {
                (
                    mount_point.len(),
                    format!("{fs} on {device} at {mount_point}"),
                )
            })
        })
        .max()
        .map_or_else(|| "unknown file system".into(), |(_, text)| text)
}

/// Where the broker benchmarks put their state directories: `$LATCH_BENCH_DIR` if set, else
/// the system temporary directory. It should be a real disk, not tmpfs, for fsync to mean
/// anything; the benchmarks print which file system it was.
pub fn bench_dir() -> std::path::PathBuf {
    std::env::var_os("LATCH_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// How busy the machine was with other work while a benchmark ran: the CPU time all
/// processes used (`/proc/stat`) minus this process's own and its waited-for children's
/// (`/proc/self/stat`), as an average number of busy CPUs. On a 2-core machine anything
/// above ~0.2 means the figures were measured under contention.
pub struct Contention {
    start: (u64, u64, u64),
}

impl Contention {
    pub fn start() -> Contention {
        Contention {
            start: Self::ticks(),
        }
    }

    /// Average CPUs used by other processes since `start`.
    pub fn others(&self) -> f64 {
        let (busy, total, own) = Self::ticks();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let elapsed = total.saturating_sub(self.start.1) as f64 / cores;
        if elapsed == 0.0 {
            return 0.0;
        }
        let others = busy
            .saturating_sub(self.start.0)
            .saturating_sub(own.saturating_sub(self.start.2));
        others as f64 / elapsed
    }

    /// One line for the output.
    pub fn line(&self) -> String {
        format!(
            "other processes kept {:.2} of {} CPUs busy during the measurement{}",
            self.others(),
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            if self.others() > 0.2 {
                " (contended: expect slower, noisier figures than on an idle machine)"
            } else {
                ""
            }
        )
    }

    /// (busy, busy + idle, own) in clock ticks.
    fn ticks() -> (u64, u64, u64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let cpu: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let field = |i: usize| cpu.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal
        let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
        let total = busy + field(3) + field(4);
        let me = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // utime stime cutime cstime are fields 14-17; after `(comm)` they are 12th-15th.
        let own = me
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .skip(11)
                    .take(4)
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        (busy, total, own)
    }
}
