//! Pipelines as data, and their runs. A [`Pipeline`] document names nodes (a tool id,
//! parameters, an optional editor position), edges (`node.port → node.port`) and
//! pipeline-level parameters; the same JSON comes from the web editor, the Python API and
//! hand-written files. [`validate`] reports every problem at once, each naming the node and
//! field; [`bind`] applies `--set` values; [`run`] executes with a content-addressed cache,
//! a run folder with a manifest, events and cancellation.

mod artifact;
mod builder;
mod document;
mod executor;
mod log;
mod plan;
mod report;
mod settings;
mod store;
mod validate;

pub use artifact::{ArtifactError, ArtifactRecord, data_hash, fingerprint, read as read_artifact, read_image, write as write_artifact};
pub use builder::PipelineBuilder;
pub use document::{Edge, FORMAT_VERSION, LoadError, Node, ParamRef, Pipeline, PipelineParam, PortRef};
pub use executor::{EventSink, RunError, RunOptions, cache_key, run};
pub use report::{Event, Manifest, NodeReport, NodeStatus, RunStatus};
pub use settings::bind;
pub use store::{CacheEntry, CacheStore, default_cache_dir};
pub use validate::{Problem, validate};
