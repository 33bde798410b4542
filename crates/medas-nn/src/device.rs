//! The computing backend a user picks (`--device`), and the Burn device it becomes.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// Where tensors live and kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDevice {
    /// Burn's pure-Rust `flex` backend on all cores (rayon). Always available.
    #[default]
    Cpu,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    #[error("unknown device {0:?}; this build knows: cpu")]
    Unknown(String),
}

impl ComputeDevice {
    /// Every device this build can use, for help texts and catalog enums.
    pub const ALL: &'static [ComputeDevice] = &[ComputeDevice::Cpu];

    pub fn name(self) -> &'static str {
        match self {
            ComputeDevice::Cpu => "cpu",
        }
    }

    /// The device for inference: no gradient tape.
    pub fn inference(self) -> Device {
        match self {
            ComputeDevice::Cpu => Device::flex(),
        }
    }

    /// The device for training: the same backend wrapped in reverse-mode autodiff.
    pub fn training(self) -> Device {
        self.inference().autodiff()
    }
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ComputeDevice {
    type Err = DeviceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "cpu" | "flex" => Ok(ComputeDevice::Cpu),
            _ => Err(DeviceError::Unknown(text.to_string())),
        }
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
