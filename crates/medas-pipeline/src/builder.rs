//! Building a pipeline in Rust, step by step, checked once at the end:
//!
//! ```no_run
//! # use medas_pipeline::PipelineBuilder;
//! let pipeline = PipelineBuilder::new("ct to float")
//!     .input("ct", "The CT to convert.", &["read.path"])
//!     .node("read", "io.read_image")
//!     .node("float", "preprocess.cast").set("type", "float32")
//!     .connect("read.image", "float.image")
//!     .build(medas_tools::Registry::global())
//!     .expect("a valid pipeline");
//! ```

use crate::document::{Edge, FORMAT_VERSION, Node, ParamRef, Pipeline, PipelineParam, PortRef};
use crate::validate::{Problem, validate};
use medas_tools::Registry;
use serde_json::{Map, Value};

pub struct PipelineBuilder {
    pipeline: Pipeline,
    problems: Vec<Problem>,
}

impl PipelineBuilder {
    pub fn new(name: &str) -> PipelineBuilder {
        let pipeline = Pipeline {
            medas_pipeline: FORMAT_VERSION,
            name: name.into(),
            description: String::new(),
            params: Default::default(),
            nodes: Vec::new(),
            edges: Vec::new(),
        };
        PipelineBuilder { pipeline, problems: Vec::new() }
    }

    pub fn describe(mut self, description: &str) -> PipelineBuilder {
        self.pipeline.description = description.into();
        self
    }

    /// Adds a node; the following [`set`](Self::set) calls apply to it.
    pub fn node(mut self, id: &str, tool: &str) -> PipelineBuilder {
        self.pipeline.nodes.push(Node { id: id.into(), tool: tool.into(), params: Map::new(), position: None });
        self
    }

    /// Sets a parameter of the node added last.
    pub fn set(mut self, param: &str, value: impl Into<Value>) -> PipelineBuilder {
        match self.pipeline.nodes.last_mut() {
            Some(node) => drop(node.params.insert(param.into(), value.into())),
            None => self.problems.push(Problem::pipeline(format!("parameter {param:?}"), "set before any node was added")),
        }
        self
    }

    /// Feeds output `from` (`"node.port"`) into input `to`.
    pub fn connect(mut self, from: &str, to: &str) -> PipelineBuilder {
        match (PortRef::try_from(from.to_string()), PortRef::try_from(to.to_string())) {
            (Ok(from), Ok(to)) => self.pipeline.edges.push(Edge { from, to }),
            (Err(message), _) | (_, Err(message)) => self.problems.push(Problem::pipeline(format!("edge {from} -> {to}"), message)),
        }
        self
    }

    /// A required pipeline input written into each of `targets` (`"node.param"`).
    pub fn input(self, name: &str, doc: &str, targets: &[&str]) -> PipelineBuilder {
        self.pipeline_param(name, doc, None, targets)
    }

    /// A pipeline parameter with a default, written into each of `targets`.
    pub fn param(self, name: &str, doc: &str, default: impl Into<Value>, targets: &[&str]) -> PipelineBuilder {
        self.pipeline_param(name, doc, Some(default.into()), targets)
    }

    fn pipeline_param(mut self, name: &str, doc: &str, default: Option<Value>, targets: &[&str]) -> PipelineBuilder {
        let mut refs = Vec::new();
        for target in targets {
            match ParamRef::try_from(target.to_string()) {
                Ok(target) => refs.push(target),
                Err(message) => self.problems.push(Problem::pipeline(format!("parameter {name:?}"), message)),
            }
        }
        self.pipeline.params.insert(name.into(), PipelineParam { doc: doc.into(), targets: refs, default });
        self
    }

    /// The pipeline, or every problem with it.
    pub fn build(mut self, registry: &Registry) -> Result<Pipeline, Vec<Problem>> {
        self.problems.extend(validate(&self.pipeline, registry));
        if self.problems.is_empty() { Ok(self.pipeline) } else { Err(self.problems) }
    }
}
