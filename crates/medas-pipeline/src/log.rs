//! Run events as `tracing` records, so that the terminal and the run folder's JSON-lines log
//! (set up by the front end) see the same story. Progress goes at debug level: it is many.

use crate::report::Event;

pub(crate) fn event(event: &Event) {
    const TARGET: &str = "medas::run";
    match event {
        Event::RunStarted { pipeline, nodes } => tracing::info!(target: TARGET, pipeline, nodes = nodes.len(), "run started"),
        Event::NodeStarted { node, tool } => tracing::info!(target: TARGET, node, tool, "node started"),
        Event::NodeProgress { node, fraction } => tracing::debug!(target: TARGET, node, fraction, "progress"),
        Event::NodeLog { node, line } => tracing::info!(target: TARGET, node, "{line}"),
        Event::NodeFinished { node, seconds, cache_hit } => tracing::info!(target: TARGET, node, seconds, cache_hit, "node finished"),
        Event::NodeFailed { node, error } => tracing::error!(target: TARGET, node, error, "node failed"),
        Event::NodeSkipped { node, because } => tracing::warn!(target: TARGET, node, because, "node skipped"),
        Event::NodeCancelled { node } => tracing::warn!(target: TARGET, node, "node cancelled"),
        Event::RunFinished { status, seconds } => tracing::info!(target: TARGET, status = ?status, seconds, "run finished"),
    }
}
