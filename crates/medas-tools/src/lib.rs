//! The MEDAS tool catalog. Every tool is declared once by a [`ToolSpec`] (id, category, doc,
//! version, typed parameters and ports); the CLI, the Python API, the web editor and the docs
//! are generated from the [`Registry`], so nothing lists tools by hand.
//!
//! Adding a tool is one module: write its spec and `run`, and `inventory::submit!` it (see
//! `tools/io.rs`); the registry finds it at start-up.

mod call;
mod context;
mod data;
mod error;
mod params;
mod registry;
mod schema;
mod spec;
mod table;
pub mod tools;

pub use call::{OnOutcome, ToolCall};
pub use context::{CancelToken, Context};
pub use data::{Data, Inputs, NamedImage, Outputs, load_input, save_output, take_image, take_image_set};
pub use error::{ParamIssue, ParamProblem, ToolError};
pub use params::Params;
pub use registry::{Registry, Tool, ToolEntry, run_resolved, run_tool};
pub use table::{Column, Table};
pub use spec::{Category, ParamKind, ParamSpec, PortSpec, PortType, ToolSpec};

/// Re-exported so tool modules can register themselves with `medas_tools::inventory::submit!`.
pub use inventory;
