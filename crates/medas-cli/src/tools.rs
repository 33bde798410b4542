//! `medas tools list|show` (the catalog, as text or JSON) and `medas tool run` (one tool on
//! files: inputs through the plug, outputs through the slot).

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use medas_tools::{Inputs, ParamKind, Params, Registry, ToolSpec, load_input, run_tool, save_output};
use std::path::Path;

#[derive(Subcommand)]
pub enum ToolsCommand {
    /// List every tool, grouped by category.
    List {
        /// Print the full machine-readable specs (with JSON Schema of the parameters).
        #[arg(long)]
        json: bool,
    },
    /// Show one tool: its doc, parameters and ports.
    Show {
        /// Tool id, e.g. `io.read_image`.
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ToolCommand {
    /// Run one tool on files: `--in PORT=PATH`, `--set PARAM=VALUE`, `--out PORT=PATH`.
    Run(RunArgs),
}

#[derive(Args)]
pub struct RunArgs {
    /// Tool id, e.g. `io.read_image`.
    id: String,
    /// Input port and the file it reads, e.g. `--in image=ct.nii.gz` (repeatable).
    #[arg(long = "in", value_name = "PORT=PATH")]
    inputs: Vec<String>,
    /// Parameter value, e.g. `--set width=400` (repeatable).
    #[arg(long = "set", value_name = "PARAM=VALUE")]
    params: Vec<String>,
    /// Output port and where to save it, e.g. `--out image=out.nii.gz` (repeatable).
    #[arg(long = "out", value_name = "PORT=PATH")]
    outputs: Vec<String>,
}

pub fn list_or_show(command: &ToolsCommand) -> Result<()> {
    let registry = Registry::global();
    match command {
        ToolsCommand::List { json: true } => {
            let specs: Vec<_> = registry.specs().into_iter().map(ToolSpec::to_json).collect();
            crate::emit(&(serde_json::to_string_pretty(&specs)? + "\n"))?;
        }
        ToolsCommand::List { json: false } => {
            let lines: Vec<String> =
                registry.specs().iter().map(|s| format!("{:<28} {:<12} {}\n", s.id, category(s), s.title)).collect();
            crate::emit(&lines.concat())?;
        }
        ToolsCommand::Show { id, json } => {
            let spec = registry.get(id)?.spec();
            if *json {
                crate::emit(&(serde_json::to_string_pretty(&spec.to_json())? + "\n"))?;
            } else {
                crate::emit(&describe(spec))?;
            }
        }
    }
    Ok(())
}

fn category(spec: &ToolSpec) -> String {
    serde_json::to_value(spec.category).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// The text of `medas tools show`.
fn describe(spec: &ToolSpec) -> String {
    let mut text = format!("{} (v{}, {}): {}\n\n{}\n", spec.id, spec.version, category(spec), spec.title, spec.doc);
    if !spec.params.is_empty() {
        text.push_str("\nparameters:\n");
    }
    for p in &spec.params {
        let default = p.default.as_ref().map(|d| format!(" = {d}")).unwrap_or_else(|| " (required)".into());
        let unit = p.unit.as_ref().map(|u| format!(" [{u}]")).unwrap_or_default();
        let tunable = if p.tunable { " (tunable)" } else { "" };
        text.push_str(&format!("  {}: {}{default}{unit}{tunable}\n      {}\n", p.name, kind(&p.kind), p.doc));
    }
    for (title, ports) in [("inputs", &spec.inputs), ("outputs", &spec.outputs)] {
        if !ports.is_empty() {
            text.push_str(&format!("\n{title}:\n"));
        }
        for port in ports {
            let optional = if port.optional { " (optional)" } else { "" };
            text.push_str(&format!("  {}: {}{optional}\n      {}\n", port.name, port.port_type.name(), port.doc));
        }
    }
    text
}

fn kind(kind: &ParamKind) -> String {
    let bounds = |min: Option<String>, max: Option<String>| match (min, max) {
        (None, None) => String::new(),
        (min, max) => format!(" in [{}, {}]", min.unwrap_or("-inf".into()), max.unwrap_or("inf".into())),
    };
    match kind {
        ParamKind::Int { min, max } => format!("int{}", bounds(min.map(|v| v.to_string()), max.map(|v| v.to_string()))),
        ParamKind::Float { min, max } => format!("float{}", bounds(min.map(|v| v.to_string()), max.map(|v| v.to_string()))),
        ParamKind::Bool => "bool".into(),
        ParamKind::Enum { choices } => format!("one of {}", choices.join("|")),
        ParamKind::String => "string".into(),
        ParamKind::Path => "path".into(),
        ParamKind::List { item, .. } => format!("list of {}", self::kind(item)),
    }
}

pub fn run(command: &ToolCommand) -> Result<()> {
    let ToolCommand::Run(args) = command;
    let tool = Registry::global().get(&args.id)?;
    let spec = tool.spec();
    let given = Params::assignments(args.params.iter().map(String::as_str)).map_err(anyhow::Error::msg)?;
    let mut inputs = Inputs::new();
    for pair in &args.inputs {
        let (port, path) = split(pair, "--in")?;
        let data = load_input(spec, port, path).with_context(|| format!("reading input {port:?}"))?;
        inputs.insert(port.to_string(), data);
    }
    let wanted: Vec<(&str, &str)> = args.outputs.iter().map(|p| split(p, "--out")).collect::<Result<_>>()?;
    if let Some((port, _)) = wanted.iter().find(|(port, _)| spec.output_spec(port).is_none()) {
        let ports: Vec<&str> = spec.outputs.iter().map(|p| p.name.as_str()).collect();
        bail!("{}: {port:?} is not an output (outputs: {ports:?})", spec.id);
    }
    let outputs = run_tool(tool.as_ref(), inputs, &given)?;
    for (port, path) in wanted {
        save_output(spec, port, &outputs[port], Path::new(path))?;
        eprintln!("{port} -> {path}");
    }
    Ok(())
}

fn split<'a>(pair: &'a str, flag: &str) -> Result<(&'a str, &'a str)> {
    match pair.split_once('=') {
        Some((port, path)) if !port.is_empty() && !path.is_empty() => Ok((port, path)),
        _ => bail!("{flag} {pair:?}: expected PORT=PATH"),
    }
}
