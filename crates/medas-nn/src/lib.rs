//! Neural networks for MEDAS on Burn 0.22.
//!
//! Tensors and modules are not generic over a backend in Burn 0.22: the backend travels with the
//! [`burn::tensor::Device`]. [`ComputeDevice`] is the paper's "computing backend" choice and
//! turns into that device.

pub mod conv;
pub mod device;
#[cfg(feature = "gpu")]
mod gpu;
pub mod infer;
pub mod loss;
pub mod nets;
pub mod optim;
pub mod ops;
pub mod store;

pub use conv::{ConvError, FastConv2d, FastConv3d};
pub use device::{ComputeDevice, DeviceError};
pub use infer::{InferError, SlidingWindowConfig};
pub use nets::{Network, NetworkConfig, NetworkError, NetworkOutput, SegmentationOutput};
pub use loss::{Loss, LossConfig, LossError, Target};
pub use store::{LoadedModel, ModelMetadata, ModelStore, ModelSummary, StoreError};
pub use optim::{OptimizerConfig, ScheduleConfig, TrainingConfigError};
