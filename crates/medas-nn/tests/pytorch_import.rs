//! PyTorch import: tests/pytorch_unet.py writes random weights under the state_dict names of
//! its reference PyTorch `UNet` (numpy + safetensors; torch is not needed) and that network's
//! output computed with plain numpy in float64 (and with torch itself when it is importable).
//! MEDAS imports the weights into its own U-Net and must give the same output within 1e-4, in
//! 2-D (2 × 16 × 16) and 3-D (8 × 16 × 8, anisotropic to catch swapped axes), with batch and
//! with instance normalisation. (With Debian's PyTorch 1.13.1 on the path the torch branch runs
//! too; measured: numpy vs MEDAS at most 1.1e-6, torch vs MEDAS at most 1.3e-6.)
//!
//! The same weights in `torch.save`'s `.pt` layout (written with Python's pickle + zipfile) must
//! give the very same logits; where Debian's PyTorch is unpacked, a file `torch.save` itself
//! wrote is imported too and compared with PyTorch's output.
//!
//! The Python runs in the reference venv `$MEDAS_TESTDATA/venv` (scripts/fetch-testdata installs
//! safetensors there). medas-testkit is not used: its serde_json features would rebuild Burn.

use burn::tensor::{Tensor, TensorData};
use medas_nn::store::pytorch::import_unet;
use medas_nn::{ComputeDevice, NetworkConfig, NetworkOutput};
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Largest difference allowed between MEDAS (f32) and the float64 numpy reference.
const TOLERANCE: f32 = 1e-4;

/// The venv's Python, or `None` (with a loud message) when it is missing and not required.
fn python() -> Option<PathBuf> {
    let root = std::env::var_os("MEDAS_TESTDATA").map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.testdata"), PathBuf::from);
    let python = root.join("venv/bin/python");
    if python.exists() {
        return Some(python);
    }
    let required = std::env::var("MEDAS_REQUIRE_TESTDATA").is_ok_and(|v| v == "1");
    assert!(!required, "{} is missing and MEDAS_REQUIRE_TESTDATA=1 (run scripts/fetch-testdata)", python.display());
    eprintln!("\n!!!!! SKIPPING: no reference venv at {} !!!!!\n", python.display());
    None
}

/// Runs the script for `norm` in `dims` (2 or 3) into a fresh folder of test `test`.
fn reference(python: &Path, norm: &str, dims: usize, test: &str) -> PathBuf {
    reference_with(Command::new(python), norm, dims, test)
}

fn reference_with(mut python: Command, norm: &str, dims: usize, test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medas-nn-pytorch-{test}-{norm}-{dims}d-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pytorch_unet.py");
    let output = python.arg(&script).arg(&dir).arg(norm).arg(dims.to_string()).output().expect("run python");
    assert!(output.status.success(), "pytorch_unet.py failed:\n{}", String::from_utf8_lossy(&output.stderr));
    eprintln!("pytorch_unet.py {norm} {dims}: {}", String::from_utf8_lossy(&output.stdout).trim());
    dir
}

fn f32_tensor(file: &SafeTensors, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
    let view = file.tensor(name).ok()?;
    assert_eq!(view.dtype(), Dtype::F32, "{name}");
    Some((view.shape().to_vec(), view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()))
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn imports_and_matches(norm: &str, dims: usize) {
    let Some(python) = python() else { return };
    let dir = reference(&python, norm, dims, "match");
    // The stdlib-written .pt holds the same f32 values: the same logits, to the bit.
    let ours = logits_of(&dir, "weights.safetensors", norm, dims);
    assert_eq!(ours, logits_of(&dir, "weights.pt", norm, dims), "{norm} {dims}-D: .pt and safetensors imports differ");
    if dir.join("weights_torch.pt").exists() {
        assert_eq!(ours, logits_of(&dir, "weights_torch.pt", norm, dims), "{norm} {dims}-D: torch.save import differs");
    }
    compare_with_reference(&dir, &ours, norm, dims);
    std::fs::remove_dir_all(dir).unwrap();
}

/// MEDAS's U-Net with the weights of `dir/file` on the reference input: its logits.
fn logits_of(dir: &Path, file: &str, norm: &str, dims: usize) -> Vec<f32> {
    let json = format!(r#"{{"name": "unet", "spatial": "{dims}d", "in_channels": 1, "classes": 2, "depth": 2, "base_channels": 4, "norm": "{norm}"}}"#);
    let device = ComputeDevice::Cpu.inference();
    let network = import_unet(&NetworkConfig::from_json(&json).unwrap(), &dir.join(file), &device).unwrap();
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let (shape, input) = f32_tensor(&file, "input").unwrap();
    // 2-D arrays (N, C, H, W) take a depth axis of 1; the element order is unchanged.
    let [n, c, spatial @ ..] = shape.as_slice() else { panic!("input shape {shape:?}") };
    let volume = if dims == 2 { [*n, *c, 1, spatial[0], spatial[1]] } else { [*n, *c, spatial[0], spatial[1], spatial[2]] };
    let x = Tensor::<5>::from_data(TensorData::new(input, volume), &device);
    let NetworkOutput::Segmentation(out) = network.forward(x).unwrap() else { panic!("not a segmentation") };
    out.logits.into_data().try_to_vec().unwrap()
}

fn compare_with_reference(dir: &Path, ours: &[f32], norm: &str, dims: usize) {
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let (shape, expected) = f32_tensor(&file, "output").unwrap();
    assert_eq!(shape[1], 2);
    let numpy = max_difference(ours, &expected);
    eprintln!("{norm} {dims}-D: max |MEDAS - numpy| = {numpy:.2e} (tolerance {TOLERANCE:.0e})");
    assert!(numpy <= TOLERANCE, "{norm} {dims}-D: MEDAS differs from the numpy reference by {numpy}");
    if let Some((_, torch)) = f32_tensor(&file, "torch_output") {
        let difference = max_difference(ours, &torch);
        eprintln!("{norm} {dims}-D: max |MEDAS - torch| = {difference:.2e} (tolerance {TOLERANCE:.0e})");
        assert!(difference <= TOLERANCE, "{norm} {dims}-D: MEDAS differs from PyTorch by {difference}");
    }
}

/// Debian's python3-torch unpacked into $DEBTORCH or ~/.cache/medas/debtorch (see
/// scripts/bench-conv), run by the venv's Python (3.11, as Debian's), or `None` with a reason.
fn python_with_debian_torch() -> Option<Command> {
    let root = std::env::var_os("DEBTORCH").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/medas/debtorch")))?;
    let packages = root.join("usr/lib/python3/dist-packages");
    let python = python()?;
    if !packages.join("torch").is_dir() {
        eprintln!("\n!!!!! SKIPPING the torch.save check: no Debian PyTorch under {} (optional) !!!!!\n", root.display());
        return None;
    }
    let lib = root.join("usr/lib/x86_64-linux-gnu");
    let paths = [lib.join("openblas-openmp"), lib.clone(), root.join("lib/x86_64-linux-gnu"), root.join("usr/lib")];
    let mut command = Command::new(python);
    command.env("LD_LIBRARY_PATH", std::env::join_paths(paths).unwrap()).env("PYTHONPATH", packages);
    Some(command)
}

/// A file PyTorch itself wrote with `torch.save(model.state_dict())` (where Debian's PyTorch is
/// unpacked; skipped with a message otherwise) imports and gives PyTorch's own output.
#[test]
fn a_unet_saved_by_pytorch_itself_imports_from_its_pt_file() {
    for (norm, dims) in [("batch", 2), ("instance", 3)] {
        let Some(python) = python_with_debian_torch() else { return };
        let dir = reference_with(python, norm, dims, "torch-save");
        assert!(dir.join("weights_torch.pt").exists(), "PyTorch did not write weights_torch.pt");
        let ours = logits_of(&dir, "weights_torch.pt", norm, dims);
        compare_with_reference(&dir, &ours, norm, dims);
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn a_2d_pytorch_unet_with_batch_norm_gives_the_same_output() {
    imports_and_matches("batch", 2);
}

#[test]
fn a_2d_pytorch_unet_with_instance_norm_gives_the_same_output() {
    imports_and_matches("instance", 2);
}

#[test]
fn a_3d_pytorch_unet_with_batch_norm_gives_the_same_output() {
    imports_and_matches("batch", 3);
}

#[test]
fn a_3d_pytorch_unet_with_instance_norm_gives_the_same_output() {
    imports_and_matches("instance", 3);
}

#[test]
fn pytorch_files_that_do_not_fit_are_refused_by_name() {
    let Some(python) = python() else { return };
    let dir = reference(&python, "batch", 2, "refuse");
    let device = ComputeDevice::Cpu.inference();
    let weights = dir.join("weights.safetensors");
    let import = |json: &str| import_unet(&NetworkConfig::from_json(json).unwrap(), &weights, &device).map(|_| ()).unwrap_err().to_string();
    let base = r#""name": "unet", "spatial": "2d", "depth": 2, "base_channels": 4"#;
    assert_eq!(
        import(&format!(r#"{{{base}, "norm": "batch", "in_channels": 3}}"#)),
        format!("{}: tensor encoder.0.convs.0.conv.weight has shape [4, 1, 3, 3] in the file, the network expects [4, 3, 3, 3]", weights.display())
    );
    assert_eq!(
        import(&format!(r#"{{{base}, "norm": "instance"}}"#)),
        format!("{}: the file has tensor decoder.0.convs.0.norm.running_mean, which the network does not have", weights.display())
    );
    assert_eq!(
        import(&format!(r#"{{{base}, "norm": "batch", "convs_per_block": 3}}"#)),
        format!("{}: tensor encoder.0.convs.2.conv.weight is missing from the file", weights.display())
    );
    // A .pt file goes through the same checks; a broken one is named as such.
    let pt = dir.join("weights.pt");
    let import_pt = |json: &str| import_unet(&NetworkConfig::from_json(json).unwrap(), &pt, &device).map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        import_pt(&format!(r#"{{{base}, "norm": "batch", "in_channels": 3}}"#)),
        format!("{}: tensor encoder.0.convs.0.conv.weight has shape [4, 1, 3, 3] in the file, the network expects [4, 3, 3, 3]", pt.display())
    );
    let bytes = std::fs::read(&pt).unwrap();
    std::fs::write(&pt, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(
        import_pt(&format!(r#"{{{base}, "norm": "batch"}}"#)),
        format!("{}: not a torch.save zip file: no end of central directory record: not a zip file", pt.display())
    );
    assert_eq!(
        import(r#"{"name": "vnet", "spatial": "2d"}"#),
        format!("{}: PyTorch import covers the plain U-Net (\"unet\"), not \"vnet\"", weights.display())
    );
    std::fs::remove_dir_all(dir).unwrap();
}
