//! The executor on small synthetic tools: caching (keys, version bumps, one changed
//! parameter), parallel nodes, failure short-circuiting, cancellation, the run folder.

use medas_image::{Geometry, Image, Voxels};
use medas_pipeline::{Event, Manifest, NodeStatus, Pipeline, PipelineBuilder, RunOptions, RunStatus, cache_key, read_image, run};
use medas_tools::{
    Category, Context, Data, Inputs, Outputs, ParamSpec, Params, PortSpec, PortType, Registry, Tool, ToolError, ToolSpec, take_image,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What a test tool does when run.
type Work = dyn Fn(Inputs, &Params, &Context) -> Result<Outputs, ToolError> + Send + Sync;

/// A tool made of a spec and a closure, counting its runs.
struct TestTool {
    spec: ToolSpec,
    work: Box<Work>,
    runs: AtomicUsize,
}

impl Tool for TestTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn run(&self, inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        (self.work)(inputs, params, context)
    }
}

fn tool(spec: ToolSpec, work: impl Fn(Inputs, &Params, &Context) -> Result<Outputs, ToolError> + Send + Sync + 'static) -> Arc<TestTool> {
    Arc::new(TestTool { spec, work: Box::new(work), runs: AtomicUsize::new(0) })
}

fn image_out(value: f32) -> Outputs {
    let voxels = Voxels::from_fortran_vec(&[4, 3, 2], vec![value; 24]).unwrap();
    let image = Image::new(voxels, Geometry::new(vec![1.0, 1.0, 2.5], vec![0.0; 3], vec![1., 0., 0., 0., 1., 0., 0., 0., 1.]).unwrap()).unwrap();
    Outputs::from([("image".to_string(), Data::Image(image))])
}

fn first_value(image: &Image) -> f32 {
    image.voxels().as_array::<f32>().unwrap().iter().next().copied().unwrap()
}

/// `test.source` (a constant image) and `test.add` (adds `amount`), at `add_version`.
fn arithmetic(add_version: u32) -> (Arc<TestTool>, Arc<TestTool>) {
    let source = tool(
        ToolSpec::new("io.source", Category::Io, "Source", "A constant image.")
            .param(ParamSpec::float("value", "The value.").default(1.0))
            .output(PortSpec::new("image", PortType::Image, "The image.")),
        |_, params, _| Ok(image_out(params.float("value")? as f32)),
    );
    let add = tool(
        ToolSpec::new("preprocess.add", Category::Preprocess, "Add", "Adds a constant.")
            .version(add_version)
            .param(ParamSpec::float("amount", "What to add.").default(1.0))
            .input(PortSpec::new("image", PortType::Image, "In."))
            .output(PortSpec::new("image", PortType::Image, "Out.")),
        |mut inputs, params, _| {
            let image = take_image(&mut inputs, "preprocess.add", "image")?;
            Ok(image_out(first_value(&image) + params.float("amount")? as f32))
        },
    );
    (source, add)
}

fn registry(tools: &[Arc<TestTool>]) -> Registry {
    Registry::from_tools(tools.iter().map(|t| t.clone() as Arc<dyn Tool>))
}

fn chain(b_amount: f64) -> Pipeline {
    PipelineBuilder::new("chain")
        .node("src", "io.source")
        .set("value", 10.0)
        .node("a", "preprocess.add")
        .set("amount", 1.0)
        .node("b", "preprocess.add")
        .set("amount", b_amount)
        .connect("src.image", "a.image")
        .connect("a.image", "b.image")
        .build(&registry(&[arithmetic(1).0, arithmetic(1).1]))
        .unwrap()
}

fn options(run_dir: &Path, cache: &Path) -> RunOptions {
    RunOptions { cache_dir: Some(cache.to_path_buf()), parallel_nodes: 2, ..RunOptions::new(run_dir) }
}

fn output_value(run_dir: &Path, manifest: &Manifest, node: &str) -> f32 {
    let record = &manifest.node(node).unwrap().outputs["image"];
    let mut local = record.clone();
    local.file = record.file.as_ref().map(|f| Path::new(f).file_name().unwrap().to_string_lossy().into_owned());
    first_value(&read_image(&run_dir.join("nodes").join(node), &local).unwrap())
}

fn hits(manifest: &Manifest) -> Vec<(&str, bool)> {
    manifest.nodes.iter().map(|n| (n.id.as_str(), n.cache_hit)).collect()
}

#[test]
fn a_changed_parameter_recomputes_only_what_depends_on_it() {
    let temp = tempfile::tempdir().unwrap();
    let cache = temp.path().join("cache");
    let (source, add) = arithmetic(1);
    let registry = registry(&[source.clone(), add.clone()]);
    let quiet = |_: &Event| {};

    let first = run(&chain(5.0), &registry, &options(&temp.path().join("run1"), &cache), &quiet).unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    assert_eq!(hits(&first), [("src", false), ("a", false), ("b", false)]);
    assert_eq!(output_value(&temp.path().join("run1"), &first, "b"), 16.0);
    assert_eq!((source.runs.load(Ordering::SeqCst), add.runs.load(Ordering::SeqCst)), (1, 2));

    let again = run(&chain(5.0), &registry, &options(&temp.path().join("run2"), &cache), &quiet).unwrap();
    assert_eq!(hits(&again), [("src", true), ("a", true), ("b", true)]);
    assert_eq!((source.runs.load(Ordering::SeqCst), add.runs.load(Ordering::SeqCst)), (1, 2), "nothing ran again");
    assert_eq!(output_value(&temp.path().join("run2"), &again, "b"), 16.0, "cached output linked into the new run folder");

    let changed = run(&chain(7.0), &registry, &options(&temp.path().join("run3"), &cache), &quiet).unwrap();
    assert_eq!(hits(&changed), [("src", true), ("a", true), ("b", false)]);
    assert_eq!(add.runs.load(Ordering::SeqCst), 3, "only b ran");
    assert_eq!(output_value(&temp.path().join("run3"), &changed, "b"), 18.0, "b read a's output back from the cache");
    assert_eq!(changed.node("a").unwrap().cache_key, first.node("a").unwrap().cache_key);
    assert_ne!(changed.node("b").unwrap().cache_key, first.node("b").unwrap().cache_key);

    // Without a cache everything is computed and still stored in the run folder.
    let uncached = RunOptions { cache_dir: None, ..options(&temp.path().join("run4"), &cache) };
    let fresh = run(&chain(7.0), &registry, &uncached, &quiet).unwrap();
    assert_eq!(hits(&fresh), [("src", false), ("a", false), ("b", false)]);
    assert_eq!(output_value(&temp.path().join("run4"), &fresh, "b"), 18.0);
}

#[test]
fn a_new_tool_version_invalidates_its_cached_results() {
    let temp = tempfile::tempdir().unwrap();
    let cache = temp.path().join("cache");
    let (source, add_v1) = arithmetic(1);
    let first = run(&chain(5.0), &registry(&[source.clone(), add_v1]), &options(&temp.path().join("r1"), &cache), &|_| {}).unwrap();
    let (_, add_v2) = arithmetic(2);
    let bumped = run(&chain(5.0), &registry(&[source, add_v2.clone()]), &options(&temp.path().join("r2"), &cache), &|_| {}).unwrap();
    assert_eq!(hits(&bumped), [("src", true), ("a", false), ("b", false)]);
    assert_eq!(add_v2.runs.load(Ordering::SeqCst), 2);
    assert_eq!(bumped.node("a").unwrap().version, 2);
    assert_ne!(bumped.node("a").unwrap().cache_key, first.node("a").unwrap().cache_key);

    // The key itself: tool version, parameters and input hashes each change it.
    let spec = arithmetic(1).1.spec.clone();
    let params = |amount: f64| Params::resolve(&spec, &serde_json::json!({"amount": amount}).as_object().unwrap().clone()).unwrap();
    let inputs = |hash: &str| BTreeMap::from([("image".to_string(), hash.to_string())]);
    let base = cache_key(&spec, &params(1.0), &inputs("aa"));
    assert_eq!(base, cache_key(&spec, &params(1.0), &inputs("aa")), "deterministic");
    assert_ne!(base, cache_key(&spec.clone().version(2), &params(1.0), &inputs("aa")));
    assert_ne!(base, cache_key(&spec, &params(1.5), &inputs("aa")));
    assert_ne!(base, cache_key(&spec, &params(1.0), &inputs("ab")));
}

/// Two nodes that each wait for the other to be running: they only finish if the executor
/// runs them at the same time.
/// A tool whose instances each wait (up to `timeout` s) until two of them are running.
fn rendezvous() -> Arc<TestTool> {
    let meeting = Arc::new((Mutex::new(0usize), Condvar::new()));
    tool(
        ToolSpec::new("preprocess.meet", Category::Preprocess, "Meet", "Waits for a second instance.")
            .param(ParamSpec::float("timeout", "Seconds to wait.").default(30.0))
            .param(ParamSpec::string("tag", "Distinguishes the nodes.").default(""))
            .output(PortSpec::new("image", PortType::Image, "Out.")),
        move |_, params, _| {
            let (count, arrived) = &*meeting;
            let mut count = count.lock().unwrap();
            *count += 1;
            arrived.notify_all();
            let timeout = Duration::from_secs_f64(params.float("timeout")?);
            let (count, waited) = arrived.wait_timeout_while(count, timeout, |c| *c < 2).unwrap();
            drop(count);
            if waited.timed_out() {
                return Err(ToolError::Failed { tool: "preprocess.meet".into(), message: "ran alone".into() });
            }
            Ok(image_out(0.0))
        },
    )
}

/// Two nodes that each wait for the other to be running: they only finish if the executor
/// runs them at the same time.
#[test]
fn independent_nodes_run_in_parallel() {
    let pipeline = |registry: &Registry, timeout: f64| {
        PipelineBuilder::new("pair")
            .node("left", "preprocess.meet")
            .set("timeout", timeout)
            .set("tag", "l")
            .node("right", "preprocess.meet")
            .set("timeout", timeout)
            .set("tag", "r")
            .build(registry)
            .unwrap()
    };
    let temp = tempfile::tempdir().unwrap();
    let both = registry(&[rendezvous()]);
    let parallel = RunOptions { cache_dir: None, parallel_nodes: 2, ..RunOptions::new(temp.path().join("p")) };
    let manifest = run(&pipeline(&both, 60.0), &both, &parallel, &|_| {}).unwrap();
    assert_eq!(manifest.status, RunStatus::Succeeded, "{manifest:#?}");

    // The control: one node at a time, the first waits in vain.
    let registry = registry(&[rendezvous()]);
    let serial = RunOptions { cache_dir: None, parallel_nodes: 1, ..RunOptions::new(temp.path().join("s")) };
    let manifest = run(&pipeline(&registry, 0.2), &registry, &serial, &|_| {}).unwrap();
    assert_eq!(manifest.node("left").unwrap().status, NodeStatus::Failed);
    assert!(manifest.node("left").unwrap().error.as_deref().unwrap().contains("ran alone"));
}

#[test]
fn a_failing_node_skips_its_dependents_and_keeps_everything_else() {
    let (source, add) = arithmetic(1);
    let broken = tool(
        ToolSpec::new("preprocess.broken", Category::Preprocess, "Broken", "Always fails.")
            .input(PortSpec::new("image", PortType::Image, "In."))
            .output(PortSpec::new("image", PortType::Image, "Out.")),
        |_, _, context| {
            context.log("about to fail");
            Err(ToolError::Failed { tool: "preprocess.broken".into(), message: "the input is corrupt".into() })
        },
    );
    let registry = registry(&[source, add, broken]);
    let pipeline = PipelineBuilder::new("branches")
        .node("src", "io.source")
        .node("bad", "preprocess.broken")
        .node("after_bad", "preprocess.add")
        .node("good", "preprocess.add")
        .connect("src.image", "bad.image")
        .connect("bad.image", "after_bad.image")
        .connect("src.image", "good.image")
        .build(&registry)
        .unwrap();
    let temp = tempfile::tempdir().unwrap();
    let events = Mutex::new(Vec::new());
    let sink = |event: &Event| events.lock().unwrap().push(event.clone());
    let manifest = run(&pipeline, &registry, &options(temp.path(), &temp.path().join("cache")), &sink).unwrap();

    assert_eq!(manifest.status, RunStatus::Failed);
    let status = |id: &str| manifest.node(id).unwrap().status;
    assert_eq!([status("src"), status("bad"), status("after_bad"), status("good")], [
        NodeStatus::Succeeded,
        NodeStatus::Failed,
        NodeStatus::Skipped,
        NodeStatus::Succeeded
    ]);
    assert!(manifest.node("bad").unwrap().error.as_deref().unwrap().contains("the input is corrupt"));
    assert_eq!(manifest.node("after_bad").unwrap().skipped_because.as_deref(), Some("bad"));
    for node in ["src", "good"] {
        let file = manifest.node(node).unwrap().outputs["image"].file.clone().unwrap();
        assert!(temp.path().join(&file).is_file(), "{file} kept on disk");
    }
    assert_eq!(output_value(temp.path(), &manifest, "good"), 2.0);
    assert_eq!(Manifest::load(&temp.path().join("manifest.json")).unwrap(), manifest, "the manifest on disk says the same");

    let events = events.into_inner().unwrap();
    assert!(events.contains(&Event::NodeLog { node: "bad".into(), line: "about to fail".into() }));
    assert!(events.contains(&Event::NodeSkipped { node: "after_bad".into(), because: "bad".into() }));
    assert!(matches!(events.first(), Some(Event::RunStarted { .. })));
    assert!(matches!(events.last(), Some(Event::RunFinished { status: RunStatus::Failed, .. })));
}

#[test]
fn cancelling_stops_the_running_tool_and_what_waits_for_it() {
    let (source, add) = arithmetic(1);
    let patient = tool(
        ToolSpec::new("preprocess.patient", Category::Preprocess, "Patient", "Works until cancelled.")
            .input(PortSpec::new("image", PortType::Image, "In."))
            .output(PortSpec::new("image", PortType::Image, "Out.")),
        |_, _, context| {
            for step in 0..6000 {
                context.progress(step as f64 / 6000.0);
                context.check_cancelled("preprocess.patient")?;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(ToolError::Failed { tool: "preprocess.patient".into(), message: "was never cancelled".into() })
        },
    );
    let registry = registry(&[source, add, patient]);
    let pipeline = PipelineBuilder::new("cancel")
        .node("src", "io.source")
        .node("slow", "preprocess.patient")
        .node("after", "preprocess.add")
        .connect("src.image", "slow.image")
        .connect("slow.image", "after.image")
        .build(&registry)
        .unwrap();
    let temp = tempfile::tempdir().unwrap();
    let options = options(temp.path(), &temp.path().join("cache"));
    let cancel = options.cancel.clone();
    // Cancel once the slow node reports progress, as a user pressing stop would.
    let sink = move |event: &Event| {
        if matches!(event, Event::NodeProgress { node, fraction } if node == "slow" && *fraction > 0.0) {
            cancel.cancel();
        }
    };
    let clock = std::time::Instant::now();
    let manifest = run(&pipeline, &registry, &options, &sink).unwrap();
    assert!(clock.elapsed() < Duration::from_secs(30), "cancelled long before the tool's 60 s");
    assert_eq!(manifest.status, RunStatus::Cancelled);
    let status = |id: &str| manifest.node(id).unwrap().status;
    assert_eq!([status("src"), status("slow"), status("after")], [NodeStatus::Succeeded, NodeStatus::Cancelled, NodeStatus::Cancelled]);
    assert!(temp.path().join(manifest.node("src").unwrap().outputs["image"].file.as_ref().unwrap()).is_file());
}
