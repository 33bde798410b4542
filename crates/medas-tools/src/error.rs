//! Errors of the catalog, each naming the tool and the parameter or port at fault.

use std::path::PathBuf;

/// What is wrong with one parameter value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamProblem {
    #[error("is required and has no default")]
    Missing,
    #[error("is not a parameter of this tool")]
    Unknown,
    #[error("expects {expected}, got {got}")]
    WrongType { expected: String, got: String },
    #[error("{value} is outside the allowed range {min} to {max}")]
    OutOfRange { value: String, min: String, max: String },
    #[error("{value:?} is not one of {choices:?}")]
    NotAChoice { value: String, choices: Vec<String> },
    #[error("holds {len} items, expected {min} to {max}")]
    WrongLength { len: usize, min: usize, max: usize },
    #[error("item {index} {problem}")]
    Item { index: usize, problem: Box<ParamProblem> },
}

/// One parameter and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("parameter {param:?} {problem}")]
pub struct ParamIssue {
    pub param: String,
    pub problem: ParamProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("unknown tool {0:?} (see `medas tools list`)")]
    UnknownTool(String),
    #[error("{tool}: parameter {param:?} {problem}")]
    Param { tool: String, param: String, problem: ParamProblem },
    #[error("{tool}: {} parameter problems: {}", .problems.len(), .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Params { tool: String, problems: Vec<ParamIssue> },
    #[error("{tool}: input {port:?} is not connected")]
    MissingInput { tool: String, port: String },
    #[error("{tool}: port {port:?} expects {expected}, got {got}")]
    PortType { tool: String, port: String, expected: &'static str, got: &'static str },
    #[error("{tool}: {port:?} is not a port of this tool")]
    UnknownPort { tool: String, port: String },
    #[error("{tool}: cannot save {port:?} to {}: {reason}", .path.display())]
    Save { tool: String, port: String, path: PathBuf, reason: String },
    #[error(transparent)]
    Io(#[from] medas_io::IoError),
    #[error("{tool}: cancelled")]
    Cancelled { tool: String },
    #[error("{tool}: {message}")]
    Failed { tool: String, message: String },
}
