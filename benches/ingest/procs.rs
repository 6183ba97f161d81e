//! Child processes measured from outside: wall time, exit status, and the kernel's own account
//! of the child's peak resident memory and CPU time (`wait4`'s rusage), which is exact where
//! polling `/proc` could miss a short peak.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a measured child ended, and what it cost.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The exit code, or `None` when a signal ended it.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub wall: Duration,
    /// Peak resident set size in bytes (`ru_maxrss`).
    pub max_rss: u64,
    pub user: Duration,
    pub sys: Duration,
    pub stdout: String,
    pub stderr: String,
    /// The deadline passed and the child was asked to stop (SIGINT) before it finished.
    pub interrupted: bool,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// A one-line account for error messages: status and the end of stderr.
    pub fn describe(&self) -> String {
        let status = match (self.code, self.signal) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            _ => "unknown status".into(),
        };
        let tail: Vec<&str> = self.stderr.lines().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect();
        format!("{status}; stderr ends: {}", tail.join(" | "))
    }
}

/// The CPU time this process (the benchmark, which hosts the simulator) has used so far.
pub fn self_cpu() -> Duration {
    let mut usage = sys::Rusage::default();
    // SAFETY: getrusage writes one `struct rusage` into the pointer we own.
    let rc = unsafe { sys::getrusage(sys::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    usage.ru_utime.duration() + usage.ru_stime.duration()
}

/// Runs `cmd` to its end with stdout and stderr in files under `logs` (named after `label`),
/// measuring it. With a `deadline`, a child still running then gets SIGINT (audit then stops
/// after the current page, saving its position) and is waited for.
pub fn run(cmd: &mut Command, logs: &Path, label: &str, deadline: Option<Duration>) -> io::Result<Finished> {
    let out_path = logs.join(format!("{label}.stdout"));
    let err_path = logs.join(format!("{label}.stderr"));
    cmd.stdin(Stdio::null()).stdout(File::create(&out_path)?).stderr(File::create(&err_path)?);
    let started = Instant::now();
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    let (status, usage, interrupted) = wait(pid, started, deadline)?;
    let wall = started.elapsed();
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    Ok(Finished {
        code: sys::exit_code(status),
        signal: sys::term_signal(status),
        wall,
        max_rss: (usage.ru_maxrss.max(0) as u64) * 1024,
        user: usage.ru_utime.duration(),
        sys: usage.ru_stime.duration(),
        stdout: read(&out_path),
        stderr: read(&err_path),
        interrupted,
    })
}

/// Runs a short command with its output captured in memory and returns (wall time, status,
/// stdout). Used for the latency figures, where both sides are measured the same way.
pub fn time_output(cmd: &mut Command) -> io::Result<(Duration, Option<i32>, String, String)> {
    cmd.stdin(Stdio::null());
    let started = Instant::now();
    let out = cmd.output()?;
    let wall = started.elapsed();
    Ok((
        wall,
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn wait(pid: i32, started: Instant, deadline: Option<Duration>) -> io::Result<(i32, sys::Rusage, bool)> {
    let mut interrupted = false;
    loop {
        let mut status = 0i32;
        let mut usage = sys::Rusage::default();
        let options = if deadline.is_some() && !interrupted { sys::WNOHANG } else { 0 };
        // SAFETY: wait4 on our own child, writing into locals we own.
        let rc = unsafe { sys::wait4(pid, &mut status, options, &mut usage) };
        if rc == pid {
            return Ok((status, usage, interrupted));
        }
        if rc == -1 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        // Still running (WNOHANG).
        if let Some(limit) = deadline
            && !interrupted
            && started.elapsed() >= limit
        {
            // SAFETY: signalling our own child by its pid.
            unsafe { sys::kill(pid, sys::SIGINT) };
            interrupted = true;
            continue;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The few libc calls the benchmark needs, declared here rather than adding a dependency.
/// The layouts are Linux's on 64-bit targets (`long` is 64 bits).
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod sys {
    use std::time::Duration;

    pub const WNOHANG: i32 = 1;
    pub const SIGINT: i32 = 2;
    pub const RUSAGE_SELF: i32 = 0;

    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy)]
    pub struct Timeval {
        pub tv_sec: i64,
        pub tv_usec: i64,
    }

    impl Timeval {
        pub fn duration(&self) -> Duration {
            Duration::from_secs(self.tv_sec.max(0) as u64) + Duration::from_micros(self.tv_usec.max(0) as u64)
        }
    }

    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy)]
    pub struct Rusage {
        pub ru_utime: Timeval,
        pub ru_stime: Timeval,
        /// Kilobytes on Linux.
        pub ru_maxrss: i64,
        pub ru_ixrss: i64,
        pub ru_idrss: i64,
        pub ru_isrss: i64,
        pub ru_minflt: i64,
        pub ru_majflt: i64,
        pub ru_nswap: i64,
        pub ru_inblock: i64,
        pub ru_oublock: i64,
        pub ru_msgsnd: i64,
        pub ru_msgrcv: i64,
        pub ru_nsignals: i64,
        pub ru_nvcsw: i64,
        pub ru_nivcsw: i64,
    }

    unsafe extern "C" {
        pub fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut Rusage) -> i32;
        pub fn getrusage(who: i32, usage: *mut Rusage) -> i32;
        pub fn kill(pid: i32, sig: i32) -> i32;
    }

    pub fn exit_code(status: i32) -> Option<i32> {
        (status & 0x7f == 0).then_some((status >> 8) & 0xff)
    }

    pub fn term_signal(status: i32) -> Option<i32> {
        let sig = status & 0x7f;
        (sig != 0 && sig != 0x7f).then_some(sig)
    }
}

/// Elsewhere every measurement of a child fails, and the figures say they could not be measured.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
mod sys {
    use std::time::Duration;

    pub const WNOHANG: i32 = 1;
    pub const SIGINT: i32 = 2;
    pub const RUSAGE_SELF: i32 = 0;

    #[derive(Debug, Default, Clone, Copy)]
    pub struct Timeval;

    impl Timeval {
        pub fn duration(&self) -> Duration {
            Duration::ZERO
        }
    }

    #[derive(Debug, Default, Clone, Copy)]
    pub struct Rusage {
        pub ru_utime: Timeval,
        pub ru_stime: Timeval,
        pub ru_maxrss: i64,
    }

    pub unsafe fn wait4(_pid: i32, _status: *mut i32, _options: i32, _rusage: *mut Rusage) -> i32 {
        -1
    }
    pub unsafe fn getrusage(_who: i32, _usage: *mut Rusage) -> i32 {
        -1
    }
    pub unsafe fn kill(_pid: i32, _sig: i32) -> i32 {
        -1
    }
    pub fn exit_code(_status: i32) -> Option<i32> {
        None
    }
    pub fn term_signal(_status: i32) -> Option<i32> {
        None
    }
}
