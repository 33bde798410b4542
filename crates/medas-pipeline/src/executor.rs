//! Runs a pipeline: nodes in dependency order, independent ones in parallel, each result
//! content-addressed in the cache and stored in the run folder with a manifest. A failing
//! node stops only what depends on it (the paper's Either: success flows on, failure
//! short-circuits); cancellation stops what has not started and asks running tools to stop.

use crate::artifact::{self, ArtifactError, ArtifactRecord};
use crate::document::Pipeline;
use crate::plan::Plan;
use crate::report::{Event, Manifest, NodeReport, NodeStatus, RunStatus};
use crate::store::CacheStore;
use crate::validate::Problem;
use medas_tools::{CancelToken, Data, Inputs, Registry};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run folder: `manifest.json`, `pipeline.json` and `nodes/<id>/` outputs go here.
    pub run_dir: PathBuf,
    /// The cache folder; `None` computes everything.
    pub cache_dir: Option<PathBuf>,
    /// Nodes run at once at most (each may use every core inside).
    pub parallel_nodes: usize,
    pub cancel: CancelToken,
}

impl RunOptions {
    /// Caching in the default cache folder, as many nodes at once as there are cores.
    pub fn new(run_dir: impl Into<PathBuf>) -> RunOptions {
        RunOptions {
            run_dir: run_dir.into(),
            cache_dir: Some(crate::store::default_cache_dir()),
            parallel_nodes: std::thread::available_parallelism().map_or(2, |n| n.get()),
            cancel: CancelToken::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the pipeline cannot run: {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
    #[error("cannot use the run folder {}: {source}", .path.display())]
    RunFolder { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] ArtifactError),
}

/// Receives every [`Event`] of a run, from whichever thread runs the node.
pub type EventSink<'a> = &'a (dyn Fn(&Event) + Sync);

/// Runs a bound pipeline (see [`crate::bind`]) and returns its manifest. Node failures are in
/// the manifest, not an `Err`: the error cases are a pipeline that cannot run at all and a
/// run folder or cache that cannot be written.
pub fn run(pipeline: &Pipeline, registry: &Registry, options: &RunOptions, events: EventSink) -> Result<Manifest, RunError> {
    let plan = Plan::new(pipeline, registry).map_err(RunError::Invalid)?;
    let folder_error = |path: &Path, source| RunError::RunFolder { path: path.to_path_buf(), source };
    // A reused run folder must not show another run's node outputs beside this one's.
    let nodes_dir = options.run_dir.join("nodes");
    std::fs::remove_dir_all(&nodes_dir).or_else(ignore_missing).map_err(|e| folder_error(&nodes_dir, e))?;
    std::fs::create_dir_all(&nodes_dir).map_err(|e| folder_error(&options.run_dir, e))?;
    let document = serde_json::to_vec_pretty(pipeline).expect("documents serialise");
    let pipeline_path = options.run_dir.join("pipeline.json");
    std::fs::write(&pipeline_path, document).map_err(|e| folder_error(&pipeline_path, e))?;
    let cache = options.cache_dir.as_deref().map(CacheStore::open).transpose()?;

    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let reports = plan
        .nodes
        .iter()
        .map(|n| NodeReport {
            id: n.id.clone(),
            tool: n.tool.spec().id.clone(),
            version: n.tool.spec().version,
            status: NodeStatus::Pending,
            cache_hit: false,
            cache_key: None,
            seconds: 0.0,
            error: None,
            skipped_because: None,
            outputs: BTreeMap::new(),
        })
        .collect();
    let manifest = Manifest {
        medas_run: 1,
        pipeline: pipeline.name.clone(),
        status: RunStatus::Running,
        started_unix,
        seconds: 0.0,
        cache: options.cache_dir.clone(),
        nodes: reports,
    };
    let waiting_on: Vec<usize> = (0..plan.nodes.len()).map(|i| plan.upstream_count(i)).collect();
    let ready = (0..plan.nodes.len()).filter(|&i| waiting_on[i] == 0).collect();
    let state = State { manifest, waiting_on, ready, running: 0, outputs: vec![BTreeMap::new(); plan.nodes.len()] };
    let run = Run { plan: &plan, options, cache, events, started: Instant::now(), state: Mutex::new(state), wake: Condvar::new() };

    run.emit(&Event::RunStarted { pipeline: pipeline.name.clone(), nodes: plan.nodes.iter().map(|n| n.id.clone()).collect() });
    let workers = options.parallel_nodes.clamp(1, plan.nodes.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| run.work());
        }
    });

    let mut state = run.lock();
    let statuses: Vec<NodeStatus> = state.manifest.nodes.iter().map(|n| n.status).collect();
    state.manifest.status = if statuses.contains(&NodeStatus::Cancelled) {
        RunStatus::Cancelled
    } else if statuses.iter().any(|s| matches!(s, NodeStatus::Failed | NodeStatus::Skipped)) {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    state.manifest.seconds = run.started.elapsed().as_secs_f64();
    run.save_manifest(&state.manifest)?;
    run.emit(&Event::RunFinished { status: state.manifest.status, seconds: state.manifest.seconds });
    Ok(state.manifest.clone())
}

/// An output of a finished node: its record, and its value while a reader still needs it.
struct Output {
    record: ArtifactRecord,
    /// The node's folder in the run folder, where the record's files are.
    dir: PathBuf,
    value: Mutex<Option<Data>>,
    readers_left: AtomicUsize,
}

impl Output {
    /// The value for one reader, loaded from the run folder if it is not in memory; the
    /// last reader lets go of it.
    fn take(&self) -> Result<Data, ArtifactError> {
        let mut value = self.value.lock().unwrap_or_else(|p| p.into_inner());
        let data = match value.as_ref() {
            Some(data) => data.clone(),
            None => artifact::read(&self.dir, &self.record)?,
        };
        // Loaded once from disk, the value stays for the readers still to come (clones share
        // the voxels); the last reader lets go of it.
        if self.readers_left.fetch_sub(1, Ordering::SeqCst) <= 1 {
            *value = None;
        } else if value.is_none() {
            *value = Some(data.clone());
        }
        Ok(data)
    }

    /// A reader that did not need the value (its node was served from the cache).
    fn release(&self) {
        if self.readers_left.fetch_sub(1, Ordering::SeqCst) <= 1 {
            *self.value.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

struct State {
    manifest: Manifest,
    /// Upstream nodes each node still waits for.
    waiting_on: Vec<usize>,
    ready: VecDeque<usize>,
    running: usize,
    outputs: Vec<BTreeMap<String, Arc<Output>>>,
}

struct Run<'a> {
    plan: &'a Plan,
    options: &'a RunOptions,
    cache: Option<CacheStore>,
    events: EventSink<'a>,
    started: Instant,
    state: Mutex<State>,
    wake: Condvar,
}

/// How one node's work ended.
enum Outcome {
    Done { outputs: BTreeMap<String, Arc<Output>>, cache_hit: bool },
    Failed(String),
    Cancelled,
}

impl Run<'_> {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, event: &Event) {
        crate::log::event(event);
        (self.events)(event);
    }

    /// A worker: takes ready nodes until none is left or running.
    fn work(&self) {
        loop {
            let (index, inputs) = {
                let mut state = self.lock();
                let index = loop {
                    if self.options.cancel.is_cancelled() {
                        self.cancel_pending(&mut state);
                    }
                    if let Some(index) = state.ready.pop_front() {
                        break index;
                    }
                    if state.running == 0 {
                        self.wake.notify_all();
                        return;
                    }
                    state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
                };
                state.running += 1;
                state.manifest.nodes[index].status = NodeStatus::Running;
                let inputs: Vec<(String, Arc<Output>)> = self.plan.nodes[index]
                    .inputs
                    .iter()
                    .map(|(port, from, from_port)| (port.clone(), state.outputs[*from][from_port].clone()))
                    .collect();
                (index, inputs)
            };
            let node = &self.plan.nodes[index];
            self.emit(&Event::NodeStarted { node: node.id.clone(), tool: node.tool.spec().id.clone() });
            let clock = Instant::now();
            let (key, outcome) = self.execute(index, inputs);
            self.finish(index, key, outcome, clock.elapsed().as_secs_f64());
        }
    }

    /// Marks every node not yet started as cancelled.
    fn cancel_pending(&self, state: &mut State) {
        state.ready.clear();
        for report in state.manifest.nodes.iter_mut().filter(|n| n.status == NodeStatus::Pending) {
            report.status = NodeStatus::Cancelled;
            self.emit(&Event::NodeCancelled { node: report.id.clone() });
        }
    }

    /// Records how node `index` ended and releases or skips what depends on it.
    fn finish(&self, index: usize, cache_key: Option<String>, outcome: Outcome, seconds: f64) {
        let node_id = self.plan.nodes[index].id.clone();
        let mut state = self.lock();
        state.running -= 1;
        let report = &mut state.manifest.nodes[index];
        report.seconds = seconds;
        report.cache_key = cache_key;
        let event = match outcome {
            Outcome::Done { outputs, cache_hit } => {
                report.status = NodeStatus::Succeeded;
                report.cache_hit = cache_hit;
                report.outputs = outputs.iter().map(|(port, o)| (port.clone(), run_relative(&node_id, &o.record))).collect();
                state.outputs[index] = outputs;
                for &next in &self.plan.nodes[index].dependents {
                    state.waiting_on[next] -= 1;
                    if state.waiting_on[next] == 0 && state.manifest.nodes[next].status == NodeStatus::Pending {
                        state.ready.push_back(next);
                    }
                }
                Event::NodeFinished { node: node_id.clone(), seconds, cache_hit }
            }
            Outcome::Failed(error) => {
                report.status = NodeStatus::Failed;
                report.error = Some(error.clone());
                Event::NodeFailed { node: node_id.clone(), error }
            }
            Outcome::Cancelled => {
                report.status = NodeStatus::Cancelled;
                Event::NodeCancelled { node: node_id.clone() }
            }
        };
        self.emit(&event);
        // Dependents of a failed node are skipped (naming it); of a cancelled one, cancelled.
        let cancelled = matches!(event, Event::NodeCancelled { .. });
        if !matches!(event, Event::NodeFinished { .. }) {
            for next in self.plan.downstream(index) {
                let report = &mut state.manifest.nodes[next];
                if report.status != NodeStatus::Pending {
                    continue;
                }
                if cancelled {
                    report.status = NodeStatus::Cancelled;
                    self.emit(&Event::NodeCancelled { node: report.id.clone() });
                } else {
                    report.status = NodeStatus::Skipped;
                    report.skipped_because = Some(node_id.clone());
                    self.emit(&Event::NodeSkipped { node: report.id.clone(), because: node_id.clone() });
                }
            }
        }
        state.manifest.seconds = self.started.elapsed().as_secs_f64();
        if let Err(error) = self.save_manifest(&state.manifest) {
            tracing::error!("{error}");
        }
        self.wake.notify_all();
    }

    fn save_manifest(&self, manifest: &Manifest) -> Result<(), RunError> {
        let path = self.options.run_dir.join("manifest.json");
        let scratch = self.options.run_dir.join(".manifest.json.partial");
        let text = serde_json::to_vec_pretty(manifest).expect("manifests serialise");
        std::fs::write(&scratch, text)
            .and_then(|()| std::fs::rename(&scratch, &path))
            .map_err(|source| RunError::RunFolder { path, source })
    }
}

/// The record as the manifest shows it: stored files named from the run folder.
fn run_relative(node: &str, record: &ArtifactRecord) -> ArtifactRecord {
    let mut shown = record.clone();
    shown.file = record.file.as_ref().map(|f| format!("nodes/{node}/{f}"));
    shown.members = record.members.iter().map(|f| format!("nodes/{node}/{f}")).collect();
    shown
}

impl Run<'_> {
    /// Does the work of node `index`: from the cache when its key is there, else by running
    /// the tool. Returns the cache key and how it ended. Every input is taken or released
    /// exactly once, so values leave memory when their last reader is done.
    fn execute(&self, index: usize, inputs: Vec<(String, Arc<Output>)>) -> (Option<String>, Outcome) {
        let node = &self.plan.nodes[index];
        let spec = node.tool.spec();
        let dir = self.options.run_dir.join("nodes").join(&node.id);
        let hashes: BTreeMap<String, String> = inputs.iter().map(|(port, o)| (port.clone(), o.record.hash.clone())).collect();
        let key = cache_key(spec, &node.params, &hashes);
        let release_all = || inputs.iter().for_each(|(_, output)| output.release());
        if let Err(error) = std::fs::remove_dir_all(&dir).or_else(ignore_missing).and_then(|()| std::fs::create_dir_all(&dir)) {
            release_all();
            return (Some(key), Outcome::Failed(format!("cannot make {}: {error}", dir.display())));
        }
        let cache = self.cache.as_ref().filter(|_| spec.cacheable);
        if let Some(cache) = cache
            && let Some(entry) = cache.lookup(&key)
        {
            match self.reuse(index, cache, &key, &entry.outputs, &dir) {
                Ok(outputs) => {
                    release_all();
                    return (Some(key), Outcome::Done { outputs, cache_hit: true });
                }
                Err(error) => tracing::warn!(node = %node.id, "cached result unusable, computing again: {error}"),
            }
        }
        if self.options.cancel.is_cancelled() {
            release_all();
            return (Some(key), Outcome::Cancelled);
        }
        let mut values = Inputs::new();
        let mut failure = None;
        for (port, output) in &inputs {
            if failure.is_some() {
                output.release();
                continue;
            }
            match output.take() {
                Ok(data) => drop(values.insert(port.clone(), data)),
                Err(error) => failure = Some(error.to_string()),
            }
        }
        if let Some(error) = failure {
            return (Some(key), Outcome::Failed(error));
        }
        let outcome = match self.compute(index, values) {
            Ok(outputs) => match self.store(index, cache, &key, outputs, &dir) {
                Ok(outputs) => Outcome::Done { outputs, cache_hit: false },
                Err(error) => Outcome::Failed(error.to_string()),
            },
            Err(medas_tools::ToolError::Cancelled { .. }) => Outcome::Cancelled,
            Err(error) => Outcome::Failed(error.to_string()),
        };
        (Some(key), outcome)
    }

    /// Runs the tool, turning its progress and log lines into events. A panic in a tool is a
    /// failure of its node, not of the run.
    fn compute(&self, index: usize, inputs: Inputs) -> Result<medas_tools::Outputs, medas_tools::ToolError> {
        let node = &self.plan.nodes[index];
        let progress = |fraction: f64| self.emit(&Event::NodeProgress { node: node.id.clone(), fraction });
        let log = |line: &str| self.emit(&Event::NodeLog { node: node.id.clone(), line: line.to_string() });
        let context = medas_tools::Context::new(&progress, &log, &self.options.cancel, Some(&self.options.run_dir));
        let call = || medas_tools::run_resolved(node.tool.as_ref(), inputs, &node.params, &context);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|panic| {
            let message = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
            Err(medas_tools::ToolError::Failed {
                tool: node.tool.spec().id.clone(),
                message: format!("internal error (please report): {}", message.unwrap_or_else(|| "panic".into())),
            })
        })
    }

    /// Hashes fresh outputs (in parallel), stores them in the cache (when on) and the run
    /// folder, and keeps the values in memory for the nodes that read them.
    fn store(
        &self,
        index: usize,
        cache: Option<&CacheStore>,
        key: &str,
        outputs: medas_tools::Outputs,
        dir: &Path,
    ) -> Result<BTreeMap<String, Arc<Output>>, ArtifactError> {
        use rayon::prelude::*;
        let hashed: Vec<(&str, &Data, String)> =
            outputs.par_iter().map(|(port, data)| (port.as_str(), data, artifact::data_hash(data))).collect();
        let records: BTreeMap<String, ArtifactRecord> = match cache {
            Some(cache) => {
                let entry = cache.save(key, &self.plan.nodes[index].tool.spec().id, self.plan.nodes[index].tool.spec().version, &hashed)?;
                for record in entry.outputs.values() {
                    artifact::link(&cache.entry_dir(key), dir, record)?;
                }
                entry.outputs
            }
            None => hashed
                .iter()
                .map(|(port, data, hash)| Ok((port.to_string(), artifact::write(dir, port, data, hash.clone())?)))
                .collect::<Result<_, ArtifactError>>()?,
        };
        let mut outputs = outputs;
        Ok(records
            .into_iter()
            .map(|(port, record)| {
                let value = outputs.remove(&port);
                let readers = self.plan.readers(index, &port);
                let output = Output { record, dir: dir.to_path_buf(), value: Mutex::new(value.filter(|_| readers > 0)), readers_left: AtomicUsize::new(readers) };
                (port, Arc::new(output))
            })
            .collect())
    }

    /// A cache hit: the entry's files linked into the run folder, values left on disk until
    /// a node that must compute reads them.
    fn reuse(
        &self,
        index: usize,
        cache: &CacheStore,
        key: &str,
        records: &BTreeMap<String, ArtifactRecord>,
        dir: &Path,
    ) -> Result<BTreeMap<String, Arc<Output>>, ArtifactError> {
        let mut outputs = BTreeMap::new();
        for (port, record) in records {
            artifact::link(&cache.entry_dir(key), dir, record)?;
            let readers = self.plan.readers(index, port);
            let output = Output { record: record.clone(), dir: dir.to_path_buf(), value: Mutex::new(None), readers_left: AtomicUsize::new(readers) };
            outputs.insert(port.clone(), Arc::new(output));
        }
        Ok(outputs)
    }
}

fn ignore_missing(error: std::io::Error) -> std::io::Result<()> {
    if error.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(error) }
}

/// The content address of a node's work: tool id and version, resolved parameters, the
/// content hashes of its inputs by port, and fingerprints of the files its path parameters
/// name (so editing an input file on disk is noticed). Any change to one of them changes it.
pub fn cache_key(spec: &medas_tools::ToolSpec, params: &medas_tools::Params, input_hashes: &BTreeMap<String, String>) -> String {
    let files: BTreeMap<&str, String> = spec
        .params
        .iter()
        .filter(|p| p.kind == medas_tools::ParamKind::Path)
        .filter_map(|p| Some((p.name.as_str(), artifact::fingerprint(Path::new(params.value(&p.name)?.as_str()?)))))
        .collect();
    let description = serde_json::json!({
        "medas_cache": 1,
        "tool": spec.id,
        "version": spec.version,
        "params": params.values(),
        "inputs": input_hashes,
        "files": files,
    });
    blake3::hash(description.to_string().as_bytes()).to_hex().to_string()
}
