//! The registry: every tool linked into the program, found through `inventory`, so that a tool
//! module registers itself and no list of tools is kept by hand.

use crate::context::Context;
use crate::data::{Inputs, Outputs};
use crate::error::ToolError;
use crate::params::Params;
use crate::spec::ToolSpec;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// A runnable tool: its spec and its work.
pub trait Tool: Send + Sync {
    fn spec(&self) -> &ToolSpec;

    /// Runs on `inputs` (already coerced to the port types) with resolved `params`, returning
    /// one value per output port. `context` takes progress and log lines and says whether
    /// the run was cancelled.
    fn run(&self, inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError>;
}

/// What a tool module submits: a constructor of the tool.
pub struct ToolEntry {
    pub build: fn() -> Arc<dyn Tool>,
}

inventory::collect!(ToolEntry);

/// Every registered tool, by id.
pub struct Registry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl Registry {
    /// The tools linked into this program (built once).
    pub fn global() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            let mut tools = BTreeMap::new();
            for entry in inventory::iter::<ToolEntry> {
                let tool = (entry.build)();
                let id = tool.spec().id.clone();
                assert!(tools.insert(id.clone(), tool).is_none(), "two tools registered as {id}");
            }
            Registry { tools }
        })
    }

    /// A registry of just `tools` (tests, embedders that want a restricted catalog).
    pub fn from_tools(tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Registry {
        Registry { tools: tools.into_iter().map(|tool| (tool.spec().id.clone(), tool)).collect() }
    }

    pub fn get(&self, id: &str) -> Result<&Arc<dyn Tool>, ToolError> {
        self.tools.get(id).ok_or_else(|| ToolError::UnknownTool(id.to_string()))
    }

    /// Specs sorted by category, then id.
    pub fn specs(&self) -> Vec<&ToolSpec> {
        let mut specs: Vec<&ToolSpec> = self.tools.values().map(|t| t.spec()).collect();
        specs.sort_by(|a, b| (a.category, &a.id).cmp(&(b.category, &b.id)));
        specs
    }
}

/// Runs `tool` the checked way every front end uses: parameters resolved against the spec
/// (text coerced, defaults filled, all problems at once), inputs checked against the ports,
/// and every declared output present afterwards.
pub fn run_tool(
    tool: &dyn Tool,
    inputs: Inputs,
    given: &serde_json::Map<String, serde_json::Value>,
) -> Result<Outputs, ToolError> {
    let params = Params::resolve(tool.spec(), given)?;
    run_resolved(tool, inputs, &params, &Context::default())
}

/// [`run_tool`] with parameters already resolved and a context from the caller (the
/// pipeline executor).
pub fn run_resolved(tool: &dyn Tool, inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
    let spec = tool.spec();
    crate::data::check_inputs(spec, &inputs)?;
    let inputs = crate::data::cast_to_port_types(spec, inputs);
    let outputs = tool.run(inputs, params, context)?;
    if let Some(port) = spec.outputs.iter().find(|p| !outputs.contains_key(&p.name)) {
        let message = format!("produced no value for output {:?}", port.name);
        return Err(ToolError::Failed { tool: spec.id.clone(), message });
    }
    Ok(outputs)
}
