//! The GPU device (cargo feature `gpu`): Burn's cubecl backend (`Cube`) on wgpu, which on Linux
//! runs on the Vulkan driver (SPIR-V kernels where the adapter allows, WGSL otherwise).
//!
//! Our backend extensions ([`crate::conv::FastConvBackend`], [`crate::ops::VolumeOps`])
//! list `Cube` under this feature and take their trait default bodies here: Burn's own `conv3d`
//! and pooling/interpolation composed of ordinary tensor operations, whose gradients Burn's
//! autodiff derives. Correct everywhere, not tuned; the Flex impls stay the fast CPU path.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use burn::backend::Cube;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::tensor::wgpu::WgpuBackend;
use burn::tensor::{Device, DeviceKind};

use crate::conv::FastConvBackend;
use crate::ops::VolumeOps;

impl FastConvBackend for Cube {}
impl<C: CheckpointStrategy> FastConvBackend for Autodiff<Cube, C> {}
impl VolumeOps for Cube {}
impl<C: CheckpointStrategy> VolumeOps for Autodiff<Cube, C> {}

/// Devices opened so far, by adapter selector. Burn registers a wgpu runtime once per
/// selector and refuses a second `init`, so the first result (device or error) is kept.
static OPENED: Mutex<Option<HashMap<Option<usize>, Result<Device, String>>>> = Mutex::new(None);

/// The wgpu device for `index` (see [`crate::ComputeDevice::Gpu`]), opened on first use.
pub(crate) fn open(index: Option<usize>) -> Result<Device, String> {
    let mut opened = OPENED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    opened
        .get_or_insert_with(HashMap::new)
        .entry(index)
        .or_insert_with(|| acquire(index))
        .clone()
}

fn acquire(index: Option<usize>) -> Result<Device, String> {
    let kind = match index {
        None => DeviceKind::DefaultDevice,
        Some(n) => DeviceKind::DiscreteGpu(n),
    };
    let options = Device::wgpu_options().device_kind(kind).graphics_api(WgpuBackend::Auto);
    // A missing Vulkan loader or driver should be an error for the user, not a crash.
    match catch_unwind(AssertUnwindSafe(|| options.init())) {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(error)) => Err(error.to_string()),
        Err(panic) => Err(panic_text(panic.as_ref())),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the wgpu runtime panicked while starting".to_string())
}
