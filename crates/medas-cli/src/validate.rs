//! `medas validate PIPELINE`: every problem of a pipeline document, each naming node and field.

use anyhow::{Result, bail};
use clap::Args;
use medas_pipeline::{Pipeline, validate};
use medas_tools::Registry;
use std::path::PathBuf;

#[derive(Args)]
pub struct ValidateArgs {
    /// The pipeline document (JSON).
    pipeline: PathBuf,
}

pub fn run(args: &ValidateArgs) -> Result<()> {
    let pipeline = Pipeline::load(&args.pipeline)?;
    let problems = validate(&pipeline, Registry::global());
    if problems.is_empty() {
        let edges = pipeline.edges.len();
        crate::emit(&format!("{}: valid ({} nodes, {edges} edges)\n", crate::shown(&args.pipeline), pipeline.nodes.len()))?;
        return Ok(());
    }
    let lines: Vec<String> = problems.iter().map(|p| format!("  {p}\n")).collect();
    eprint!("{}", lines.concat());
    bail!("{}: {} problem(s)", crate::shown(&args.pipeline), problems.len())
}
