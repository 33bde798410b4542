//! `medas`: the command-line front end. Each subcommand is a thin adapter over a library crate.

mod cache;
mod convert;
mod dataset;
mod info;
mod model;
mod predict;
mod progress;
mod run;
mod tools;
mod train;
mod validate;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "medas", version, about = "MEDAS: medical image deep-learning platform")]
struct Cli {
    /// Log filter (e.g. `info`, `medas_io=debug`); also read from MEDAS_LOG.
    #[arg(long, global = true)]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe an image file or folder: format, size, voxel type, geometry, intensity range,
    /// modality, and the DICOM series a folder holds.
    Info(info::InfoArgs),
    /// Convert an image between formats (NIfTI, DICOM, MetaImage, NRRD, NumPy, PNG/TIFF, ...),
    /// chosen by the output's extension; a folder output becomes a DICOM series.
    Convert(convert::ConvertArgs),
    /// The tool catalog: `medas tools list`, `medas tools show ID` (add `--json` for the
    /// machine-readable specs).
    #[command(subcommand)]
    Tools(tools::ToolsCommand),
    /// Run one tool: `medas tool run ID --in PORT=PATH --set PARAM=VALUE --out PORT=PATH`.
    #[command(subcommand)]
    Tool(tools::ToolCommand),
    /// Check a pipeline document against the tool catalog; lists every problem, each naming
    /// the node and the field.
    Validate(validate::ValidateArgs),
    /// Run a pipeline: `medas run PIPELINE --set node.param=value --out DIR`. Results are
    /// cached, so a re-run recomputes only what a changed setting affects.
    Run(run::RunArgs),
    /// The node cache of `medas run`: `medas cache info`, `medas cache clear`.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Datasets: `medas dataset import PATH`, `list`, `show NAME[@vN]`, `split NAME --kind kfold`.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Train a network on a dataset: `medas train NAME[@vN] --config train.json --out RUN`
    /// (checkpoints, metrics.jsonl; `--resume` goes on after a stop).
    Train(train::TrainArgs),
    /// The model store: `medas model list`, `show NAME`, `delete NAME`,
    /// `import NAME --config net.json --weights w.safetensors [--pytorch]`.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Predict label maps with a stored model: `medas predict MODEL --input IMAGE... --out DIR`
    /// or `--dataset NAME[@vN] [--split S --fold N | --cases a,b]`; per-case Dice as JSON.
    Predict(predict::PredictArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let run_log = match &cli.command {
        Command::Run(args) => Some(args.run_dir()),
        _ => None,
    };
    if let Err(error) = init_logging(cli.log.as_deref(), run_log) {
        eprintln!("error: {error:#}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Info(args) => info::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Convert(args) => convert::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Tools(command) => tools::list_or_show(&command).map(|()| ExitCode::SUCCESS),
        Command::Tool(command) => tools::run(&command).map(|()| ExitCode::SUCCESS),
        Command::Validate(args) => validate::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Run(args) => run::run(&args),
        Command::Cache(command) => cache::run(&command).map(|()| ExitCode::SUCCESS),
        Command::Dataset(command) => dataset::run(&command).map(|()| ExitCode::SUCCESS),
        Command::Train(args) => train::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Model(command) => model::run(&command).map(|()| ExitCode::SUCCESS),
        Command::Predict(args) => predict::run(&args).map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {error:#}");
        ExitCode::FAILURE
    })
}

/// Human-readable logs on stderr (warnings by default); for a run, also every record at info
/// level and above as JSON lines in `<run folder>/log.jsonl`. Run events are drawn by the run
/// display, so they stay off the terminal unless a filter asks for them.
fn init_logging(filter: Option<&str>, run_dir: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};
    let given = filter.map(str::to_string).or_else(|| std::env::var("MEDAS_LOG").ok());
    let terminal_filter = given.unwrap_or_else(|| "warn,medas::run=off".to_string());
    let terminal = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .without_time()
        .with_filter(EnvFilter::new(terminal_filter));
    let file = match run_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot make the run folder {}: {e}", dir.display()))?;
            let path = dir.join("log.jsonl");
            let log = std::fs::File::create(&path).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            Some(tracing_subscriber::fmt::layer().json().with_writer(std::sync::Mutex::new(log)).with_filter(EnvFilter::new("info")))
        }
        None => None,
    };
    tracing_subscriber::registry().with(terminal).with(file).init();
    Ok(())
}

/// Paths shown to users are as they typed them.
pub(crate) fn shown(path: &std::path::Path) -> String {
    path.display().to_string()
}

/// Writes to standard output; a closed pipe (`medas tools list | head`) ends quietly instead
/// of panicking as `println!` would.
pub(crate) fn emit(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
