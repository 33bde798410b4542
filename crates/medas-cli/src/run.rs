//! `medas run PIPELINE [--set KEY=VALUE]… [--out DIR]`: runs a pipeline with a progress bar
//! per running node, a line per finished node and a summary table; Ctrl-C cancels.

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use medas_pipeline::{Event, Manifest, NodeStatus, Pipeline, RunOptions, RunStatus, bind, default_cache_dir};
use medas_tools::{Params, Registry};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

#[derive(Args)]
pub struct RunArgs {
    /// The pipeline document (JSON).
    pipeline: PathBuf,
    /// `NODE.PARAM=VALUE` for one node, or `NAME=VALUE` for a pipeline parameter (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// The run folder: manifest.json, pipeline.json, log.jsonl and nodes/<id>/ outputs
    /// [default: runs/<pipeline file name>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Cache folder [default: $MEDAS_CACHE, else ~/.cache/medas/nodes].
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Compute every node, reading and writing no cache.
    #[arg(long, conflicts_with = "cache")]
    no_cache: bool,
    /// Nodes run at once at most [default: the number of cores].
    #[arg(long)]
    jobs: Option<usize>,
    /// Print each event as a JSON line on stdout (for programs) instead of bars and a table.
    #[arg(long)]
    json: bool,
}

impl RunArgs {
    /// Where the run goes; `main` opens the JSON-lines log there before the run starts.
    pub fn run_dir(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            let stem = self.pipeline.file_stem().map_or("pipeline".into(), |s| s.to_string_lossy().into_owned());
            PathBuf::from("runs").join(stem)
        })
    }
}

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    let pipeline = Pipeline::load(&args.pipeline)?;
    let settings = Params::assignments(args.settings.iter().map(String::as_str)).map_err(anyhow::Error::msg)?;
    let bound = match bind(&pipeline, &settings.into_iter().collect::<Vec<_>>()) {
        Ok(bound) => bound,
        Err(problems) => {
            problems.iter().for_each(|p| eprintln!("  {p}"));
            bail!("{}: {} problem(s) with the settings", crate::shown(&args.pipeline), problems.len());
        }
    };
    let mut options = RunOptions::new(args.run_dir());
    options.cache_dir = if args.no_cache { None } else { Some(args.cache.clone().unwrap_or_else(default_cache_dir)) };
    if let Some(jobs) = args.jobs {
        options.parallel_nodes = jobs.max(1);
    }
    let cancel = options.cancel.clone();
    // A second Ctrl-C while the first is being honoured ends the process the usual way.
    let _ = ctrlc::set_handler(move || {
        if cancel.is_cancelled() {
            std::process::exit(130);
        }
        eprintln!("cancelling (Ctrl-C again to quit at once)...");
        cancel.cancel();
    });

    let display = Display::new(args.json);
    let manifest = match medas_pipeline::run(&bound, Registry::global(), &options, &|event| display.show(event)) {
        Ok(manifest) => manifest,
        Err(medas_pipeline::RunError::Invalid(problems)) => {
            problems.iter().for_each(|p| eprintln!("  {p}"));
            bail!("{}: {} problem(s)", crate::shown(&args.pipeline), problems.len());
        }
        Err(other) => return Err(other.into()),
    };
    if !args.json {
        crate::emit(&summary(&manifest))?;
        crate::emit(&format!("run folder: {}\n", crate::shown(&options.run_dir)))?;
    }
    Ok(match manifest.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Cancelled => ExitCode::from(130),
        RunStatus::Failed | RunStatus::Running => ExitCode::FAILURE,
    })
}

/// Bars for running nodes and a line per finished one, on stderr; or JSON lines on stdout.
struct Display {
    json: bool,
    terminal: bool,
    bars: MultiProgress,
    running: Mutex<HashMap<String, ProgressBar>>,
}

impl Display {
    fn new(json: bool) -> Display {
        let terminal = !json && std::io::stderr().is_terminal();
        let target = if terminal { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        Display { json, terminal, bars: MultiProgress::with_draw_target(target), running: Mutex::new(HashMap::new()) }
    }

    fn line(&self, text: String) {
        if self.terminal {
            let _ = self.bars.println(text);
        } else {
            eprintln!("{text}");
        }
    }

    fn show(&self, event: &Event) {
        if self.json {
            let _ = crate::emit(&format!("{}\n", serde_json::to_string(event).expect("events serialise")));
            return;
        }
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::RunStarted { .. } | Event::RunFinished { .. } => {}
            Event::NodeStarted { node, tool } => {
                let bar = self.bars.add(ProgressBar::new(1000));
                bar.set_style(ProgressStyle::with_template("{prefix:>14} [{bar:30}] {percent:>3}% {msg}").expect("static template").progress_chars("=> "));
                bar.set_prefix(node.clone());
                bar.set_message(tool.clone());
                running.insert(node.clone(), bar);
            }
            Event::NodeProgress { node, fraction } => {
                if let Some(bar) = running.get(node) {
                    bar.set_position((fraction * 1000.0) as u64);
                }
            }
            Event::NodeLog { node, line } => self.line(format!("{node:>14}: {line}")),
            Event::NodeFinished { node, seconds, cache_hit } => {
                finish(running.remove(node));
                let how = if *cache_hit { "cached" } else { "done" };
                self.line(format!("{node:>14}  {how} in {seconds:.2} s"));
            }
            Event::NodeFailed { node, error } => {
                finish(running.remove(node));
                self.line(format!("{node:>14}  FAILED: {error}"));
            }
            Event::NodeSkipped { node, because } => self.line(format!("{node:>14}  skipped: {because} did not succeed")),
            Event::NodeCancelled { node } => {
                finish(running.remove(node));
                self.line(format!("{node:>14}  cancelled"));
            }
        }
    }
}

fn finish(bar: Option<ProgressBar>) {
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

/// The table after a run: node, tool, status, time, cache.
fn summary(manifest: &Manifest) -> String {
    let rows: Vec<[String; 5]> = manifest
        .nodes
        .iter()
        .map(|n| {
            let status = serde_json::to_value(n.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            let cache = match (n.status, n.cache_hit) {
                (NodeStatus::Succeeded, true) => "hit",
                (NodeStatus::Succeeded, false) => "computed",
                _ => "-",
            };
            let time = if n.status == NodeStatus::Succeeded || n.status == NodeStatus::Failed { format!("{:.2} s", n.seconds) } else { "-".into() };
            [n.id.clone(), n.tool.clone(), status, time, cache.into()]
        })
        .collect();
    let header = ["node", "tool", "status", "time", "cache"].map(String::from);
    let widths: Vec<usize> = (0..5).map(|c| rows.iter().chain([&header]).map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let format_row = |row: &[String; 5]| {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        format!("{}\n", cells.join("  ").trim_end())
    };
    let mut text = format_row(&header);
    rows.iter().for_each(|row| text.push_str(&format_row(row)));
    let status = serde_json::to_value(manifest.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    text.push_str(&format!("{status} in {:.2} s\n", manifest.seconds));
    text
}
