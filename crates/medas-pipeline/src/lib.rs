//! Pipelines as data. A [`Pipeline`] document names nodes (a tool id, parameters, an optional
//! editor position) and edges (`node.port → node.port`); the same JSON comes from the web
//! editor, the Python API and hand-written files. [`validate`] checks a document against the
//! tool registry and reports every problem at once, each naming the node and field.

mod document;
mod validate;

pub use document::{Edge, FORMAT_VERSION, LoadError, Node, Pipeline, PortRef};
pub use validate::{Problem, validate};
