//! What a run tells the world while it goes (events) and when it ends (the manifest).

use crate::artifact::ArtifactRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One thing that happened in a run, in the order it happened. The CLI draws progress bars
/// from these, the server forwards them to the web page, the Python API yields them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted { pipeline: String, nodes: Vec<String> },
    NodeStarted { node: String, tool: String },
    NodeProgress { node: String, fraction: f64 },
    NodeLog { node: String, line: String },
    /// Done, computed or (with `cache_hit`) taken from the cache.
    NodeFinished { node: String, seconds: f64, cache_hit: bool },
    NodeFailed { node: String, error: String },
    /// Not run because `because` (a node it depends on) failed or was cancelled.
    NodeSkipped { node: String, because: String },
    NodeCancelled { node: String },
    RunFinished { status: RunStatus, seconds: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    /// At least one node failed; the others that could run did.
    Failed,
    Cancelled,
}

/// One node in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    pub id: String,
    pub tool: String,
    pub version: u32,
    pub status: NodeStatus,
    pub cache_hit: bool,
    /// The content address of the node's work (absent until it starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_because: Option<String>,
    /// Outputs by port; stored files are named relative to the run folder.
    #[serde(default)]
    pub outputs: BTreeMap<String, ArtifactRecord>,
}

/// `manifest.json` of a run folder, rewritten as each node ends so that it is true even if
/// the run is killed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub medas_run: u32,
    pub pipeline: String,
    pub status: RunStatus,
    /// Seconds since the Unix epoch.
    pub started_unix: f64,
    pub seconds: f64,
    /// The cache folder used (absent with caching off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<std::path::PathBuf>,
    pub nodes: Vec<NodeReport>,
}

impl Manifest {
    pub fn node(&self, id: &str) -> Option<&NodeReport> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn load(path: &std::path::Path) -> Result<Manifest, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: not a MEDAS run manifest: {e}", path.display()))
    }
}
