//! Neural networks for MEDAS on Burn 0.22.
//!
//! Tensors and modules are not generic over a backend in Burn 0.22: the backend travels with the
//! [`burn::tensor::Device`]. [`ComputeDevice`] is the paper's "computing backend" choice and
//! turns into that device.

pub mod conv;
pub mod device;

pub use conv::{ConvError, FastConv2d, FastConv3d};
pub use device::{ComputeDevice, DeviceError};
