//! The paper's continuous programming in Rust: a tool instance configured step by step,
//! run, and chained on `Result`, with success and failure handlers.
//!
//! ```no_run
//! use medas_tools::{OnOutcome, ToolCall};
//! let outputs = ToolCall::new("io.read_image")?
//!     .set("path", "ct.nii.gz")
//!     .run()
//!     .and_then(|read| ToolCall::new("preprocess.cast")?.set("type", "float32").pipe(read, "image", "image").run())
//!     .on_success(|_| println!("converted"))
//!     .on_failure(|error| eprintln!("failed: {error}"))?;
//! # Ok::<(), medas_tools::ToolError>(())
//! ```

use crate::context::Context;
use crate::data::{Data, Inputs, Outputs};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Registry, Tool, run_resolved};
use medas_image::Image;
use serde_json::{Map, Value};
use std::sync::Arc;

/// One tool with its parameters and inputs, ready to run.
pub struct ToolCall {
    tool: Arc<dyn Tool>,
    params: Map<String, Value>,
    inputs: Inputs,
    /// A mistake in building the call, reported when it runs.
    mistake: Option<String>,
}

impl ToolCall {
    /// The tool `id` from the global registry.
    pub fn new(id: &str) -> Result<ToolCall, ToolError> {
        Ok(ToolCall::of(Registry::global().get(id)?.clone()))
    }

    pub fn of(tool: Arc<dyn Tool>) -> ToolCall {
        ToolCall { tool, params: Map::new(), inputs: Inputs::new(), mistake: None }
    }

    /// Sets one parameter (text is coerced to the declared type when the call runs).
    pub fn set(mut self, name: &str, value: impl Into<Value>) -> ToolCall {
        self.params.insert(name.into(), value.into());
        self
    }

    /// Sets several parameters from a JSON object (`json!({"width": 400, "level": 40})`);
    /// anything but an object is a mistake reported when the call runs.
    pub fn set_params(mut self, params: Value) -> ToolCall {
        match params {
            Value::Object(map) => self.params.extend(map),
            other => self.mistake = Some(format!("set_params expects a JSON object, got {other}")),
        }
        self
    }

    pub fn input(mut self, port: &str, data: impl Into<Data>) -> ToolCall {
        self.inputs.insert(port.into(), data.into());
        self
    }

    /// Feeds output `from` of an earlier call's `outputs` into input `to`.
    pub fn pipe(mut self, mut outputs: Outputs, from: &str, to: &str) -> ToolCall {
        if let Some(data) = outputs.remove(from) {
            self.inputs.insert(to.into(), data);
        }
        self
    }

    /// Runs with every check of [`run_tool`](crate::run_tool).
    pub fn run(self) -> Result<Outputs, ToolError> {
        self.run_with(&Context::default())
    }

    pub fn run_with(self, context: &Context) -> Result<Outputs, ToolError> {
        if let Some(message) = self.mistake {
            return Err(ToolError::Failed { tool: self.tool.spec().id.clone(), message });
        }
        let params = Params::resolve(self.tool.spec(), &self.params)?;
        run_resolved(self.tool.as_ref(), self.inputs, &params, context)
    }
}

impl From<Image> for Data {
    fn from(image: Image) -> Data {
        Data::Image(image)
    }
}

impl From<f64> for Data {
    fn from(value: f64) -> Data {
        Data::Scalar(value)
    }
}

/// Success and failure handlers on a tool's result, for chains that report as they go.
pub trait OnOutcome<T>: Sized {
    fn on_success(self, handle: impl FnOnce(&T)) -> Self;
    fn on_failure(self, handle: impl FnOnce(&ToolError)) -> Self;
}

impl<T> OnOutcome<T> for Result<T, ToolError> {
    fn on_success(self, handle: impl FnOnce(&T)) -> Self {
        if let Ok(value) = &self {
            handle(value);
        }
        self
    }

    fn on_failure(self, handle: impl FnOnce(&ToolError)) -> Self {
        if let Err(error) = &self {
            handle(error);
        }
        self
    }
}
