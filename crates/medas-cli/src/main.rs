//! `medas`: the command-line front end. Each subcommand is a thin adapter over a library crate.

mod convert;
mod info;
mod progress;
mod tools;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log.as_deref());
    let result = match cli.command {
        Command::Info(args) => info::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Tools(command) => tools::list_or_show(&command),
        Command::Tool(command) => tools::run(&command),
        Command::Validate(args) => validate::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: Option<&str>) {
    let filter = filter
        .map(str::to_string)
        .or_else(|| std::env::var("MEDAS_LOG").ok())
        .unwrap_or_else(|| "warn".to_string());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .without_time()
        .init();
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
