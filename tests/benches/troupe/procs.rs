//! Child processes and temp dirs the benchmark owns, and their cleanup on every way out.
//!
//! Children run in their own process group (a terminal's Ctrl-C reaches only the benchmark),
//! so the benchmark must end them itself: [`Children`] kills its processes when dropped (normal
//! end and panics), and a signal handler kills everything still registered and removes the temp
//! dirs before exiting (Ctrl-C, SIGTERM), since `process::exit` runs no destructors.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command};
use std::sync::Mutex;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Named child processes, killed (SIGKILL) on drop.
#[derive(Default)]
pub struct Children {
    procs: Vec<(String, Child)>,
}

impl Children {
    /// Starts `cmd` in its own process group and keeps it under `name`.
    pub fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<u32, String> {
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let pid = child.id();
        lock(&PIDS).push(pid);
        self.procs.push((name.to_string(), child));
        Ok(pid)
    }

    /// Names and pids, in start order.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.procs
            .iter()
            .map(|(name, child)| (name.clone(), child.id()))
            .collect()
    }

    /// The piped stdout of a child, once.
    pub fn take_stdout(&mut self, name: &str) -> Option<ChildStdout> {
        let (_, child) = self.procs.iter_mut().find(|(n, _)| n == name)?;
        child.stdout.take()
    }

    /// The first child that has exited, with its status.
    pub fn exited(&mut self) -> Option<String> {
        self.procs.iter_mut().find_map(|(name, child)| {
            let status = child.try_wait().ok()??;
            Some(format!("{name} exited ({status})"))
        })
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in self.procs.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
            let pid = child.id();
            lock(&PIDS).retain(|p| *p != pid);
        }
    }
}

/// A temp dir removed on drop and also by the signal handler.
pub struct TempDir {
    dir: Option<tempfile::TempDir>,
}

impl TempDir {
    pub fn new(prefix: &str) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir: {e}"))?;
        lock(&DIRS).push(dir.path().to_path_buf());
        Ok(Self { dir: Some(dir) })
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.as_ref().expect("not dropped").path()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            let _ = dir.close();
            lock(&DIRS).retain(|d| *d != path);
        }
    }
}

/// On Ctrl-C or SIGTERM: kill every registered child, remove the temp dirs, exit 130.
pub fn clean_up_on_signals() {
    tokio::spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("interrupted: stopping the cluster");
        for pid in lock(&PIDS).drain(..) {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        for dir in lock(&DIRS).drain(..) {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(130);
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
