//! What this process holds — threads, open files, child processes, resident memory — for
//! `conlab run --all --rounds N`, a soak that must end every round holding what the first did.
//!
//! Read from Linux's `/proc`; elsewhere nothing is read, and the round says so.

use std::fmt;

/// The process's holdings at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    pub threads: usize,
    pub open_files: usize,
    /// Children not yet reaped, zombies included (a pool's worker processes while it lives).
    pub children: usize,
    pub resident_bytes: u64,
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "threads {} · open files {} · child processes {} · resident memory {:.1} MB",
            self.threads,
            self.open_files,
            self.children,
            self.resident_bytes as f64 / 1e6
        )
    }
}

/// What the process holds now, or `None` where `/proc` does not say.
#[cfg(target_os = "linux")]
pub fn held() -> Option<Held> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    Some(Held {
        threads: field("Threads:")? as usize,
        // `read_dir` holds one descriptor of its own while it lists the others.
        open_files: std::fs::read_dir("/proc/self/fd").ok()?.count().saturating_sub(1),
        children: children(std::process::id())?,
        resident_bytes: field("VmRSS:")? * 1024,
    })
}

#[cfg(not(target_os = "linux"))]
pub fn held() -> Option<Held> {
    None
}

/// How many processes name `parent` as theirs (the fourth field of `/proc/PID/stat`).
#[cfg(target_os = "linux")]
fn children(parent: u32) -> Option<usize> {
    let parent = parent.to_string();
    let count = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| {
            // `pid (comm) state ppid …`: the command may hold spaces and parentheses.
            let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            after_name.split_whitespace().nth(1) == Some(parent.as_str())
        })
        .count();
    Some(count)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods, reason = "Linux only, like this module: a thread of its own to count")]
    fn a_thread_and_a_child_and_a_file_show_while_held() {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || stopped.recv());
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let during = held().unwrap();
        // Other tests come and go beside this one: only lower bounds are this test's own.
        assert!(during.threads >= 2, "{during}");
        assert!(during.children >= 1, "{during}");
        assert!(during.open_files >= 4, "stdin, stdout, stderr and the file: {during}");
        assert!(during.resident_bytes > 1 << 20, "{during}");
        drop(file);
        child.kill().unwrap();
        child.wait().unwrap();
        stop.send(()).unwrap();
        let _ = thread.join();
    }
}
