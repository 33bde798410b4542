//! Validation of a pipeline document against the tool registry: every problem at once, each
//! naming the node and the field (tool, parameter, input, edge).

use crate::document::{Edge, Pipeline};
use medas_tools::{Params, Registry, ToolError, ToolSpec};
use std::collections::{BTreeMap, BTreeSet};

/// One thing wrong with a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The node at fault; empty for the pipeline's own parameters and settings.
    pub node: String,
    /// `tool`, `parameter "x"`, `input "x"`, `edge a.x -> b.y`, `id`.
    pub field: String,
    pub message: String,
}

impl Problem {
    /// A problem of the pipeline as a whole (its parameters, a `--set`).
    pub fn pipeline(field: impl Into<String>, message: impl Into<String>) -> Problem {
        problem("", field, message)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.node.as_str() {
            "" => write!(f, "pipeline, {}: {}", self.field, self.message),
            node => write!(f, "node {node:?}, {}: {}", self.field, self.message),
        }
    }
}

impl std::error::Error for Problem {}

fn problem(node: &str, field: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem { node: node.into(), field: field.into(), message: message.into() }
}

/// Every problem of `pipeline`; empty when it can run.
pub fn validate(pipeline: &Pipeline, registry: &Registry) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut specs: BTreeMap<&str, &ToolSpec> = BTreeMap::new();
    for node in &pipeline.nodes {
        if specs.keys().any(|id| *id == node.id) || node.id.contains('.') || node.id.is_empty() {
            let why = if node.id.contains('.') || node.id.is_empty() { "must be non-empty without '.'" } else { "is used by two nodes" };
            problems.push(problem(&node.id, "id", format!("the node id {why}")));
            continue;
        }
        match registry.get(&node.tool) {
            Ok(tool) => {
                specs.insert(&node.id, tool.spec());
                problems.extend(parameter_problems(pipeline, &node.id, tool.spec(), &node.params));
            }
            Err(error) => problems.push(problem(&node.id, "tool", error.to_string())),
        }
    }
    problems.extend(pipeline_param_problems(pipeline, &specs));
    let connected = edge_problems(pipeline, &specs, &mut problems);
    for (node, spec) in &specs {
        for port in spec.inputs.iter().filter(|p| !p.optional) {
            if !connected.contains(&(node.to_string(), port.name.clone())) {
                problems.push(problem(node, format!("input {:?}", port.name), "is not connected"));
            }
        }
    }
    if let Some(cycle) = find_cycle(pipeline, &specs) {
        problems.push(problem(&cycle[0], "edges", format!("the nodes form a cycle: {}", cycle.join(" -> "))));
    }
    problems
}

/// The node's parameters as a run would see them: its own, then the defaults of pipeline
/// parameters targeting it. A parameter fed by a pipeline input without default is given at
/// run time, so its absence is no problem here.
fn parameter_problems(
    pipeline: &Pipeline,
    node: &str,
    spec: &ToolSpec,
    given: &serde_json::Map<String, serde_json::Value>,
) -> Vec<Problem> {
    let mut given = given.clone();
    for param in &spec.params {
        for (_, feeder) in pipeline.params_targeting(node, &param.name) {
            if let Some(default) = &feeder.default {
                given.entry(param.name.clone()).or_insert_with(|| default.clone());
            }
        }
    }
    let issues = match Params::resolve(spec, &given) {
        Ok(_) => Vec::new(),
        Err(ToolError::Param { param, problem, .. }) => vec![medas_tools::ParamIssue { param, problem }],
        Err(ToolError::Params { problems, .. }) => problems,
        Err(other) => return vec![problem(node, "parameters", other.to_string())],
    };
    issues
        .into_iter()
        .filter(|issue| {
            !(issue.problem == medas_tools::ParamProblem::Missing
                && pipeline.params_targeting(node, &issue.param).next().is_some())
        })
        .map(|issue| problem(node, format!("parameter {:?}", issue.param), issue.problem.to_string()))
        .collect()
}

/// Each pipeline parameter must target existing parameters of existing nodes.
fn pipeline_param_problems(pipeline: &Pipeline, specs: &BTreeMap<&str, &ToolSpec>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, param) in &pipeline.params {
        let field = format!("parameter {name:?}");
        if param.targets.is_empty() {
            problems.push(Problem::pipeline(&field, "has no targets (NODE.PARAM)"));
        }
        for target in &param.targets {
            match specs.get(target.node.as_str()) {
                None if pipeline.node(&target.node).is_none() => {
                    problems.push(Problem::pipeline(&field, format!("targets {target}, but there is no node {:?}", target.node)))
                }
                None => {} // the node's unknown tool is reported on the node
                Some(spec) if spec.param_spec(&target.param).is_none() => problems
                    .push(Problem::pipeline(&field, format!("targets {target}, but {} has no parameter {:?}", spec.id, target.param))),
                Some(_) => {}
            }
        }
    }
    problems
}

/// Checks each edge's ends and types; returns the (node, input) pairs that are fed.
fn edge_problems(
    pipeline: &Pipeline,
    specs: &BTreeMap<&str, &ToolSpec>,
    problems: &mut Vec<Problem>,
) -> BTreeSet<(String, String)> {
    let mut fed = BTreeSet::new();
    for Edge { from, to } in &pipeline.edges {
        let field = format!("edge {from} -> {to}");
        let known = |node: &str| pipeline.node(node).is_some();
        let (Some(source), Some(target)) = (specs.get(from.node.as_str()), specs.get(to.node.as_str())) else {
            for end in [from, to].into_iter().filter(|end| !known(&end.node)) {
                problems.push(problem(&to.node, &field, format!("there is no node {:?}", end.node)));
            }
            continue; // an end whose tool is unknown is reported on its node
        };
        let output = source.output_spec(&from.port);
        let input = target.input_spec(&to.port);
        if output.is_none() {
            problems.push(problem(&from.node, &field, format!("{} has no output {:?} (outputs: {})", source.id, from.port, names(&source.outputs))));
        }
        if input.is_none() {
            problems.push(problem(&to.node, &field, format!("{} has no input {:?} (inputs: {})", target.id, to.port, names(&target.inputs))));
        }
        let (Some(output), Some(input)) = (output, input) else { continue };
        if !input.port_type.accepts(output.port_type) {
            let what = format!("{} output {from} cannot feed {} input {to}", output.port_type.name(), input.port_type.name());
            problems.push(problem(&to.node, &field, what));
        }
        if !fed.insert((to.node.clone(), to.port.clone())) {
            problems.push(problem(&to.node, format!("input {:?}", to.port), "is connected more than once"));
        }
    }
    fed
}

fn names(ports: &[medas_tools::PortSpec]) -> String {
    let list: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    if list.is_empty() { "none".into() } else { list.join(", ") }
}

/// A cycle among the nodes (through edges between known nodes), as node ids with the first
/// repeated at the end; `None` when the graph is acyclic.
fn find_cycle(pipeline: &Pipeline, specs: &BTreeMap<&str, &ToolSpec>) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for edge in &pipeline.edges {
        if specs.contains_key(edge.from.node.as_str()) && specs.contains_key(edge.to.node.as_str()) {
            next.entry(edge.from.node.as_str()).or_default().push(edge.to.node.as_str());
        }
    }
    // Depth-first search with colours: 1 = on the current path, 2 = finished.
    let mut colour: BTreeMap<&str, u8> = BTreeMap::new();
    for &start in specs.keys() {
        if colour.contains_key(start) {
            continue;
        }
        let mut path: Vec<(&str, usize)> = vec![(start, 0)];
        colour.insert(start, 1);
        while let Some((node, child)) = path.last().copied() {
            let children = next.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(&target) = children.get(child) {
                path.last_mut().expect("non-empty").1 += 1;
                match colour.get(target) {
                    Some(1) => {
                        let at = path.iter().position(|(n, _)| *n == target).expect("on the path");
                        let mut cycle: Vec<String> = path[at..].iter().map(|(n, _)| n.to_string()).collect();
                        cycle.push(target.to_string());
                        return Some(cycle);
                    }
                    Some(_) => {}
                    None => {
                        colour.insert(target, 1);
                        path.push((target, 0));
                    }
                }
            } else {
                colour.insert(node, 2);
                path.pop();
            }
        }
    }
    None
}
