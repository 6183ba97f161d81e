//! Child processes measured from outside: wall time, exit status, and the kernel's own account
//! of the child's peak resident memory and CPU time (`wait4`'s rusage), which is exact where
//! polling `/proc` could miss a short peak. Long-running children are measured through a small
//! helper process; see [`run`].

// wait4, getrusage and kill on our own children have no safe wrapper in std.
#![allow(unsafe_code)]

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

/// The first argument that makes this binary the measuring helper (see [`helper_main`]).
pub const HELPER_FLAG: &str = "--measure-child";

/// Runs `cmd` to its end with stdout and stderr in files under `logs` (named after `label`),
/// measuring it. With a `deadline`, a child still running then gets SIGINT (audit then stops
/// after the current page, saving its position) and is waited for.
///
/// The command runs under a small helper process (this binary started again with
/// [`HELPER_FLAG`]) that spawns it and reads its rusage. Spawned straight from here, the child's
/// `ru_maxrss` would include this process's own peak (the simulator it serves): Linux keeps the
/// high-water mark of the address space a child starts with, and `posix_spawn` starts it
/// sharing ours until `exec`. The helper's is a few megabytes.
pub fn run(cmd: &mut Command, logs: &Path, label: &str, deadline: Option<Duration>) -> io::Result<Finished> {
    let out_path = logs.join(format!("{label}.stdout"));
    let err_path = logs.join(format!("{label}.stderr"));
    let result_path = logs.join(format!("{label}.rusage.json"));
    let _ = std::fs::remove_file(&result_path);
    let mut helper = Command::new(std::env::current_exe()?);
    helper
        .arg(HELPER_FLAG)
        .arg(deadline.map_or_else(|| "-".to_string(), |d| d.as_millis().to_string()))
        .arg(&result_path)
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => helper.env(key, v),
            None => helper.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        helper.current_dir(dir);
    }
    helper.stdin(Stdio::null()).stdout(File::create(&out_path)?).stderr(File::create(&err_path)?);
    let status = helper.status()?;
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    let result: serde_json::Value = match std::fs::read_to_string(&result_path) {
        Ok(text) => serde_json::from_str(&text).map_err(io::Error::other)?,
        Err(_) => {
            return Err(io::Error::other(format!(
                "the measuring helper failed ({status}): {}",
                read(&err_path).lines().last().unwrap_or("")
            )));
        }
    };
    if let Some(err) = result["error"].as_str() {
        return Err(io::Error::other(err.to_string()));
    }
    let secs = |k: &str| Duration::from_secs_f64(result[k].as_f64().unwrap_or(0.0));
    Ok(Finished {
        code: result["code"].as_i64().map(|c| c as i32),
        signal: result["signal"].as_i64().map(|c| c as i32),
        wall: secs("wall_s"),
        max_rss: result["max_rss_kb"].as_u64().unwrap_or(0) * 1024,
        user: secs("user_s"),
        sys: secs("sys_s"),
        stdout: read(&out_path),
        stderr: read(&err_path),
        interrupted: result["interrupted"].as_bool().unwrap_or(false),
    })
}

/// The helper: `HELPER_FLAG DEADLINE_MS|- RESULT_FILE -- PROGRAM ARGS...`. Spawns the program
/// with this process's environment and standard streams, waits for it (sending SIGINT at the
/// deadline), and writes its exit status, wall time and rusage to RESULT_FILE as JSON.
pub fn helper_main(args: &[String]) -> std::process::ExitCode {
    let fail = |result: Option<&String>, why: String| {
        if let Some(path) = result {
            let _ = std::fs::write(path, serde_json::json!({ "error": why }).to_string());
        }
        eprintln!("measuring helper: {why}");
        std::process::ExitCode::FAILURE
    };
    let (Some(deadline), Some(result), Some(sep)) = (args.first(), args.get(1), args.get(2)) else {
        return fail(None, "usage: --measure-child DEADLINE_MS|- RESULT -- PROGRAM ARGS...".into());
    };
    let Some(program) = args.get(3).filter(|_| sep == "--") else {
        return fail(Some(result), "no program to run".into());
    };
    let deadline = deadline.parse::<u64>().ok().map(Duration::from_millis);
    let started = Instant::now();
    let child = match Command::new(program).args(&args[4..]).spawn() {
        Ok(c) => c,
        Err(e) => return fail(Some(result), format!("cannot run {program}: {e}")),
    };
    let (status, usage, interrupted) = match wait(child.id() as i32, started, deadline) {
        Ok(w) => w,
        Err(e) => return fail(Some(result), format!("waiting for {program}: {e}")),
    };
    let wall = started.elapsed();
    let json = serde_json::json!({
        "code": sys::exit_code(status),
        "signal": sys::term_signal(status),
        "wall_s": wall.as_secs_f64(),
        "max_rss_kb": usage.ru_maxrss.max(0),
        "user_s": usage.ru_utime.duration().as_secs_f64(),
        "sys_s": usage.ru_stime.duration().as_secs_f64(),
        "interrupted": interrupted,
    });
    match std::fs::write(result, json.to_string()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fail(None, format!("cannot write {result}: {e}")),
    }
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
