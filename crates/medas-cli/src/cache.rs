//! `medas cache info|clear`: the node cache `medas run` keeps.

use anyhow::Result;
use clap::Subcommand;
use medas_pipeline::{CacheStore, default_cache_dir};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Where the cache is, how many results it holds and their size.
    Info {
        /// Cache folder [default: $MEDAS_CACHE, else ~/.cache/medas/nodes].
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Removes every cached result (files already in run folders stay).
    Clear {
        #[arg(long)]
        cache: Option<PathBuf>,
    },
}

pub fn run(command: &CacheCommand) -> Result<()> {
    let (CacheCommand::Info { cache } | CacheCommand::Clear { cache }) = command;
    let root = cache.clone().unwrap_or_else(default_cache_dir);
    let store = CacheStore::open(&root)?;
    if matches!(command, CacheCommand::Clear { .. }) {
        let (entries, _) = store.usage();
        store.clear()?;
        crate::emit(&format!("{}: removed {entries} cached result(s)\n", crate::shown(&root)))?;
    } else {
        let (entries, bytes) = store.usage();
        crate::emit(&format!("{}: {entries} cached result(s), {:.1} MB\n", crate::shown(&root), bytes as f64 / 1e6))?;
    }
    Ok(())
}
