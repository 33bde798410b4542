//! What several test binaries share: tools run with their log printed, images read, outputs
//! taken, and the MNI reference run made once per binary. Each binary uses part of it.
#![allow(dead_code)]

use medas_image::Image;
use medas_testkit::{file, python, scratch_dir};
use medas_tools::{CancelToken, Context, Data, Inputs, Outputs, Params, Registry, ToolError, run_resolved};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Runs tool `id` with its log lines printed (the registration's per-level report).
pub fn run(id: &str, inputs: Inputs, given: Value) -> Result<Outputs, ToolError> {
    let tool = Registry::global().get(id).unwrap();
    let params = Params::resolve(tool.spec(), given.as_object().unwrap())?;
    let (cancel, log) = (CancelToken::new(), |line: &str| eprintln!("{id}: {line}"));
    run_resolved(tool.as_ref(), inputs, &params, &Context::new(&|_| {}, &log, &cancel, None))
}

/// Runs tool `id` on `image` (port `image`) and, when given, a second image on port `port`.
pub fn run_with(id: &str, image: &Image, second: Option<(&str, &Image)>, given: Value) -> Result<Outputs, ToolError> {
    let mut inputs = Inputs::from([("image".to_string(), Data::Image(image.clone()))]);
    if let Some((port, other)) = second {
        inputs.insert(port.to_string(), Data::Image(other.clone()));
    }
    run(id, inputs, given)
}

/// The image on output `port`.
pub fn output_image(outputs: &Outputs, port: &str) -> Image {
    match outputs.get(port) {
        Some(Data::Image(image)) => image.clone(),
        other => panic!("output {port}: {other:?}"),
    }
}

pub fn read(path: &Path) -> Image {
    medas_io::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The scratch folder `scratch` after `script` ran once in this binary with the MNI T1, grey
/// and white matter maps, the folder and the repository's scripts/ as arguments; None without
/// the reference data.
pub fn mni_references(scratch: &str, script: &str) -> Option<&'static Path> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let template = file("nilearn/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")?;
    let gm = file("nilearn/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")?;
    let wm = file("nilearn/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")?;
    let dir = DIR.get_or_init(|| {
        let dir = scratch_dir(scratch);
        let scripts = medas_testkit::repo_root().join("scripts");
        python(script, &[template.as_os_str(), gm.as_os_str(), wm.as_os_str(), dir.as_os_str(), scripts.as_os_str()]);
        dir
    });
    Some(dir.as_path())
}
