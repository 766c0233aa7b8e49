//! Processes started and ended: `process` events from the process table, read through
//! `procfs` at most once a second.
//!
//! Each poll lists the process ids (one read of `/proc`), reads the details of new ones
//! only (`stat`, `exe`, `cmdline`, owner), and reports the ids gone since the last poll as
//! `exited`, with the details read when they appeared. Processes running when the daemon
//! starts are not reported as started; their exit is. A process that starts and ends
//! between two polls is not seen: polling is the price of running without privileges (the
//! kernel's process-event connector needs `CAP_NET_ADMIN`). Kernel threads are ignored, and
//! unless `all_users` is set, so are other users' processes. Command lines pass through the
//! redaction rules before they are stored. On systems without `/proc` nothing is recorded,
//! which the daemon says once at start.

use std::collections::HashMap;

use serde_json::json;

use super::config::Redactor;
use super::files::Out;
use super::sink::cut;

/// Longest command line stored, in bytes.
const CMDLINE_LEN_MAX: usize = 4096;

/// What is kept of a running process.
struct Proc {
    ppid: i32,
    name: String,
    exe: Option<String>,
    cmdline: String,
    uid: u32,
    /// Reported when it started (or would have been, for those running at start): its exit
    /// is reported too.
    recorded: bool,
}

/// The process table as last seen.
pub struct Processes {
    known: HashMap<i32, Proc>,
    uid: u32,
    all_users: bool,
    redact: Redactor,
}

impl Processes {
    /// Reads the process table as it is now, reporting nothing. `Err` says why processes
    /// cannot be recorded here.
    pub fn start(all_users: bool, redact: Redactor) -> Result<Processes, String> {
        if !cfg!(target_os = "linux") {
            return Err("process capture needs /proc (Linux); not recorded".into());
        }
        let mut p = Processes {
            known: HashMap::new(),
            uid: rustix::process::getuid().as_raw(),
            all_users,
            redact,
        };
        let pids = list_pids().map_err(|e| format!("cannot read /proc: {e}"))?;
        for pid in pids {
            if let Some(proc) = p.read(pid) {
                p.known.insert(pid, proc);
            }
        }
        Ok(p)
    }

    /// Processes known now.
    pub fn count(&self) -> usize {
        self.known.len()
    }

    /// Reads the table and reports what started and ended since the last poll.
    pub fn poll(&mut self, out: &mut Out<'_, '_>) {
        let pids = match list_pids() {
            Ok(p) => p,
            Err(e) => {
                out.sink.errors += 1;
                out.log.warn(&format!("cannot read /proc: {e}"));
                return;
            }
        };
        let mut gone: Vec<i32> = self
            .known
            .keys()
            .filter(|pid| pids.binary_search(pid).is_err())
            .copied()
            .collect();
        gone.sort_unstable();
        for pid in gone {
            if let Some(p) = self.known.remove(&pid) {
                if p.recorded {
                    Self::report(out, "exited", pid, &p);
                }
            }
        }
        for pid in pids {
            if self.known.contains_key(&pid) {
                continue;
            }
            if let Some(p) = self.read(pid) {
                if p.recorded {
                    Self::report(out, "started", pid, &p);
                }
                self.known.insert(pid, p);
            }
        }
    }

    fn report(out: &mut Out<'_, '_>, action: &str, pid: i32, p: &Proc) {
        let data = json!({
            "pid": pid,
            "ppid": p.ppid,
            "exe": p.exe,
            "cmdline": p.cmdline,
            "uid": p.uid,
            "name": p.name,
        });
        let source = p
            .exe
            .as_deref()
            .and_then(|e| e.rsplit('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or(&p.name)
            .to_owned();
        let t = out.sink.now();
        out.sink
            .append(out.log, t, "process", action, &source, &data);
    }

    #[cfg(target_os = "linux")]
    fn read(&self, pid: i32) -> Option<Proc> {
        let process = procfs::process::Process::new(pid).ok()?;
        let stat = process.stat().ok()?;
        let uid = process.uid().ok()?;
        // Kernel threads: kthreadd (2) and its children have no program of their own.
        let kernel = pid == 2 || stat.ppid == 2;
        let recorded = !kernel && (self.all_users || uid == self.uid);
        if !recorded {
            return Some(Proc {
                ppid: stat.ppid,
                name: String::new(),
                exe: None,
                cmdline: String::new(),
                uid,
                recorded,
            });
        }
        let exe = process
            .exe()
            .ok()
            .map(|e| self.redact.apply(&e.to_string_lossy()));
        let cmdline = process.cmdline().unwrap_or_default().join(" ");
        let cmdline = self.redact.apply(cut(&cmdline, CMDLINE_LEN_MAX));
        Some(Proc {
            ppid: stat.ppid,
            name: stat.comm,
            exe,
            cmdline,
            uid,
            recorded,
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn read(&self, _pid: i32) -> Option<Proc> {
        None
    }
}

/// The process ids in `/proc`, sorted.
fn list_pids() -> std::io::Result<Vec<i32>> {
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}
