//! Binding a document for a run: pipeline parameters (given with `--set name=value` or
//! defaulted) and direct `--set node.param=value` overrides written into the nodes.

use crate::document::{ParamRef, Pipeline};
use crate::validate::Problem;
use serde_json::Value;

/// The pipeline with every setting written into its nodes. `settings` are `(key, value)`
/// pairs: `node.param` sets one node parameter (after the pipeline parameters, so it wins);
/// a bare name sets a pipeline parameter. Every unknown key and every required pipeline
/// parameter left without a value is reported.
pub fn bind(pipeline: &Pipeline, settings: &[(String, Value)]) -> Result<Pipeline, Vec<Problem>> {
    let mut bound = pipeline.clone();
    let mut problems = Vec::new();
    let mut values: Vec<(String, Value)> =
        pipeline.params.iter().filter_map(|(name, p)| Some((name.clone(), p.default.clone()?))).collect();
    let mut overrides = Vec::new();
    for (key, value) in settings {
        if key.contains('.') {
            match ParamRef::try_from(key.clone()) {
                Ok(target) if pipeline.node(&target.node).is_some() => overrides.push((target, value.clone())),
                Ok(target) => problems.push(Problem::pipeline(format!("--set {key}"), format!("there is no node {:?}", target.node))),
                Err(message) => problems.push(Problem::pipeline(format!("--set {key}"), message)),
            }
        } else if pipeline.params.contains_key(key) {
            values.retain(|(name, _)| name != key);
            values.push((key.clone(), value.clone()));
        } else {
            let known: Vec<&str> = pipeline.params.keys().map(String::as_str).collect();
            let message = format!("no pipeline parameter {key:?} (pipeline parameters: {known:?}; a node parameter is NODE.PARAM)");
            problems.push(Problem::pipeline(format!("--set {key}"), message));
        }
    }
    for (name, param) in &pipeline.params {
        let Some((_, value)) = values.iter().find(|(n, _)| n == name) else {
            problems.push(Problem::pipeline(format!("parameter {name:?}"), format!("is a required input; give it with --set {name}=VALUE")));
            continue;
        };
        for target in &param.targets {
            // A target naming no node is reported by validation.
            if let Some(node) = bound.node_mut(&target.node) {
                node.params.insert(target.param.clone(), value.clone());
            }
        }
    }
    for (target, value) in overrides {
        if let Some(node) = bound.node_mut(&target.node) {
            node.params.insert(target.param, value);
        }
    }
    if problems.is_empty() { Ok(bound) } else { Err(problems) }
}
