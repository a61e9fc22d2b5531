//! Durable storage in one redb file: the replica's journal (views, what it signed, prepared
//! certificates, the stable checkpoint and its snapshot). Every batch of records is one
//! transaction committed with `Durability::Immediate` (fsync) before anything it covers is sent.

use phalanx_core::consensus::{Journal, Record};
use phalanx_core::wire::{EpochProof, decode_value, to_bytes};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");
/// Proofs of the reconfigurations this replica executed, by the epoch each created.
const EPOCH_PROOFS: TableDefinition<u64, &[u8]> = TableDefinition::new("epoch_proofs");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Db(String),
    #[error("storage: record {0} is corrupt: {1}")]
    Corrupt(u64, String),
}

fn err<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

pub struct Store {
    db: Database,
    journal: Journal,
    next_key: u64,
}

impl Store {
    /// Opens (or creates) `dir/phalanx.redb` and reads the journal back.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(err)?;
        let db = Database::create(dir.join("phalanx.redb")).map_err(err)?;
        let mut records = Vec::new();
        let mut next_key = 0;
        {
            let tx = db.begin_write().map_err(err)?;
            tx.open_table(JOURNAL).map_err(err)?;
            tx.open_table(EPOCH_PROOFS).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        let tx = db.begin_read().map_err(err)?;
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
        Ok(Store { db, journal: Journal::from_records(records), next_key })
    }

    pub fn records(&self) -> &[Record] {
        self.journal.records()
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
        Ok(())
    }

    /// Durably keeps the proof of the reconfiguration that created `epoch`.
    pub fn save_epoch_proof(&mut self, epoch: u64, proof: &EpochProof) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(err)?;
        tx.set_durability(Durability::Immediate).map_err(err)?;
        tx.open_table(EPOCH_PROOFS).map_err(err)?.insert(epoch, to_bytes(proof).as_slice()).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(())
    }

    /// The proof of the reconfiguration that created `epoch`, if this replica executed it.
    pub fn epoch_proof(&self, epoch: u64) -> Result<Option<EpochProof>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(EPOCH_PROOFS).map_err(err)?;
        let Some(v) = table.get(epoch).map_err(err)? else { return Ok(None) };
        decode_value(v.value()).map(Some).map_err(|e| StoreError::Corrupt(epoch, e.to_string()))
    }
}
