//! A validated, bound pipeline turned into what the executor walks: each node with its tool,
//! resolved parameters, where each input comes from and which nodes wait on it.

use crate::document::Pipeline;
use crate::validate::{Problem, validate};
use medas_tools::{Params, Registry, Tool};
use std::sync::Arc;

pub(crate) struct PlannedNode {
    pub id: String,
    pub tool: Arc<dyn Tool>,
    pub params: Params,
    /// (input port, upstream node index, upstream output port).
    pub inputs: Vec<(String, usize, String)>,
    /// Nodes fed by this one (each once).
    pub dependents: Vec<usize>,
}

pub(crate) struct Plan {
    pub nodes: Vec<PlannedNode>,
}

impl Plan {
    /// Checks the pipeline and resolves every node; all problems at once.
    pub fn new(pipeline: &Pipeline, registry: &Registry) -> Result<Plan, Vec<Problem>> {
        let problems = validate(pipeline, registry);
        if !problems.is_empty() {
            return Err(problems);
        }
        let index = |id: &str| pipeline.nodes.iter().position(|n| n.id == id).expect("validated edge end");
        let mut nodes = Vec::with_capacity(pipeline.nodes.len());
        for node in &pipeline.nodes {
            let tool = registry.get(&node.tool).expect("validated tool").clone();
            let params = Params::resolve(tool.spec(), &node.params).expect("validated parameters");
            nodes.push(PlannedNode { id: node.id.clone(), tool, params, inputs: Vec::new(), dependents: Vec::new() });
        }
        for edge in &pipeline.edges {
            let (from, to) = (index(&edge.from.node), index(&edge.to.node));
            nodes[to].inputs.push((edge.to.port.clone(), from, edge.from.port.clone()));
            if !nodes[from].dependents.contains(&to) {
                nodes[from].dependents.push(to);
            }
        }
        Ok(Plan { nodes })
    }

    /// Number of distinct upstream nodes of `node`.
    pub fn upstream_count(&self, node: usize) -> usize {
        let mut upstream: Vec<usize> = self.nodes[node].inputs.iter().map(|(_, from, _)| *from).collect();
        upstream.sort_unstable();
        upstream.dedup();
        upstream.len()
    }

    /// Every node downstream of `node`, transitively.
    pub fn downstream(&self, node: usize) -> Vec<usize> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = self.nodes[node].dependents.clone();
        let mut found = Vec::new();
        while let Some(next) = stack.pop() {
            if !std::mem::replace(&mut seen[next], true) {
                found.push(next);
                stack.extend(&self.nodes[next].dependents);
            }
        }
        found
    }

    /// How many edges read output `port` of `node` (to drop in-memory values once all have).
    pub fn readers(&self, node: usize, port: &str) -> usize {
        self.nodes.iter().flat_map(|n| &n.inputs).filter(|(_, from, p)| *from == node && p == port).count()
    }
}
