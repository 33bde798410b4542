//! The model store: a saved model loads back with bit-identical outputs (batch-normalisation
//! running statistics included), listing and deletion, and clear errors for broken folders,
//! mismatched weights and hostile names.

use burn::module::Module;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use medas_nn::optim::GradientsParams;
use medas_nn::store::{self, ModelStore, StoreError};
use medas_nn::{ComputeDevice, LossConfig, ModelMetadata, Network, NetworkConfig, NetworkOutput, OptimizerConfig, Target};
use std::path::{Path, PathBuf};

const UNET_2D: &str = r#"{"name": "unet", "spatial": "2d", "depth": 2, "base_channels": 4, "norm": "batch"}"#;

/// A fresh, empty folder for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medas-nn-store-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(json: &str) -> NetworkConfig {
    NetworkConfig::from_json(json).unwrap()
}

fn logits(network: &Network, x: Tensor<5>) -> Vec<f32> {
    match network.forward(x).unwrap() {
        NetworkOutput::Segmentation(s) => s.logits.into_data().try_to_vec::<f32>().unwrap(),
        NetworkOutput::Classes(c) => c.into_data().try_to_vec::<f32>().unwrap(),
    }
}

fn message(result: Result<impl std::fmt::Debug, StoreError>) -> String {
    let error = result.expect_err("expected an error").to_string();
    eprintln!("error: {error}");
    error
}

/// A 2-D U-Net with batch normalisation after a few Adam steps on random data, so weights and
/// running statistics are far from their initial values.
fn trained_unet(device: &Device) -> Network {
    let mut net = config(UNET_2D).build_seeded(device, 5).unwrap();
    let image = Tensor::<5>::random([2, 1, 1, 16, 16], Distribution::Normal(0.5, 2.0), device);
    let label = Tensor::<5, Int>::from_data(TensorData::new((0..512).map(|i| (i % 3 == 0) as i64).collect(), [2, 1, 1, 16, 16]), device);
    let loss = LossConfig::from_json(r#"{"name": "dice_ce"}"#).unwrap().build(2).unwrap();
    let mut optim = OptimizerConfig::from_json(r#"{"name": "adam"}"#).unwrap().init().unwrap();
    for _ in 0..3 {
        let NetworkOutput::Segmentation(out) = net.forward(image.clone()).unwrap() else { unreachable!() };
        let value = loss.forward(out.logits, &Target::Classes(label.clone())).unwrap();
        let grads = GradientsParams::from_grads(value.backward(), &net);
        net = optim.step(1e-2, net, grads);
    }
    net
}

fn running_var(net: &Network) -> Vec<f32> {
    let tensors = store::weights::collect_tensors(net).unwrap();
    let (_, var) = tensors.iter().find(|(name, _)| name.ends_with("running_var")).expect("batch norm has running_var");
    bytemuck_f32(&var.bytes)
}

fn bytemuck_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn a_trained_2d_unet_with_batch_norm_loads_back_bit_for_bit() {
    let root = scratch("unet");
    let net = trained_unet(&ComputeDevice::Cpu.training());
    let var = running_var(&net);
    assert!(var.iter().any(|v| (v - 1.0).abs() > 1e-3), "running variance still at its initial 1: {var:?}");
    let mut metadata = ModelMetadata::now();
    metadata.metrics.insert("dice".into(), 0.5);
    let models = ModelStore::new(&root);
    models.save("unet-2d", &config(UNET_2D), &net, &metadata, false).unwrap();

    let device = ComputeDevice::Cpu.inference();
    let loaded = models.load("unet-2d", &device).unwrap();
    assert_eq!(loaded.config, config(UNET_2D));
    assert_eq!(loaded.metadata, metadata);
    assert_eq!(running_var(&loaded.network), var);
    let x = Tensor::<5>::random([2, 1, 1, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    let expected = logits(&net.valid(), x.clone());
    assert_eq!(logits(&loaded.network, x), expected, "outputs differ after the round trip");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn a_3d_vnet_loads_back_bit_for_bit() {
    let root = scratch("vnet");
    let json = r#"{"name": "vnet", "spatial": "3d", "depth": 2, "base_channels": 4, "kernel": 3}"#;
    let device = ComputeDevice::Cpu.inference();
    let net = config(json).build_seeded(&device, 11).unwrap();
    let models = ModelStore::new(&root);
    models.save("vnet", &config(json), &net, &ModelMetadata::now(), false).unwrap();
    let loaded = models.load("vnet", &device).unwrap();
    let x = Tensor::<5>::random([1, 1, 8, 8, 8], Distribution::Normal(0.0, 1.0), &device);
    assert_eq!(logits(&loaded.network, x.clone()), logits(&net, x));
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn models_are_listed_replaced_only_when_asked_and_deleted() {
    let root = scratch("list");
    let models = ModelStore::new(&root);
    assert_eq!(models.list().unwrap(), [], "a missing root is an empty store");
    let device = ComputeDevice::Cpu.inference();
    let unet = config(UNET_2D);
    let net = unet.build_seeded(&device, 1).unwrap();
    let mut metadata = ModelMetadata::now();
    metadata.metrics.insert("dice".into(), 0.75);
    models.save("b", &unet, &net, &metadata, false).unwrap();
    models.save("a", &unet, &net, &ModelMetadata::now(), false).unwrap();
    std::fs::create_dir(root.join(".a.saving-1")).unwrap(); // a scratch folder is not a model
    std::fs::create_dir(root.join("broken")).unwrap();

    let listed = models.list().unwrap();
    let names: Vec<&str> = listed.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "broken"]);
    assert_eq!((listed[1].network.as_str(), listed[1].created.as_str()), ("unet", metadata.created.as_str()));
    assert_eq!(listed[1].metrics.get("dice"), Some(&0.75));
    let folder_bytes: u64 = std::fs::read_dir(root.join("b")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert_eq!(listed[1].bytes, folder_bytes);
    assert!(listed[1].problem.is_none());
    let broken = listed[2].problem.as_deref().expect("the broken folder says why");
    assert!(broken.starts_with(&format!("{}: ", root.join("broken/config.json").display())), "{broken}");

    let exists = message(models.save("a", &unet, &net, &metadata, false));
    assert_eq!(exists, format!("model \"a\" already exists in {}; ask for overwriting to replace it", root.display()));
    models.save("a", &unet, &net, &metadata, true).unwrap();
    assert_eq!(models.load("a", &device).unwrap().metadata.metrics.get("dice"), Some(&0.75), "overwritten");

    models.delete("a").unwrap();
    assert!(!root.join("a").exists());
    assert_eq!(message(models.delete("a")), format!("no model \"a\" in {}", root.display()));
    let left: Vec<String> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!left.iter().any(|n| n.contains(".replaced-") || n.contains(".saving-") && n != ".a.saving-1"), "{left:?}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn hostile_names_are_refused() {
    let root = scratch("names");
    let models = ModelStore::new(&root);
    for (name, reason) in [
        ("", "it is empty"),
        ("..", "it starts with a dot (hidden or a parent folder)"),
        (".hidden", "it starts with a dot (hidden or a parent folder)"),
        ("../escape", "it starts with a dot (hidden or a parent folder)"),
        ("a/b", "it contains a path separator"),
        ("a\\b", "it contains a path separator"),
        ("/etc", "it contains a path separator"),
        ("a b", "only ASCII letters, digits, '.', '-' and '_' are allowed"),
        ("-rf", "it starts with '-'"),
    ] {
        assert_eq!(message(models.load(name, &ComputeDevice::Cpu.inference())), format!("invalid model name {name:?}: {reason}"));
        assert_eq!(message(models.delete(name)), format!("invalid model name {name:?}: {reason}"));
    }
    store::validate_name("unet_2d-v1.2").unwrap();
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
    std::fs::remove_dir_all(root).unwrap();
}

/// Saves a small U-Net as `name` and returns its folder.
fn saved(models: &ModelStore, name: &str) -> PathBuf {
    let net = config(UNET_2D).build_seeded(&ComputeDevice::Cpu.inference(), 2).unwrap();
    models.save(name, &config(UNET_2D), &net, &ModelMetadata::now(), false).unwrap()
}

fn replace_weights(dir: &Path, json: &str) {
    let net = config(json).build_seeded(&ComputeDevice::Cpu.inference(), 2).unwrap();
    store::weights::save_weights(&net, &dir.join("weights.safetensors")).unwrap();
}

#[test]
fn broken_models_give_the_first_problem_and_no_panic() {
    let root = scratch("errors");
    let models = ModelStore::new(&root);
    let device = ComputeDevice::Cpu.inference();
    let weights = |name: &str| root.join(name).join("weights.safetensors").display().to_string();

    let dir = saved(&models, "missing");
    std::fs::remove_file(dir.join("weights.safetensors")).unwrap();
    assert_eq!(message(models.load("missing", &device)), format!("{}: No such file or directory (os error 2)", weights("missing")));

    let dir = saved(&models, "truncated");
    let bytes = std::fs::read(dir.join("weights.safetensors")).unwrap();
    for keep in [0, 7, 100, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(dir.join("weights.safetensors"), &bytes[..keep]).unwrap();
        let error = message(models.load("truncated", &device));
        assert!(error.starts_with(&format!("{}: not a readable safetensors file: ", weights("truncated"))), "{keep} bytes: {error}");
    }

    let dir = saved(&models, "shape");
    replace_weights(&dir, r#"{"name": "unet", "spatial": "2d", "depth": 2, "base_channels": 8, "norm": "batch"}"#);
    assert_eq!(
        message(models.load("shape", &device)),
        format!("{}: tensor body.EncoderDecoder.encoder.0.body.Plain.units.0.conv.Two.weight has shape [8, 1, 3, 3] in the file, the network expects [4, 1, 3, 3]", weights("shape"))
    );

    let dir = saved(&models, "extra");
    replace_weights(&dir, r#"{"name": "unet", "spatial": "2d", "depth": 2, "base_channels": 4, "norm": "batch", "deep_supervision": true}"#);
    assert_eq!(message(models.load("extra", &device)), format!("{}: the file has tensor body.EncoderDecoder.deep_heads.0.Two.bias, which the network does not have", weights("extra")));

    let dir = saved(&models, "fewer");
    replace_weights(&dir, r#"{"name": "unet", "spatial": "2d", "depth": 2, "base_channels": 4, "norm": "instance"}"#);
    assert_eq!(message(models.load("fewer", &device)), format!("{}: tensor body.EncoderDecoder.encoder.0.body.Plain.units.0.norm.Batch.gamma is missing from the file", weights("fewer")));

    let dir = saved(&models, "dtype");
    write_head_bias_as_f64(&dir.join("weights.safetensors"));
    assert_eq!(message(models.load("dtype", &device)), format!("{}: tensor body.EncoderDecoder.head.Two.bias is F64 in the file, the network expects F32", weights("dtype")));

    let dir = saved(&models, "unknown");
    std::fs::write(dir.join("config.json"), r#"{"name": "xnet", "spatial": "2d"}"#).unwrap();
    let expected_variants = "`unet`, `res_unet`, `dense_unet`, `dp_unet`, `vnet`, `fcn`, `classifier`, `dpn`";
    assert_eq!(
        message(models.load("unknown", &device)),
        format!("{}: network config: unknown variant `xnet`, expected one of {expected_variants} at line 1 column 15", dir.join("config.json").display())
    );

    let net = config(UNET_2D).build(&device).unwrap();
    let other = config(r#"{"name": "unet", "spatial": "2d", "depth": 2, "base_channels": 8, "norm": "batch"}"#);
    let first = "body.EncoderDecoder.encoder.0.body.Plain.units.0.conv.Two.weight";
    assert_eq!(
        message(models.save("mismatch", &other, &net, &ModelMetadata::now(), false)),
        format!("the network (unet) does not fit its config (unet): tensor 0 is {first} [4, 1, 3, 3], the config gives {first} [8, 1, 3, 3]")
    );
    assert!(!root.join("mismatch").exists());
    std::fs::remove_dir_all(root).unwrap();
}

/// Rewrites the file with `head.bias` stored as f64 (same values).
fn write_head_bias_as_f64(path: &Path) {
    use safetensors::{Dtype, SafeTensors, tensor::TensorView};
    let bytes = std::fs::read(path).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let name = "body.EncoderDecoder.head.Two.bias";
    let wide: Vec<u8> = bytemuck_f32(file.tensor(name).unwrap().data()).iter().flat_map(|v| f64::from(*v).to_le_bytes()).collect();
    let mut views: Vec<(String, TensorView)> = file.tensors().into_iter().filter(|(n, _)| n != name).collect();
    views.push((name.to_string(), TensorView::new(Dtype::F64, vec![2], &wide).unwrap()));
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn the_default_root_follows_the_medas_data_folder() {
    let env = |pairs: &'static [(&'static str, &'static str)]| move |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| std::ffi::OsString::from(v));
    assert_eq!(store::default_root_from(env(&[("MEDAS_DATA", "/d/medas"), ("XDG_DATA_HOME", "/x"), ("HOME", "/h")])), Path::new("/d/medas/models"));
    assert_eq!(store::default_root_from(env(&[("MEDAS_DATA", ""), ("XDG_DATA_HOME", "/x"), ("HOME", "/h")])), Path::new("/x/medas/models"));
    assert_eq!(store::default_root_from(env(&[("HOME", "/h")])), Path::new("/h/.local/share/medas/models"));
}

#[test]
fn mutated_weight_and_json_files_give_errors_not_panics() {
    let root = scratch("mutated");
    let models = ModelStore::new(&root);
    let device = ComputeDevice::Cpu.inference();
    let dir = saved(&models, "m");
    let originals: Vec<(&str, Vec<u8>)> = ["weights.safetensors", "config.json", "metadata.json"].into_iter().map(|f| (f, std::fs::read(dir.join(f)).unwrap())).collect();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut refused, mut loaded) = (0, 0);
    for (file, original) in &originals {
        for _ in 0..150 {
            let mut bytes = original.clone();
            // Mostly the header / JSON text, where a change alters structure rather than values.
            let span = bytes.len().min(if *file == "weights.safetensors" { 2048 } else { bytes.len() });
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % span.min(bytes.len());
                match next() % 3 {
                    0 => bytes[at] = next() as u8,
                    1 => bytes[at] = b"0123456789{}[],:\"-."[(next() % 19) as usize],
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            std::fs::write(dir.join(file), &bytes).unwrap();
            match models.load("m", &device) {
                Ok(_) => loaded += 1,
                Err(_) => refused += 1,
            }
        }
        std::fs::write(dir.join(file), original).unwrap();
    }
    eprintln!("mutated files: {refused} refused, {loaded} still loadable");
    assert!(refused > 300, "{refused} of 450 mutations refused");
    models.load("m", &device).unwrap();
    std::fs::remove_dir_all(root).unwrap();
}
