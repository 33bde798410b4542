//! What a running tool may ask of whoever runs it: report progress and log lines, notice
//! cancellation, and know where relative output paths go.

use crate::error::ToolError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A cancellation flag shared between the one who cancels and the work that checks it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

type ProgressSink<'a> = &'a (dyn Fn(f64) + Sync);
type LogSink<'a> = &'a (dyn Fn(&str) + Sync);

/// Handed to [`Tool::run`](crate::Tool::run). A tool that works for long reports its progress
/// and calls [`Context::check_cancelled`] between steps so that a cancel takes effect soon.
pub struct Context<'a> {
    progress: ProgressSink<'a>,
    log: LogSink<'a>,
    cancel: Option<&'a CancelToken>,
    work_dir: Option<&'a Path>,
}

impl Default for Context<'_> {
    /// Runs on its own: progress and log lines dropped, never cancelled, paths as given.
    fn default() -> Self {
        Context { progress: &|_| {}, log: &|_| {}, cancel: None, work_dir: None }
    }
}

impl<'a> Context<'a> {
    pub fn new(progress: ProgressSink<'a>, log: LogSink<'a>, cancel: &'a CancelToken, work_dir: Option<&'a Path>) -> Self {
        Context { progress, log, cancel: Some(cancel), work_dir }
    }

    /// Reports the fraction done, 0 to 1 (clamped).
    pub fn progress(&self, fraction: f64) {
        (self.progress)(if fraction.is_nan() { 0.0 } else { fraction.clamp(0.0, 1.0) });
    }

    /// A line for the run's log, shown beside the node in every front end.
    pub fn log(&self, line: &str) {
        (self.log)(line);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_some_and(CancelToken::is_cancelled)
    }

    /// `Err(ToolError::Cancelled)` once the run has been cancelled, for `?` between steps.
    pub fn check_cancelled(&self, tool: &str) -> Result<(), ToolError> {
        if self.is_cancelled() { Err(ToolError::Cancelled { tool: tool.into() }) } else { Ok(()) }
    }

    /// Where a relative output path given to a tool lands: inside the run folder when running
    /// in a pipeline, as given otherwise.
    pub fn output_path(&self, path: &Path) -> PathBuf {
        match self.work_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }
}
