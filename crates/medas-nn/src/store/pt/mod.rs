//! `.pt` files as `torch.save(model.state_dict(), path)` writes them (PyTorch >= 1.6): a zip
//! archive `NAME/data.pkl` (the pickled `OrderedDict`), `NAME/data/KEY` (each storage's raw
//! little-endian elements), `NAME/version`, in newer versions `NAME/byteorder`.
//!
//! Read without PyTorch and without running the pickle: [`pickle`] accepts only the opcodes and
//! globals a state_dict needs and refuses anything else (a pickle can otherwise call any Python
//! function), [`zip`] reads the uncompressed entries torch writes. Legacy (pre-1.6, non-zip)
//! files are refused.

mod pickle;
mod zip;

use burn::tensor::DType;

use super::weights::StoredTensor;
use pickle::TensorRef;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PtError {
    #[error("not a torch.save zip file: {0}")]
    Zip(String),
    #[error("not a state_dict pickle: {0}")]
    Pickle(String),
    #[error("the pickle refers to {0}, which a state_dict does not use; refused (unpickling it could run code)")]
    Forbidden(String),
    #[error("tensor {name}: {message}")]
    Tensor { name: String, message: String },
}

/// Whether `bytes` start like a zip file (what `torch.save` writes).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// Every tensor of the state_dict in `bytes` under its PyTorch name, in the file's order, in
/// its own dtype with PyTorch's shape, its elements gathered in row-major order.
pub fn read_state_dict(bytes: &[u8]) -> Result<Vec<(String, StoredTensor)>, PtError> {
    let entries = zip::entries(bytes)?;
    let mut pickles = entries.keys().filter(|name| *name == "data.pkl" || name.ends_with("/data.pkl"));
    let (Some(pickle_name), None) = (pickles.next(), pickles.next()) else {
        return Err(PtError::Zip("the archive must hold exactly one data.pkl".into()));
    };
    let prefix = &pickle_name[..pickle_name.len() - "data.pkl".len()];
    if let Some(order) = entries.get(&format!("{prefix}byteorder"))
        && order.trim_ascii() != b"little"
    {
        return Err(PtError::Zip(format!("byte order {:?}; only little-endian files are read", String::from_utf8_lossy(order))));
    }
    let tensors = pickle::state_dict(entries[pickle_name])?;
    tensors
        .into_iter()
        .map(|(name, tensor)| {
            let storage = entries.get(&format!("{prefix}data/{}", tensor.storage.key)).copied();
            let storage = storage.ok_or_else(|| PtError::Tensor { name: name.clone(), message: format!("storage {} is missing from the archive", tensor.storage.key) })?;
            let stored = gather(&tensor, storage).map_err(|message| PtError::Tensor { name: name.clone(), message })?;
            Ok((name, stored))
        })
        .collect()
}

/// The tensor's elements from its storage's bytes, row-major, every index checked.
fn gather(tensor: &TensorRef, storage: &[u8]) -> Result<StoredTensor, String> {
    let dtype: DType = tensor.storage.dtype;
    let size = dtype.size();
    let numel = tensor.storage.numel;
    if (storage.len() as u64) < numel.saturating_mul(size as u64) {
        return Err(format!("its storage has {} bytes, fewer than {numel} elements of {size}", storage.len()));
    }
    let count = tensor.shape.iter().try_fold(1usize, |n, &s| n.checked_mul(s)).ok_or("its size overflows")?;
    let bytes = if count == 0 {
        Vec::new()
    } else {
        // The last element's index bounds every other one.
        let last = tensor.shape.iter().zip(&tensor.stride).try_fold(tensor.offset, |sum, (&s, &st)| sum.checked_add((s as u64 - 1).checked_mul(st as u64)?));
        if last.is_none_or(|last| last >= numel) {
            return Err(format!("size {:?}, stride {:?} and offset {} reach beyond its storage of {numel} elements", tensor.shape, tensor.stride, tensor.offset));
        }
        copy_strided(tensor, storage, size, count)
    };
    Ok(StoredTensor { dtype, shape: tensor.shape.clone(), bytes })
}

/// Copies `count` elements of `size` bytes in row-major order (indices already checked).
fn copy_strided(tensor: &TensorRef, storage: &[u8], size: usize, count: usize) -> Vec<u8> {
    let offset = tensor.offset as usize;
    let mut contiguous = vec![0; tensor.shape.len()];
    let mut running = 1;
    for axis in (0..tensor.shape.len()).rev() {
        contiguous[axis] = running;
        running *= tensor.shape[axis];
    }
    let is_contiguous = tensor.shape.iter().zip(tensor.stride.iter().zip(&contiguous)).all(|(&s, (st, c))| s == 1 || st == c);
    if is_contiguous {
        return storage[offset * size..(offset + count) * size].to_vec();
    }
    let mut bytes = Vec::with_capacity(count * size);
    let mut index = vec![0usize; tensor.shape.len()];
    for _ in 0..count {
        let element = offset + index.iter().zip(&tensor.stride).map(|(i, s)| i * s).sum::<usize>();
        bytes.extend_from_slice(&storage[element * size..(element + 1) * size]);
        // Advance the multi-index, last axis fastest.
        for axis in (0..index.len()).rev() {
            index[axis] += 1;
            if index[axis] < tensor.shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    bytes
}

#[cfg(test)]
mod tests;
