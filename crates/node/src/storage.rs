//! Durable storage in one redb file: the replica's journal (views, what it signed, prepared
//! certificates, the stable checkpoint and its snapshot). Every batch of records is one
//! transaction committed with `Durability::Immediate` (fsync) before anything it covers is sent.
//!
//! redb recovers from a crash by falling back to the previous commit when the latest one does
//! not verify. That is right for a commit torn by a power cut (its fsync never returned, so
//! nothing it covers was sent), and wrong for one damaged on disk afterwards: the replica would
//! forget votes it signed and sent, and could sign conflicting ones. So each commit is counted,
//! inside the transaction and, once it returns, in a small file beside it (`phalanx.commits`).
//! A journal that holds fewer commits than were made is refused, and the file as it was found
//! (before redb's repair touched it) is kept beside it as `phalanx.redb.as-found-<ms>`.

use phalanx_core::consensus::{Journal, Record};
use phalanx_core::wire::{CommitCert, EpochProof, decode_value, to_bytes};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");
/// Proofs of the reconfigurations this replica executed, by the epoch each created.
const EPOCH_PROOFS: TableDefinition<u64, &[u8]> = TableDefinition::new("epoch_proofs");
/// Commit certificates of the batches that closed decisions, by decision id (the decisions the
/// state still holds).
const DECISION_PROOFS: TableDefinition<&str, &[u8]> = TableDefinition::new("decision_proofs");
/// `commits`: how many journal and epoch-proof transactions were committed.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const DB_FILE: &str = "phalanx.redb";
const COMMITS_FILE: &str = "phalanx.commits";
const AS_FOUND: &str = "phalanx.redb.as-found";
const OPENING: &str = "phalanx.redb.opening";
/// Mixed into the commit count's check word, so that zeroed or foreign bytes do not pass.
const CHECK: u64 = 0x5048_414c_414e_5821;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Db(String),
    #[error("storage: record {0} is corrupt: {1}")]
    Corrupt(u64, String),
    #[error(
        "storage: {db} holds {holds} committed writes but {made} were made: it was damaged or rolled \
         back, and this agent no longer knows every vote it signed, so it must not vote again \
         (it could sign conflicting votes). Replace this agent with a new one (`phalanx agent \
         spawn`, `phalanx update-quorum`; docs/operations.md)"
    )]
    RolledBack { db: PathBuf, holds: u64, made: u64 },
    #[error("{0}; the journal as found is kept at {1}")]
    Kept(Box<StoreError>, PathBuf),
    #[error("storage: {0} is damaged (its check word does not match); it counts the journal's commits")]
    CommitsFile(PathBuf),
}

fn err<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

pub struct Store {
    db: Database,
    journal: Journal,
    next_key: u64,
    /// Transactions committed (journal appends and epoch proofs).
    commits: u64,
    commits_file: std::fs::File,
    dir: PathBuf,
    /// A copy of the journal as it was before this open, until the replica recovered from it.
    found: Option<PathBuf>,
}

/// The commit count the side file holds, if it exists.
fn read_commits(path: &Path) -> Result<Option<u64>, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(format!("{}: {e}", path.display()))),
    };
    let word = |i: usize| bytes.get(i..i + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    match (bytes.len(), word(0), word(8)) {
        (16, Some(n), Some(check)) if n ^ CHECK == check => Ok(Some(n)),
        _ => Err(StoreError::CommitsFile(path.to_path_buf())),
    }
}

fn commits_bytes(n: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&n.to_le_bytes());
    b[8..].copy_from_slice(&(n ^ CHECK).to_le_bytes());
    b
}

/// Keeps `copy` (the journal as found) as `phalanx.redb.as-found-<ms>` if the file at `path`
/// no longer matches it; deletes it otherwise. Returns where it was kept.
fn keep_as_found(dir: &Path, path: &Path, copy: &Path) -> Option<PathBuf> {
    if std::fs::read(path).ok() == std::fs::read(copy).ok() {
        let _ = std::fs::remove_file(copy);
        return None;
    }
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let kept = dir.join(format!("{AS_FOUND}-{ms}"));
    std::fs::rename(copy, &kept).ok().map(|_| kept)
}

/// Writes the commit count so that it is whole on disk before the node goes on: a new file
/// (or one from before an upgrade) lost to a crash would otherwise refuse a good journal.
fn establish_commits(dir: &Path, commits: u64) -> Result<std::fs::File, StoreError> {
    let io = |e: std::io::Error| err(format!("{}: {e}", dir.join(COMMITS_FILE).display()));
    let tmp = dir.join(format!("{COMMITS_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    std::io::Write::write_all(&mut f, &commits_bytes(commits)).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, dir.join(COMMITS_FILE)).map_err(io)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    std::fs::OpenOptions::new().write(true).open(dir.join(COMMITS_FILE)).map_err(io)
}

impl Store {
    /// Opens (or creates) `dir/phalanx.redb` and reads the journal back. Call [`Store::recovered`]
    /// once the replica rebuilt itself from the records, or [`Store::refused`] if it could not.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(err)?;
        let path = dir.join(DB_FILE);
        let made = read_commits(&dir.join(COMMITS_FILE))?;
        // Opening may repair the file in place (after any unclean shutdown), so it is copied
        // first: a refused journal is kept exactly as it was found.
        let copy = dir.join(OPENING);
        let copied = path.exists() && std::fs::copy(&path, &copy).is_ok();
        match Self::open_checked(dir, &path, made) {
            Ok(mut store) => {
                store.found = copied.then_some(copy);
                Ok(store)
            }
            Err(e) => match copied.then(|| keep_as_found(dir, &path, &copy)).flatten() {
                Some(kept) => Err(StoreError::Kept(Box::new(e), kept)),
                None => Err(e),
            },
        }
    }

    /// The replica recovered from these records: the copy of the journal as found goes.
    pub fn recovered(&mut self) {
        if let Some(copy) = self.found.take() {
            let _ = std::fs::remove_file(copy);
        }
    }

    /// The replica could not recover from these records: the journal as found is kept if
    /// opening changed it. Returns a sentence saying where.
    pub fn refused(&mut self) -> String {
        let Some(copy) = self.found.take() else { return String::new() };
        match keep_as_found(&self.dir, &self.dir.join(DB_FILE), &copy) {
            Some(kept) => format!("; the journal as found is kept at {}", kept.display()),
            None => String::new(),
        }
    }

    fn open_checked(dir: &Path, path: &Path, made: Option<u64>) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|e| StoreError::Db(format!("{}: {e}", path.display())))?;
        let mut records = Vec::new();
        let mut next_key = 0;
        {
            let tx = db.begin_write().map_err(err)?;
            tx.open_table(JOURNAL).map_err(err)?;
            tx.open_table(EPOCH_PROOFS).map_err(err)?;
            tx.open_table(DECISION_PROOFS).map_err(err)?;
            tx.open_table(META).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        let tx = db.begin_read().map_err(err)?;
        let commits =
            tx.open_table(META).map_err(err)?.get("commits").map_err(err)?.map(|v| v.value()).unwrap_or(0);
        if let Some(made) = made
            && commits < made
        {
            return Err(StoreError::RolledBack { db: path.to_path_buf(), holds: commits, made });
        }
        let table = tx.open_table(JOURNAL).map_err(err)?;
        for item in table.iter().map_err(err)? {
            let (k, v) = item.map_err(err)?;
            let rec: Record =
                decode_value(v.value()).map_err(|e| StoreError::Corrupt(k.value(), e.to_string()))?;
            records.push(rec);
            next_key = k.value() + 1;
        }
        drop(table);
        drop(tx);
        let commits_file = establish_commits(dir, commits)?;
        Ok(Store {
            db,
            journal: Journal::from_records(records),
            next_key,
            commits,
            commits_file,
            dir: dir.to_path_buf(),
            found: None,
        })
    }

    pub fn records(&self) -> &[Record] {
        self.journal.records()
    }

    /// Counts a commit in the transaction that makes it.
    fn count(&self, tx: &redb::WriteTransaction) -> Result<(), StoreError> {
        tx.open_table(META).map_err(err)?.insert("commits", self.commits + 1).map_err(err)?;
        Ok(())
    }

    /// Records that a commit returned. Not fsynced: a process crash keeps it (the page cache
    /// survives), and a power cut that loses it only leaves the count low, which refuses nothing.
    fn counted(&mut self) -> Result<(), StoreError> {
        self.commits += 1;
        self.commits_file
            .write_all_at(&commits_bytes(self.commits), 0)
            .map_err(|e| err(format!("{COMMITS_FILE}: {e}")))
    }

    /// Durably appends records (one fsync for the whole batch).
    pub fn append(&mut self, records: Vec<Record>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        // Encoded before the journal takes them: no copy of a batch just to write it.
        let mut rewrite = false;
        let mut fresh = Vec::with_capacity(records.len());
        for r in records {
            fresh.push(to_bytes(&r));
            rewrite |= self.journal.push(r);
        }
        let mut tx = self.db.begin_write().map_err(err)?;
        tx.set_durability(Durability::Immediate).map_err(err)?;
        self.count(&tx)?;
        {
            let mut table = tx.open_table(JOURNAL).map_err(err)?;
            if rewrite {
                table.retain(|_, _| false).map_err(err)?;
                self.next_key = 0;
                for r in self.journal.records() {
                    table.insert(self.next_key, to_bytes(r).as_slice()).map_err(err)?;
                    self.next_key += 1;
                }
            } else {
                for bytes in &fresh {
                    table.insert(self.next_key, bytes.as_slice()).map_err(err)?;
                    self.next_key += 1;
                }
            }
        }
        tx.commit().map_err(err)?;
        self.counted()
    }

    /// Durably keeps the proof of the reconfiguration that created `epoch`.
    pub fn save_epoch_proof(&mut self, epoch: u64, proof: &EpochProof) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(err)?;
        tx.set_durability(Durability::Immediate).map_err(err)?;
        self.count(&tx)?;
        tx.open_table(EPOCH_PROOFS).map_err(err)?.insert(epoch, to_bytes(proof).as_slice()).map_err(err)?;
        tx.commit().map_err(err)?;
        self.counted()
    }

    /// The proof of the reconfiguration that created `epoch`, if this replica executed it.
    /// Keeps the certificate of the batch that closed decision `id`, and forgets those of
    /// decisions no longer held (`held`).
    pub fn save_decision_proof(
        &mut self,
        id: &str,
        cert: &CommitCert,
        held: &dyn Fn(&str) -> bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(err)?;
        tx.set_durability(Durability::Immediate).map_err(err)?;
        self.count(&tx)?;
        {
            let mut table = tx.open_table(DECISION_PROOFS).map_err(err)?;
            let mut gone = Vec::new();
            for row in table.iter().map_err(err)? {
                let (k, _) = row.map_err(err)?;
                if !held(k.value()) {
                    gone.push(k.value().to_string());
                }
            }
            for k in gone {
                table.remove(k.as_str()).map_err(err)?;
            }
            table.insert(id, to_bytes(cert).as_slice()).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        self.counted()
    }

    /// The certificate of the batch that closed decision `id`, if this node executed it.
    pub fn decision_proof(&self, id: &str) -> Result<Option<CommitCert>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(DECISION_PROOFS).map_err(err)?;
        let Some(v) = table.get(id).map_err(err)? else { return Ok(None) };
        decode_value(v.value())
            .map(Some)
            .map_err(|e| StoreError::Db(format!("the proof of decision {id} is corrupt: {e}")))
    }

    pub fn epoch_proof(&self, epoch: u64) -> Result<Option<EpochProof>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(EPOCH_PROOFS).map_err(err)?;
        let Some(v) = table.get(epoch).map_err(err)? else { return Ok(None) };
        decode_value(v.value()).map(Some).map_err(|e| StoreError::Corrupt(epoch, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phalanx_core::consensus::Record;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("phalanx-storage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A journal as a crash leaves it: written batch by batch, never closed.
    fn crashed_journal(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<Record>) {
        let mut store = Store::open(dir).unwrap();
        for i in 0..60u64 {
            store.append(vec![Record::View(i), Record::OwnNonce(i * 7)]).unwrap();
        }
        let records = store.records().to_vec();
        let bytes = std::fs::read(dir.join(DB_FILE)).unwrap();
        let commits = std::fs::read(dir.join(COMMITS_FILE)).unwrap();
        std::mem::forget(store);
        (bytes, commits, records)
    }

    #[test]
    fn a_damaged_journal_is_refused_or_read_back_whole() {
        let (bytes, commits, records) = crashed_journal(&scratch("origin"));
        let mut rng = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut refused, mut whole, mut lost) = (0, 0, Vec::new());
        for trial in 0..300 {
            let mut damaged = bytes.clone();
            if trial % 3 == 0 {
                damaged.truncate((next() as usize) % bytes.len());
            } else {
                for _ in 0..1 + next() % 16 {
                    let at = (next() as usize) % damaged.len();
                    damaged[at] ^= 1 + (next() % 255) as u8;
                }
            }
            let dir = scratch("trial");
            std::fs::write(dir.join(DB_FILE), &damaged).unwrap();
            std::fs::write(dir.join(COMMITS_FILE), &commits).unwrap();
            match Store::open(&dir) {
                Err(_) => {
                    refused += 1;
                    // Nothing is lost: the file as found is where it was, or kept beside it.
                    let found = |f: &str| std::fs::read(dir.join(f)).ok() == Some(damaged.clone());
                    let kept = std::fs::read_dir(&dir).unwrap().flatten().any(|e| {
                        e.file_name().to_string_lossy().starts_with(AS_FOUND)
                            && std::fs::read(e.path()).ok() == Some(damaged.clone())
                    });
                    assert!(found(DB_FILE) || kept, "trial {trial}: the damaged file is gone");
                }
                Ok(s) if s.records() == records.as_slice() => whole += 1,
                Ok(s) => lost.push((trial, s.records().len())),
            }
        }
        eprintln!("refused {refused}, whole {whole}, lost {lost:?}");
        assert!(
            lost.is_empty(),
            "{} damaged journals opened with records missing or changed: {lost:?}",
            lost.len()
        );
    }

    #[test]
    fn a_crashed_journal_reopens_whole_and_leaves_no_copy_behind() {
        let (bytes, commits, records) = crashed_journal(&scratch("reopen-origin"));
        let dir = scratch("reopen");
        std::fs::write(dir.join(DB_FILE), &bytes).unwrap();
        std::fs::write(dir.join(COMMITS_FILE), &commits).unwrap();
        let mut store = Store::open(&dir).unwrap();
        assert_eq!(store.records(), records.as_slice());
        store.recovered();
        store.append(vec![Record::View(99)]).unwrap();
        drop(store);
        let mut store = Store::open(&dir).unwrap();
        assert_eq!(store.records().len(), records.len() + 1);
        store.recovered();
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into())
            .collect();
        assert!(names.iter().all(|n| !n.contains(OPENING) && !n.contains(AS_FOUND)), "{names:?}");
    }

    #[test]
    fn a_journal_deleted_or_with_a_damaged_count_is_refused() {
        let dir = scratch("deleted");
        crashed_journal(&dir);
        std::fs::remove_file(dir.join(DB_FILE)).unwrap();
        let e = Store::open(&dir).err().expect("a deleted journal beside its commit count opens").to_string();
        assert!(e.contains("holds 0 committed writes but 60 were made"), "{e}");

        let dir = scratch("count");
        crashed_journal(&dir);
        std::fs::write(dir.join(COMMITS_FILE), [0u8; 16]).unwrap();
        let e = Store::open(&dir).err().expect("a zeroed commit count passes").to_string();
        assert!(e.contains("phalanx.commits is damaged"), "{e}");
    }
}
