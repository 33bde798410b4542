//! Weights trained with PyTorch: a `state_dict` saved as safetensors
//! (`safetensors.torch.save_file(model.state_dict(), path)`) or with `torch.save(model.state_dict(),
//! path)` (a `.pt` zip, read by [`super::pt`] without PyTorch) from the PyTorch `UNet` written out
//! in `crates/medas-nn/tests/pytorch_unet.py` (`TORCH_UNET`), which has our U-Net's layers
//! under PyTorch's names (`dims=2` or `3`; the names are the same in both). [`import_unet`] builds the MEDAS U-Net from a [`NetworkConfig`] and fills it from
//! such a file.
//!
//! Names are translated segment by segment by [`TORCH_SEGMENTS`]: our module path (see
//! [`super::weights`]) without the enum variants Burn adds, with Burn's field names replaced by
//! PyTorch's. For example
//!
//! | MEDAS | PyTorch |
//! |---|---|
//! | `body.EncoderDecoder.encoder.0.body.Plain.units.1.conv.Two.weight` | `encoder.0.convs.1.conv.weight` |
//! | `body.EncoderDecoder.encoder.0.body.Plain.units.1.norm.Batch.gamma` | `encoder.0.convs.1.norm.weight` |
//! | `body.EncoderDecoder.encoder.0.body.Plain.units.1.norm.Batch.running_var` | `encoder.0.convs.1.norm.running_var` |
//! | `body.EncoderDecoder.ups.0.Two.weight` | `ups.0.weight` |
//! | `body.EncoderDecoder.head.Two.bias` | `head.bias` |
//!
//! Layouts agree for every U-Net layer (convolution weights (out, in, k...), transposed
//! convolutions (in, out, k...), normalisation vectors (channels)), so tensors are copied as
//! they are; the U-Net has no linear layer (PyTorch's (out, in) against Burn's (in, out)).
//! PyTorch's `num_batches_tracked` counters have no counterpart and are skipped.

use burn::tensor::Device;
use std::path::Path;

use super::pt;
use super::weights::{self, Naming};
use super::StoreError;
use crate::nets::{Network, NetworkConfig};

/// How each segment of a MEDAS module path appears in PyTorch's name: dropped (`None`: enum
/// variants and the wrappers PyTorch's module does not have) or renamed. Segments not listed
/// (field names both share, list indices) stay as they are.
pub const TORCH_SEGMENTS: &[(&str, Option<&str>)] = &[
    // Network -> Body::EncoderDecoder, Block -> BlockBody::Plain: wrappers of ours.
    ("body", None),
    ("EncoderDecoder", None),
    ("Plain", None),
    // Conv / UpConv variants by dimension, Normalization variants by kind.
    ("Two", None),
    ("Three", None),
    ("Batch", None),
    ("Instance", None),
    ("Group", None),
    // PlainBlock's list of convolution units is `convs` in the PyTorch module.
    ("units", Some("convs")),
    // Burn's normalisation scale and shift are PyTorch's weight and bias.
    ("gamma", Some("weight")),
    ("beta", Some("bias")),
];

/// PyTorch buffers that MEDAS does not keep (the last segment of their names).
pub const TORCH_SKIPPED: &[&str] = &["num_batches_tracked"];

/// The PyTorch name of the tensor at MEDAS module path `path`.
pub fn torch_name(path: &str) -> String {
    let mut segments = Vec::new();
    for segment in path.split('.') {
        match TORCH_SEGMENTS.iter().find(|(ours, _)| *ours == segment) {
            Some((_, Some(theirs))) => segments.push(*theirs),
            Some((_, None)) => {}
            None => segments.push(segment),
        }
    }
    segments.join(".")
}

/// Builds the U-Net `config` describes (it must be `"name": "unet"`) on `device` and loads the
/// PyTorch weights in `path` (safetensors, or a `torch.save` zip: told apart by content) into it.
pub fn import_unet(config: &NetworkConfig, path: &Path, device: &Device) -> Result<Network, StoreError> {
    if !matches!(config, NetworkConfig::Unet(_)) {
        return Err(StoreError::Invalid {
            path: path.display().to_string(),
            message: format!("PyTorch import covers the plain U-Net (\"unet\"), not {:?}", config.name()),
        });
    }
    let mut bytes = std::fs::read(path).map_err(|e| super::io_error(path, e))?;
    let skipped = |name: &str| name.rsplit('.').next().is_some_and(|last| TORCH_SKIPPED.contains(&last));
    if pt::is_zip(&bytes) {
        bytes = safetensors_of_pt(&bytes, &skipped).map_err(|message| StoreError::Invalid { path: path.display().to_string(), message })?;
    }
    let naming = Naming { file_name: &torch_name, skipped: &skipped };
    weights::load_weights_named(config.build(device)?, &bytes, &naming).map_err(|source| StoreError::Weights { path: path.display().to_string(), source })
}

/// A `torch.save` state_dict re-encoded as safetensors (the skipped buffers left out: they may
/// be integers, which safetensors files of weights do not hold).
fn safetensors_of_pt(bytes: &[u8], skipped: &dyn Fn(&str) -> bool) -> Result<Vec<u8>, String> {
    let mut tensors = pt::read_state_dict(bytes).map_err(|e| e.to_string())?;
    tensors.retain(|(name, _)| !skipped(name));
    weights::serialize(&tensors, None).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medas_paths_become_pytorch_state_dict_names() {
        for (ours, theirs) in [
            ("body.EncoderDecoder.encoder.0.body.Plain.units.1.conv.Two.weight", "encoder.0.convs.1.conv.weight"),
            ("body.EncoderDecoder.decoder.1.body.Plain.units.0.norm.Batch.gamma", "decoder.1.convs.0.norm.weight"),
            ("body.EncoderDecoder.encoder.2.body.Plain.units.0.norm.Instance.beta", "encoder.2.convs.0.norm.bias"),
            ("body.EncoderDecoder.encoder.0.body.Plain.units.0.norm.Batch.running_mean", "encoder.0.convs.0.norm.running_mean"),
            ("body.EncoderDecoder.ups.1.Three.weight", "ups.1.weight"),
            ("body.EncoderDecoder.head.Two.bias", "head.bias"),
            ("body.EncoderDecoder.deep_heads.0.Two.weight", "deep_heads.0.weight"),
        ] {
            assert_eq!(torch_name(ours), theirs);
        }
    }
}
