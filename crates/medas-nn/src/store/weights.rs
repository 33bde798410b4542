//! A module's tensors as a safetensors file, named by module path.
//!
//! **Naming scheme** (`medas-module-path/1`): a tensor's name is the chain of Burn module fields
//! from the network's root to the tensor, joined with `.`: struct fields by their name, `Vec`
//! items by their index, enum variants by their variant name (`Option` adds nothing). For
//! example `body.EncoderDecoder.encoder.0.body.Plain.units.1.norm.Batch.running_var`. Every
//! float tensor the module visits is stored: parameters and buffers alike (batch
//! normalisation's `running_mean` / `running_var`). Names only change when a network's Rust
//! definition does; the scheme is written into the file's header (`format`).
//!
//! Tensors are stored in their own dtype, little-endian, in the module's shapes (Burn's layouts:
//! convolution weights (out, in, k...), transposed convolutions (in, out, k...), linear weights
//! (in, out)). Loading checks that the file holds exactly the module's tensors, each with the
//! same shape and dtype, and names the first one that does not fit.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Bool, DType, Int, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::Path;

/// The value of the `format` entry in the header of the weight files MEDAS writes.
pub const WEIGHT_FORMAT: &str = "medas-module-path/1";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightError {
    #[error("not a readable safetensors file: {0}")]
    Corrupt(String),
    #[error("tensor {0} is missing from the file")]
    Missing(String),
    #[error("tensor {name} has shape {found:?} in the file, the network expects {expected:?}")]
    Shape { name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("tensor {name} is {found} in the file, the network expects {expected}")]
    DType { name: String, expected: String, found: String },
    #[error("the file has tensor {0}, which the network does not have")]
    Unexpected(String),
    #[error("tensor {name}: {what} tensors cannot be stored")]
    Unsupported { name: String, what: String },
    #[error("cannot write the weights: {0}")]
    Write(String),
}

/// One tensor as stored: dtype, shape and little-endian bytes.
pub struct StoredTensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// Every float tensor of `module` under its path name, in visiting order.
pub fn collect_tensors<M: Module>(module: &M) -> Result<Vec<(String, StoredTensor)>, WeightError> {
    let mut collector = Collector { path: Vec::new(), tensors: Vec::new(), error: None };
    // Batch normalisation's running statistics may hold the last training step's update
    // aside, per thread; `valid` merges it in (visiting alone would read the value before it).
    module.valid().visit(&mut collector);
    match collector.error {
        Some(error) => Err(error),
        None => Ok(collector.tensors),
    }
}

/// The path names of `module`'s float tensors with their shapes, in visiting order.
pub fn tensor_names<M: Module>(module: &M) -> Vec<(String, Vec<usize>)> {
    let mut names = Names { path: Vec::new(), names: Vec::new() };
    module.visit(&mut names);
    names.names
}

/// Writes `module`'s tensors to `path` (see the module docs for the names).
pub fn save_weights<M: Module>(module: &M, path: &Path) -> Result<(), WeightError> {
    let bytes = serialize(&collect_tensors(module)?, Some(WEIGHT_FORMAT))?;
    std::fs::write(path, bytes).map_err(|e| WeightError::Write(format!("{}: {e}", path.display())))
}

/// Float tensors as the bytes of a safetensors file, with `format` in its header if given.
pub fn serialize(tensors: &[(String, StoredTensor)], format: Option<&str>) -> Result<Vec<u8>, WeightError> {
    let views: Vec<(String, Entry)> = tensors.iter().map(|(name, t)| Ok((name.clone(), Entry::new(name, t)?))).collect::<Result<_, WeightError>>()?;
    let header = format.map(|format| [("format".to_string(), format.to_string())].into_iter().collect());
    safetensors::serialize(views, header).map_err(|e| WeightError::Write(e.to_string()))
}

/// How a file names the module's tensors: `file_name` turns a module path into the file's
/// name (the identity for MEDAS's own files), `skipped` tells which of the file's other tensors
/// may stay unused.
pub struct Naming<'a> {
    pub file_name: &'a dyn Fn(&str) -> String,
    pub skipped: &'a dyn Fn(&str) -> bool,
}

/// `module` with every float tensor replaced by the one `bytes` (a safetensors file) holds
/// under its MEDAS name. The file must hold exactly the module's tensors.
pub fn load_weights<M: Module>(module: M, bytes: &[u8]) -> Result<M, WeightError> {
    load_weights_named(module, bytes, &Naming { file_name: &|path| path.to_string(), skipped: &|_| false })
}

/// [`load_weights`] with the file's names given by `naming` (see [`super::pytorch`]).
pub fn load_weights_named<M: Module>(module: M, bytes: &[u8], naming: &Naming) -> Result<M, WeightError> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| WeightError::Corrupt(e.to_string()))?;
    let mut loader = Loader { path: Vec::new(), file: &file, file_name: naming.file_name, used: BTreeSet::new(), error: None };
    let module = module.map(&mut loader);
    if let Some(error) = loader.error {
        return Err(error);
    }
    let mut names = file.names();
    names.sort_unstable();
    match names.into_iter().find(|name| !loader.used.contains(*name) && !(naming.skipped)(name)) {
        Some(extra) => Err(WeightError::Unexpected(extra.to_string())),
        None => Ok(module),
    }
}

fn to_safetensors(dtype: DType) -> Option<Dtype> {
    Some(match dtype {
        DType::F64 => Dtype::F64,
        DType::F32 | DType::Flex32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        _ => return None,
    })
}

fn dtype_name(dtype: DType) -> String {
    to_safetensors(dtype).map_or_else(|| format!("{dtype:?}"), |d| d.to_string())
}

struct Entry<'a> {
    dtype: Dtype,
    tensor: &'a StoredTensor,
}

impl<'a> Entry<'a> {
    fn new(name: &str, tensor: &'a StoredTensor) -> Result<Entry<'a>, WeightError> {
        let dtype = to_safetensors(tensor.dtype).ok_or_else(|| WeightError::Unsupported { name: name.to_string(), what: format!("{:?}", tensor.dtype) })?;
        Ok(Entry { dtype, tensor })
    }
}

impl View for Entry<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.tensor.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.tensor.bytes)
    }
    fn data_len(&self) -> usize {
        self.tensor.bytes.len()
    }
}

/// Tensor bytes as the file stores them (safetensors is little-endian).
fn little_endian_bytes(data: TensorData) -> Vec<u8> {
    let size = data.dtype().size();
    let mut bytes = data.into_bytes().to_vec();
    if cfg!(target_endian = "big") && size > 1 {
        bytes.chunks_exact_mut(size).for_each(<[u8]>::reverse);
    }
    bytes
}

struct Collector {
    path: Vec<String>,
    tensors: Vec<(String, StoredTensor)>,
    error: Option<WeightError>,
}

impl Collector {
    fn unsupported(&mut self, what: &str) {
        let name = self.path.join(".");
        self.error.get_or_insert(WeightError::Unsupported { name, what: what.to_string() });
    }
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let data = param.val().into_data();
        let (dtype, shape) = (data.dtype(), data.shape().to_vec());
        self.tensors.push((self.path.join("."), StoredTensor { dtype, shape, bytes: little_endian_bytes(data) }));
    }

    fn visit_int<const D: usize>(&mut self, _param: &Param<Tensor<D, Int>>) {
        self.unsupported("integer");
    }

    fn visit_bool<const D: usize>(&mut self, _param: &Param<Tensor<D, Bool>>) {
        self.unsupported("boolean");
    }
}

struct Names {
    path: Vec<String>,
    names: Vec<(String, Vec<usize>)>,
}

impl ModuleVisitor for Names {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.names.push((self.path.join("."), param.shape().to_vec()));
    }
}

struct Loader<'a, 'data> {
    path: Vec<String>,
    file: &'a SafeTensors<'data>,
    file_name: &'a dyn Fn(&str) -> String,
    used: BTreeSet<String>,
    error: Option<WeightError>,
}

impl Loader<'_, '_> {
    /// The stored tensor for the current path, checked against the module's shape and dtype.
    fn stored(&mut self, shape: &[usize], dtype: DType) -> Result<TensorData, WeightError> {
        let name = (self.file_name)(&self.path.join("."));
        let view = self.file.tensor(&name).map_err(|_| WeightError::Missing(name.clone()))?;
        self.used.insert(name.clone());
        if view.shape() != shape {
            return Err(WeightError::Shape { name, expected: shape.to_vec(), found: view.shape().to_vec() });
        }
        if to_safetensors(dtype) != Some(view.dtype()) {
            return Err(WeightError::DType { name, expected: dtype_name(dtype), found: view.dtype().to_string() });
        }
        let mut bytes = view.data().to_vec();
        let size = dtype.size();
        if cfg!(target_endian = "big") && size > 1 {
            bytes.chunks_exact_mut(size).for_each(<[u8]>::reverse);
        }
        TensorData::try_from_bytes_vec(bytes, shape.to_vec(), dtype).map_err(|e| WeightError::Corrupt(format!("tensor {name}: {e:?}")))
    }
}

impl ModuleMapper for Loader<'_, '_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let shape = param.shape().to_vec();
        let current = param.val();
        let (dtype, device) = (current.dtype(), current.device());
        match self.stored(&shape, dtype) {
            Ok(data) => param.map(|tensor| {
                let loaded = Tensor::from_data(data, (&device, dtype));
                // A tensor made from data is a leaf without gradient tracking; keep the parameter's.
                if tensor.is_require_grad() { loaded.require_grad() } else { loaded }
            }),
            Err(error) => {
                self.error = Some(error);
                param
            }
        }
    }
}
