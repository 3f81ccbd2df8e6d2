//! A dataset kept on the device: pixels uploaded once as u8 (in chunks of whole rows under
//! the backend's binding limit), labels as u32, and the preprocessing as one scale and one
//! shift per feature. A minibatch is a u32 index tensor; `batch` gathers, converts and
//! normalises it in one kernel per chunk, with no host-to-device copy of images.

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::preprocess::Normalization;
use kiln_tensor::{Backend, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

pub struct DeviceDataset<B: Backend> {
    chunks: Vec<(Tensor<B>, usize)>,
    /// u32 [len, 1] (gathered with the same indices as the pixels).
    labels: Tensor<B>,
    /// 0, 1, …, len − 1: the indices of an evaluation pass, uploaded once.
    in_order: Tensor<B>,
    scale: Tensor<B>,
    shift: Tensor<B>,
    host_labels: Vec<u8>,
    features: usize,
}

impl<B: Backend> DeviceDataset<B> {
    /// Uploads `data` with the fitted `normalization`. `max_chunk_bytes` overrides the
    /// backend's binding limit (tests use it to force several chunks).
    pub fn upload(
        data: &Dataset,
        normalization: &Normalization,
        backend: &B,
        max_chunk_bytes: Option<usize>,
    ) -> Result<Self> {
        let features = data.features();
        if normalization.mean.len() != features {
            return Err(DataError::Invalid(format!(
                "the preprocessing has {} features, the dataset {features}",
                normalization.mean.len()
            )));
        }
        if data.is_empty() {
            return Err(DataError::Invalid(format!(
                "the {} set is empty",
                data.name
            )));
        }
        let limit = max_chunk_bytes
            .unwrap_or(usize::MAX)
            .min(backend.max_binding_bytes());
        let rows_per_chunk = (limit / features.max(1)).max(1);
        let mut chunks = Vec::new();
        let mut first = 0;
        while first < data.len() {
            let rows = rows_per_chunk.min(data.len() - first);
            let bytes = &data.images[first * features..(first + rows) * features];
            chunks.push((Tensor::from_slice(bytes, [rows, features], backend)?, first));
            first += rows;
        }
        let labels: Vec<u32> = data.labels.iter().map(|&l| l as u32).collect();
        let (scale, shift) = normalization.scale_shift();
        Ok(DeviceDataset {
            chunks,
            labels: Tensor::from_vec(labels, [data.len(), 1], backend)?,
            in_order: Tensor::from_vec((0..data.len() as u32).collect(), [data.len()], backend)?,
            scale: Tensor::from_vec(scale, [features], backend)?,
            shift: Tensor::from_vec(shift, [features], backend)?,
            host_labels: data.labels.clone(),
            features,
        })
    }

    pub fn len(&self) -> usize {
        self.host_labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.host_labels.is_empty()
    }

    pub fn features(&self) -> usize {
        self.features
    }

    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    pub fn labels(&self) -> &[u8] {
        &self.host_labels
    }

    /// The indices 0..len in order (slice it with `narrow` for evaluation batches).
    pub fn in_order(&self) -> &Tensor<B> {
        &self.in_order
    }

    /// The normalised images (f32 [b, features]) and labels (u32 [b]) at `indices` (u32 [b]).
    pub fn batch(&self, indices: &Tensor<B>) -> Result<(Tensor<B>, Tensor<B>)> {
        // A narrowed view of an epoch's index tensor is made contiguous once, for both gathers.
        let indices = indices.contiguous()?;
        let chunks: Vec<(&Tensor<B>, usize)> = self.chunks.iter().map(|(t, f)| (t, *f)).collect();
        let x = Tensor::gather_u8_affine(&chunks, &indices, &self.scale, &self.shift)?;
        let y = self
            .labels
            .gather_rows(&indices)?
            .reshape([indices.numel()])?;
        Ok((x, y))
    }
}

/// A permutation of 0..n, a function of (seed, epoch) only, so a resumed run sees the same
/// order as an uninterrupted one.
pub fn shuffled_indices(n: usize, seed: u64, epoch: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mix = seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    order.shuffle(&mut StdRng::seed_from_u64(mix));
    order
}
