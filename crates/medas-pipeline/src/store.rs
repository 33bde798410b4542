//! The content-addressed cache of node outputs: one folder per cache key (the hash of tool
//! id, version, parameters, input hashes and read files), written whole or not at all.

use crate::artifact::{self, ArtifactError, ArtifactRecord};
use medas_tools::Data;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// One cached node result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheEntry {
    pub tool: String,
    pub version: u32,
    pub outputs: BTreeMap<String, ArtifactRecord>,
}

pub struct CacheStore {
    root: PathBuf,
}

/// The cache folder when none is named: `$MEDAS_CACHE`, else `$XDG_CACHE_HOME/medas/nodes`,
/// else `~/.cache/medas/nodes`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MEDAS_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("medas").join("nodes")
}

impl CacheStore {
    pub fn open(root: &Path) -> Result<CacheStore, ArtifactError> {
        std::fs::create_dir_all(root.join("tmp")).map_err(|source| ArtifactError::Write { path: root.into(), source })?;
        Ok(CacheStore { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.root.join(&key[..2.min(key.len())]).join(key)
    }

    /// The entry for `key` when it is complete on disk.
    pub fn lookup(&self, key: &str) -> Option<CacheEntry> {
        let dir = self.entry_dir(key);
        let entry: CacheEntry = serde_json::from_slice(&std::fs::read(dir.join("entry.json")).ok()?).ok()?;
        let complete = entry.outputs.values().flat_map(ArtifactRecord::stored_files).all(|f| dir.join(f).is_file());
        complete.then_some(entry)
    }

    /// Stores `outputs` (value and content hash by port) under `key`. The entry is written in
    /// a scratch folder and renamed into place, so a reader never sees half of it.
    pub fn save(&self, key: &str, tool: &str, version: u32, outputs: &[(&str, &Data, String)]) -> Result<CacheEntry, ArtifactError> {
        static SCRATCH: AtomicUsize = AtomicUsize::new(0);
        let scratch = self.root.join("tmp").join(format!("{key}.{}.{}", std::process::id(), SCRATCH.fetch_add(1, Ordering::Relaxed)));
        let write_error = |path: &Path, source| ArtifactError::Write { path: path.to_path_buf(), source };
        std::fs::create_dir_all(&scratch).map_err(|e| write_error(&scratch, e))?;
        let mut entry = CacheEntry { tool: tool.into(), version, outputs: BTreeMap::new() };
        for (port, data, hash) in outputs {
            entry.outputs.insert(port.to_string(), artifact::write(&scratch, port, data, hash.clone())?);
        }
        let text = serde_json::to_vec_pretty(&entry).expect("entries serialise");
        std::fs::write(scratch.join("entry.json"), text).map_err(|e| write_error(&scratch, e))?;
        let dir = self.entry_dir(key);
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| write_error(parent, e))?;
        }
        if std::fs::rename(&scratch, &dir).is_err() {
            // Another run stored the same result first (theirs is as good as ours), or a
            // broken entry is in the way (replace it).
            if let Some(theirs) = self.lookup(key) {
                let _ = std::fs::remove_dir_all(&scratch);
                return Ok(theirs);
            }
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&scratch, &dir).map_err(|e| write_error(&dir, e))?;
        }
        Ok(entry)
    }

    /// Number of entries and bytes they hold.
    pub fn usage(&self) -> (usize, u64) {
        let mut entries = 0;
        let mut bytes = 0;
        for shard in std::fs::read_dir(&self.root).into_iter().flatten().flatten() {
            if shard.file_name() == "tmp" {
                continue;
            }
            for entry in std::fs::read_dir(shard.path()).into_iter().flatten().flatten() {
                entries += 1;
                for file in std::fs::read_dir(entry.path()).into_iter().flatten().flatten() {
                    bytes += file.metadata().map_or(0, |m| m.len());
                }
            }
        }
        (entries, bytes)
    }

    /// Removes every entry (run folders keep their hard-linked files).
    pub fn clear(&self) -> Result<(), ArtifactError> {
        for shard in std::fs::read_dir(&self.root).map_err(|source| ArtifactError::Write { path: self.root.clone(), source })?.flatten() {
            std::fs::remove_dir_all(shard.path()).map_err(|source| ArtifactError::Write { path: shard.path(), source })?;
        }
        std::fs::create_dir_all(self.root.join("tmp")).map_err(|source| ArtifactError::Write { path: self.root.clone(), source })
    }
}
