//! Checkpoints in the safetensors format (readable by Python's `safetensors` package).
//!
//! Tensor names (documented in docs/guide.md):
//!   `param.<layer>.<tensor>`       trained parameters (f32), e.g. `param.layer0.weight` [in, out]
//!   `buffer.<layer>.<buffer>`      BatchNorm running statistics (f32)
//!   `optim.<parameter>.<slot>`     optimiser state (`velocity`, `sum_sq`, `mean_sq`, `m`, `v`)
//!   `best.<layer>.<tensor>`, `best_buffer.<layer>.<buffer>`
//!                                  the best epoch's parameters and statistics so far, while
//!                                  the run tracks them (mid-run, when the best is not the last)
//!   `last.<layer>.<tensor>`, `last_buffer.<layer>.<buffer>`
//!                                  in a finished run's checkpoint whose `param.*` are an
//!                                  earlier best epoch's: the last epoch's, which a resumed run
//!                                  continues from
//!   `preprocess.mean`, `preprocess.std`  per-input-feature statistics: x ↦ (x − mean) / std
//!                                  on raw 0–255 pixel values
//! Metadata (string → string): `format` = `kiln-checkpoint-1`, `architecture` (JSON: widths,
//! activation, batch_norm, dropout), `config` (the run's JSON), `class_names` (JSON),
//! `optimizer`, `optimizer_step`, `epoch`, `rng` (JSON of dropout stream positions), and the
//! early-stopping and history fields the trainer resumes from.

use crate::error::{write_atomically, Result, TrainError};
use kiln_tensor::{Backend, HostData, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const FORMAT: &str = "kiln-checkpoint-1";

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// name → (shape, data); data is f32 or u32.
    pub tensors: BTreeMap<String, (Vec<usize>, HostData)>,
    pub metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// Reads a tensor back from the device into the checkpoint.
    pub fn put<B: Backend>(&mut self, name: impl Into<String>, t: &Tensor<B>) -> Result<()> {
        self.tensors
            .insert(name.into(), (t.dims().to_vec(), t.to_host()?));
        Ok(())
    }

    pub fn meta(&mut self, key: &str, value: impl ToString) {
        self.metadata.insert(key.into(), value.to_string());
    }

    /// A tensor on `backend`; `path` names the file in errors.
    pub fn tensor<B: Backend>(&self, path: &Path, name: &str, backend: &B) -> Result<Tensor<B>> {
        let (shape, data) = self
            .tensors
            .get(name)
            .ok_or_else(|| TrainError::Checkpoint {
                path: path.into(),
                message: format!("it has no tensor {name}"),
            })?;
        Ok(Tensor::from_host(data, shape.clone(), backend)?)
    }

    pub fn get_meta(&self, path: &Path, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| TrainError::Checkpoint {
                path: path.into(),
                message: format!("its metadata has no {key}"),
            })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes: Vec<(String, Vec<u8>, Dtype, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(name, (shape, data))| {
                let (bytes, dtype) = match data {
                    HostData::F32(v) => {
                        (v.iter().flat_map(|x| x.to_le_bytes()).collect(), Dtype::F32)
                    }
                    HostData::U32(v) => {
                        (v.iter().flat_map(|x| x.to_le_bytes()).collect(), Dtype::U32)
                    }
                    HostData::U8(v) => (v.clone(), Dtype::U8),
                    other => {
                        let v: Vec<f32> = other.to_f64_vec().iter().map(|&x| x as f32).collect();
                        (v.iter().flat_map(|x| x.to_le_bytes()).collect(), Dtype::F32)
                    }
                };
                (name.clone(), bytes, dtype, shape.clone())
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(name, b, dtype, shape)| {
                Ok((name.clone(), TensorView::new(*dtype, shape.clone(), b)?))
            })
            .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
            .map_err(|e| TrainError::file(path, format!("cannot encode the checkpoint: {e}")))?;
        let metadata: HashMap<String, String> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain([("format".to_string(), FORMAT.to_string())])
            .collect();
        let encoded = safetensors::tensor::serialize(views, Some(metadata))
            .map_err(|e| TrainError::file(path, format!("cannot encode the checkpoint: {e}")))?;
        write_atomically(path, &encoded)
    }

    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bytes = std::fs::read(path).map_err(|e| TrainError::Checkpoint {
            path: path.into(),
            message: format!("cannot read it: {e}"),
        })?;
        let corrupt = |e: safetensors::SafeTensorError| TrainError::Checkpoint {
            path: path.into(),
            message: format!(
                "not a readable safetensors file ({e}); it may be truncated or corrupt"
            ),
        };
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(corrupt)?;
        let metadata: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        if metadata.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(TrainError::Checkpoint {
                path: path.into(),
                message: format!("it is not a Kiln checkpoint (metadata format ≠ {FORMAT})"),
            });
        }
        let file = SafeTensors::deserialize(&bytes).map_err(corrupt)?;
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            let data = view.data();
            let host = match view.dtype() {
                Dtype::F32 => HostData::F32(
                    data.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ),
                Dtype::U32 => HostData::U32(
                    data.chunks_exact(4)
                        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ),
                Dtype::U8 => HostData::U8(data.to_vec()),
                other => {
                    return Err(TrainError::Checkpoint {
                        path: path.into(),
                        message: format!("tensor {name} has unsupported dtype {other:?}"),
                    })
                }
            };
            tensors.insert(name, (view.shape().to_vec(), host));
        }
        Ok(Checkpoint { tensors, metadata })
    }

    /// Names of tensors with `prefix`, the prefix removed.
    pub fn names_with(&self, prefix: &str) -> Vec<String> {
        self.tensors
            .keys()
            .filter_map(|k| k.strip_prefix(prefix).map(str::to_string))
            .collect()
    }
}
