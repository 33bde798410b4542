//! The computing backend a user picks (`--device`, a config's `"device"`), and the Burn device it
//! becomes.
//!
//! `cpu` is always there. `gpu` (Burn's cubecl backend on wgpu/Vulkan, see docs/gpu.md) exists
//! only in builds with the `gpu` cargo feature; other builds still parse the name, so that a
//! config asking for it fails with a message that says how to get it rather than a serde error.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where tensors live and kernels run. Written as `"cpu"`, `"gpu"` or `"gpu:N"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeDevice {
    /// Burn's pure-Rust `flex` backend on all cores (rayon). Always available.
    #[default]
    Cpu,
    /// A GPU through wgpu (Vulkan on Linux). `None`: the adapter wgpu ranks best (a discrete
    /// GPU first; `CUBECL_WGPU_DEFAULT_DEVICE` overrides); `Some(n)`: the n-th discrete GPU.
    #[cfg(feature = "gpu")]
    Gpu(Option<usize>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    #[error("unknown device {0:?}; this build knows: {known}", known = known_names())]
    Unknown(String),
    #[error(
        "device {0:?}: this build has no GPU support; rebuild with `cargo build --features gpu` (see docs/gpu.md)"
    )]
    NoGpuSupport(String),
    #[error("device {name:?}: no usable GPU adapter ({reason}); see docs/gpu.md for the Vulkan driver it needs")]
    Unavailable { name: String, reason: String },
}

fn known_names() -> &'static str {
    if cfg!(feature = "gpu") { "cpu, gpu, gpu:N" } else { "cpu" }
}

impl ComputeDevice {
    /// Every device this build can use, for help texts and catalog enums.
    pub const ALL: &'static [ComputeDevice] = &[
        ComputeDevice::Cpu,
        #[cfg(feature = "gpu")]
        ComputeDevice::Gpu(None),
    ];

    /// The kind of device, without an adapter index.
    pub fn name(self) -> &'static str {
        match self {
            ComputeDevice::Cpu => "cpu",
            #[cfg(feature = "gpu")]
            ComputeDevice::Gpu(_) => "gpu",
        }
    }

    /// The device for inference (no gradient tape), or why it cannot be had: a GPU is opened on
    /// first use, and opening fails without a driver or adapter.
    pub fn open(self) -> Result<Device, DeviceError> {
        match self {
            ComputeDevice::Cpu => Ok(Device::flex()),
            #[cfg(feature = "gpu")]
            ComputeDevice::Gpu(index) => crate::gpu::open(index).map_err(|reason| {
                DeviceError::Unavailable { name: self.to_string(), reason }
            }),
        }
    }

    /// [`Self::open`] for training: the same backend wrapped in reverse-mode autodiff.
    pub fn open_training(self) -> Result<Device, DeviceError> {
        self.open().map(|device| device.autodiff())
    }

    /// The device for inference: no gradient tape.
    ///
    /// # Panics
    /// When a GPU cannot be opened; call [`Self::open`] first where that can happen.
    pub fn inference(self) -> Device {
        self.open().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The device for training: the same backend wrapped in reverse-mode autodiff.
    ///
    /// # Panics
    /// As [`Self::inference`].
    pub fn training(self) -> Device {
        self.inference().autodiff()
    }
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "gpu")]
            ComputeDevice::Gpu(Some(index)) => write!(f, "gpu:{index}"),
            _ => f.write_str(self.name()),
        }
    }
}

impl FromStr for ComputeDevice {
    type Err = DeviceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lower = text.trim().to_ascii_lowercase();
        if lower == "cpu" || lower == "flex" {
            return Ok(ComputeDevice::Cpu);
        }
        let index = match lower.as_str() {
            "gpu" | "vulkan" | "wgpu" => None,
            _ => match lower.strip_prefix("gpu:").map(str::parse::<usize>) {
                Some(Ok(index)) => Some(index),
                _ => return Err(DeviceError::Unknown(text.to_string())),
            },
        };
        gpu_device(text, index)
    }
}

#[cfg(feature = "gpu")]
fn gpu_device(_text: &str, index: Option<usize>) -> Result<ComputeDevice, DeviceError> {
    Ok(ComputeDevice::Gpu(index))
}

#[cfg(not(feature = "gpu"))]
fn gpu_device(text: &str, _index: Option<usize>) -> Result<ComputeDevice, DeviceError> {
    Err(DeviceError::NoGpuSupport(text.to_string()))
}

impl Serialize for ComputeDevice {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ComputeDevice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tensor;

    #[test]
    fn parses_names_and_rejects_unknown_ones() {
        assert_eq!("CPU".parse::<ComputeDevice>(), Ok(ComputeDevice::Cpu));
        assert_eq!("flex".parse::<ComputeDevice>(), Ok(ComputeDevice::Cpu));
        let error = "tpu".parse::<ComputeDevice>().unwrap_err();
        assert!(error.to_string().contains("\"tpu\""), "{error}");
        assert!("gpu:x".parse::<ComputeDevice>().is_err());
    }

    #[test]
    fn serde_round_trips_through_the_name() {
        let json = serde_json::to_string(&ComputeDevice::Cpu).unwrap();
        assert_eq!(json, "\"cpu\"");
        assert_eq!(serde_json::from_str::<ComputeDevice>(&json).unwrap(), ComputeDevice::Cpu);
    }

    #[cfg(not(feature = "gpu"))]
    #[test]
    fn gpu_without_the_feature_says_how_to_get_it() {
        let expected = "device \"gpu\": this build has no GPU support; rebuild with `cargo build --features gpu` (see docs/gpu.md)";
        assert_eq!("gpu".parse::<ComputeDevice>().unwrap_err().to_string(), expected);
        let error = serde_json::from_str::<ComputeDevice>("\"gpu\"").unwrap_err();
        assert!(error.to_string().starts_with(expected), "{error}");
        assert!("gpu:1".parse::<ComputeDevice>().unwrap_err().to_string().contains("--features gpu"));
    }

    #[cfg(feature = "gpu")]
    #[test]
    fn gpu_names_parse_with_the_feature() {
        assert_eq!("gpu".parse::<ComputeDevice>(), Ok(ComputeDevice::Gpu(None)));
        assert_eq!("GPU:1".parse::<ComputeDevice>(), Ok(ComputeDevice::Gpu(Some(1))));
        let json = serde_json::to_string(&ComputeDevice::Gpu(Some(2))).unwrap();
        assert_eq!(json, "\"gpu:2\"");
        assert_eq!(serde_json::from_str::<ComputeDevice>(&json).unwrap(), ComputeDevice::Gpu(Some(2)));
    }

    #[test]
    fn training_device_records_gradients() {
        // d/dx sum(x^2) = 2x on the autodiff device.
        let device = ComputeDevice::Cpu.training();
        let x = Tensor::<1>::from_floats([1.0, -2.0, 3.5], &device).require_grad();
        let grads = (x.clone() * x.clone()).sum().backward();
        let gradient: Vec<f32> = x.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
        assert_eq!(gradient, vec![2.0, -4.0, 7.0]);
    }
}
