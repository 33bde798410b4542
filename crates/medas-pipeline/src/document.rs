//! The pipeline document (JSON, versioned).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The document format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Format version of the document (`FORMAT_VERSION`).
    pub medas_pipeline: u32,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Pipeline-level parameters and inputs, set once (`--set ct=scan.nrrd`) and written into
    /// the node parameters they target.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, PipelineParam>,
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub edges: Vec<Edge>,
}

/// A parameter of the whole pipeline: its value goes to every target `node.param`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineParam {
    #[serde(default)]
    pub doc: String,
    pub targets: Vec<ParamRef>,
    /// Without a default the parameter is a required input of the pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique within the pipeline; edges and `--set node.param=value` refer to it.
    pub id: String,
    /// Tool id in the registry, e.g. `preprocess.cast`.
    pub tool: String,
    /// Parameter values as given (coerced and checked by validation).
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Where the web editor draws the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<[f64; 2]>,
}

/// `from` (an output) feeds `to` (an input), written `"node.port"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    pub from: PortRef,
    pub to: PortRef,
}

/// A port of a node, written `"node.port"` in documents.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortRef {
    pub node: String,
    pub port: String,
}

/// A parameter of a node, written `"node.param"` in documents and on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ParamRef {
    pub node: String,
    pub param: String,
}

/// Splits `"a.b"` at the first dot into two non-empty parts.
fn dotted(text: &str, what: &str) -> Result<(String, String), String> {
    match text.split_once('.') {
        Some((node, rest)) if !node.is_empty() && !rest.is_empty() => Ok((node.into(), rest.into())),
        _ => Err(format!("{text:?} is not {what}")),
    }
}

impl TryFrom<String> for PortRef {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        dotted(&text, "NODE.PORT").map(|(node, port)| PortRef { node, port })
    }
}

impl TryFrom<String> for ParamRef {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        dotted(&text, "NODE.PARAM").map(|(node, param)| ParamRef { node, param })
    }
}

impl From<ParamRef> for String {
    fn from(param: ParamRef) -> String {
        param.to_string()
    }
}

impl std::fmt::Display for ParamRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.node, self.param)
    }
}

impl From<PortRef> for String {
    fn from(port: PortRef) -> String {
        format!("{}.{}", port.node, port.port)
    }
}

impl std::fmt::Display for PortRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.node, self.port)
    }
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("{}: not a MEDAS pipeline document: {message}", .path.display())]
    Syntax { path: std::path::PathBuf, message: String },
    #[error("{}: document format version {found}, this build reads {FORMAT_VERSION}", .path.display())]
    Version { path: std::path::PathBuf, found: u32 },
}

impl Pipeline {
    /// Reads a document, naming the line and column of a syntax error.
    pub fn load(path: &Path) -> Result<Pipeline, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.into(), source })?;
        let pipeline: Pipeline =
            serde_json::from_str(&text).map_err(|e| LoadError::Syntax { path: path.into(), message: e.to_string() })?;
        if pipeline.medas_pipeline != FORMAT_VERSION {
            return Err(LoadError::Version { path: path.into(), found: pipeline.medas_pipeline });
        }
        Ok(pipeline)
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn node_mut(&mut self, id: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.id == id)
    }

    /// Pipeline parameters that target `node.param`.
    pub fn params_targeting(&self, node: &str, param: &str) -> impl Iterator<Item = (&String, &PipelineParam)> {
        self.params.iter().filter(move |(_, p)| p.targets.iter().any(|t| t.node == node && t.param == param))
    }
}
