//! The members' processes, as the chaos run handles them: killed (SIGKILL), paused (SIGSTOP),
//! resumed, restarted, and restarted over a damaged journal.

use super::plan::Damage;
use crate::up::{alive, read_pid, start_agent};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

pub struct Procs {
    pub dir: PathBuf,
    pub exe: PathBuf,
    pub names: Vec<String>,
    /// The processes this run started, to kill and reap: a process whose memory is gone may
    /// still hold its journal's lock until it is reaped.
    children: std::sync::Mutex<Vec<Option<Child>>>,
}

/// What a member did when started over a damaged journal.
#[derive(Debug, PartialEq, Eq)]
pub enum JournalOutcome {
    /// It exited with an error, and left the file as it found it (or kept a copy).
    Refused { message: String },
    /// It exited with an error, changed the damaged file and kept no copy of it.
    RefusedButTouched { message: String },
    /// It runs, with every record the crash left (checked on a copy before it started): the
    /// damage was in space the journal does not use.
    Started,
    /// A copy of the damaged journal opens with records missing or changed: the member would
    /// start without votes it signed. (It is not started over it.)
    OpenedWithLoss(String),
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill").arg(sig).arg(pid.to_string()).status();
}

impl Procs {
    pub fn new(dir: PathBuf, exe: PathBuf, names: Vec<String>) -> Self {
        let children = std::sync::Mutex::new(names.iter().map(|_| None).collect());
        Procs { dir, exe, names, children }
    }

    fn child(&self, i: usize) -> Option<Child> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())[i].take()
    }

    fn pid(&self, i: usize) -> Option<u32> {
        read_pid(&self.dir, &self.names[i]).filter(|p| alive(*p, &self.names[i]))
    }

    pub fn start(&self, i: usize) -> Result<(), String> {
        if let Some(child) = start_agent(&self.dir, &self.exe, &self.names[i])? {
            self.children.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(child);
        }
        Ok(())
    }

    /// Whether member `i` runs (reaping it if it exited on its own).
    pub fn is_up(&self, i: usize) -> bool {
        let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
        match children[i].as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                children[i] = None;
                false
            }
            None => self.pid(i).is_some(),
        }
    }

    /// SIGKILL, and wait until the process is reaped.
    pub fn kill(&self, i: usize) {
        if let Some(mut child) = self.child(i) {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        let Some(pid) = self.pid(i) else { return };
        signal(pid, "-KILL");
        let until = Instant::now() + Duration::from_secs(5);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pause(&self, i: usize) {
        if let Some(pid) = self.pid(i) {
            signal(pid, "-STOP");
        }
    }

    pub fn resume(&self, i: usize) {
        if let Some(pid) = self.pid(i) {
            signal(pid, "-CONT");
        }
    }

    pub fn journal(&self, i: usize) -> PathBuf {
        self.dir.join("data").join(&self.names[i]).join("phalanx.redb")
    }

    /// Kills member `i`, damages its journal, starts it and watches what it does; if it
    /// refuses, puts back the journal as the crash left it and starts it again. `answers`
    /// tells whether the member serves its API.
    pub fn restart_over_damage(
        &self,
        i: usize,
        damage: Damage,
        seed: u64,
        answers: impl Fn() -> bool,
    ) -> Result<JournalOutcome, String> {
        self.kill(i);
        let path = self.journal(i);
        let intact = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let damaged = damage_bytes(&intact, damage, seed);
        if let Some(lost) = self.opens_with_records_lost(i, &intact, &damaged)? {
            return Ok(JournalOutcome::OpenedWithLoss(lost));
        }
        std::fs::write(&path, &damaged).map_err(|e| format!("{}: {e}", path.display()))?;
        let log = self.dir.join("data").join(&self.names[i]).join("node.log");
        let log_before = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        self.start(i)?;
        // Up and serving, or gone: however long opening takes on a loaded machine.
        let until = Instant::now() + Duration::from_secs(30);
        while self.is_up(i) && !answers() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.is_up(i) {
            return Ok(JournalOutcome::Started);
        }
        let message = tail_since(&log, log_before);
        // A refused start leaves the file as found, or keeps it as found beside it.
        let data = self.dir.join("data").join(&self.names[i]);
        let mut kept = std::fs::read(&path).ok() == Some(damaged.clone());
        for entry in std::fs::read_dir(&data).map_err(|e| format!("{}: {e}", data.display()))?.flatten() {
            if entry.file_name().to_string_lossy().starts_with("phalanx.redb.as-found") {
                kept |= std::fs::read(entry.path()).ok() == Some(damaged.clone());
                let _ = std::fs::remove_file(entry.path());
            }
        }
        std::fs::write(&path, &intact).map_err(|e| format!("{}: {e}", path.display()))?;
        self.start(i)?;
        Ok(if kept {
            JournalOutcome::Refused { message }
        } else {
            JournalOutcome::RefusedButTouched { message }
        })
    }
}

impl Procs {
    /// Opens copies of the journal as the crash left it and as damaged, with the node's own
    /// storage code, beside the commit count: a damaged copy that opens must hold the same
    /// records. Returns what differs if not (a member would start without votes it signed).
    fn opens_with_records_lost(
        &self,
        i: usize,
        intact: &[u8],
        damaged: &[u8],
    ) -> Result<Option<String>, String> {
        let data = self.dir.join("data").join(&self.names[i]);
        let commits = std::fs::read(data.join("phalanx.commits")).ok();
        let open =
            |name: &str, bytes: &[u8]| -> Result<Option<Vec<phalanx_core::consensus::Record>>, String> {
                let dir = self.dir.join("scratch").join(name);
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                std::fs::write(dir.join("phalanx.redb"), bytes).map_err(|e| e.to_string())?;
                if let Some(c) = &commits {
                    std::fs::write(dir.join("phalanx.commits"), c).map_err(|e| e.to_string())?;
                }
                let records = phalanx_node::storage::Store::open(&dir).ok().map(|s| s.records().to_vec());
                let _ = std::fs::remove_dir_all(&dir);
                Ok(records)
            };
        let Some(whole) = open("intact", intact)? else {
            return Err(format!("{}'s journal as the crash left it does not open", self.names[i]));
        };
        Ok(match open("damaged", damaged)? {
            Some(records) if records != whole => Some(format!(
                "{}'s damaged journal opens with {} records where the crash left {}, or with different ones",
                self.names[i],
                records.len(),
                whole.len()
            )),
            _ => None,
        })
    }
}

/// What was appended to a log since `from`, last line first (the error a node exits with).
fn tail_since(log: &Path, from: u64) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let new = String::from_utf8_lossy(text.get(from as usize..).unwrap_or(&[]));
    new.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(no output)").chars().take(300).collect()
}

fn damage_bytes(intact: &[u8], damage: Damage, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = intact.to_vec();
    match damage {
        Damage::Truncate(permille) => out.truncate(intact.len() * permille as usize / 1000),
        Damage::Flip(count) => {
            for _ in 0..count {
                if out.is_empty() {
                    break;
                }
                let at = rng.random_range(0..out.len());
                out[at] ^= rng.random_range(1..=255u8);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_truncates_or_flips_as_planned() {
        let intact = vec![7u8; 1000];
        assert_eq!(damage_bytes(&intact, Damage::Truncate(250), 1).len(), 250);
        let flipped = damage_bytes(&intact, Damage::Flip(5), 1);
        let changed = flipped.iter().filter(|b| **b != 7).count();
        assert!((1..=5).contains(&changed), "{changed}");
        assert_eq!(flipped, damage_bytes(&intact, Damage::Flip(5), 1));
    }
}
