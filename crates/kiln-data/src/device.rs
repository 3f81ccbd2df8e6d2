//! A dataset kept on the device: pixels uploaded once as u8 (in chunks of whole rows under
//! the backend's binding limit), labels as u32, and the preprocessing as one scale and one
//! shift per feature (and a whitening matrix for PCA/ZCA). A minibatch is a u32 index tensor;
//! `batch` gathers, converts and normalises it in one kernel per chunk, with no host-to-device
//! copy of images. Augmented training takes `raw_batch` (pixels scaled to [0, 1]), transforms
//! it, then `normalize`s it.

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::preprocess::Normalization;
use kiln_tensor::{Backend, ImageShape, Tensor};
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
    /// The affine map for pixels already in [0, 1]: scale · 255 and shift, as [1, features].
    unit_scale: Tensor<B>,
    unit_shift: Tensor<B>,
    /// 1/255 and 0 per feature: the gather that leaves pixels in [0, 1].
    raw_scale: Tensor<B>,
    raw_shift: Tensor<B>,
    whitening: Option<Tensor<B>>,
    image: ImageShape,
    /// Batches as [b, channels, height, width] instead of [b, features].
    image_batches: bool,
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
        let unit_scale: Vec<f32> = scale.iter().map(|s| s * 255.0).collect();
        let whitening = match &normalization.whitening {
            Some(w) if w.len() == features * features => {
                Some(Tensor::from_slice(w, [features, features], backend)?)
            }
            Some(w) => {
                return Err(DataError::Invalid(format!(
                    "the whitening matrix has {} values, {features} features need {}",
                    w.len(),
                    features * features
                )))
            }
            None => None,
        };
        Ok(DeviceDataset {
            unit_scale: Tensor::from_vec(unit_scale, [1, features], backend)?,
            unit_shift: Tensor::from_slice(&shift, [1, features], backend)?,
            raw_scale: Tensor::from_vec(vec![1.0f32 / 255.0; features], [features], backend)?,
            raw_shift: Tensor::from_vec(vec![0.0f32; features], [features], backend)?,
            whitening,
            image: data.image_shape(),
            image_batches: false,
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

    /// The size of one image.
    pub fn image(&self) -> ImageShape {
        self.image
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

    /// Batches (from `batch` and `normalize`) shaped [b, channels, height, width], the layout
    /// convolution layers take, instead of [b, features] (a view: the same elements).
    pub fn image_batches(mut self, on: bool) -> Self {
        self.image_batches = on;
        self
    }

    /// The normalised images (f32 [b, features], or [b, c, h, w] with `image_batches`) and
    /// labels (u32 [b]) at `indices` (u32 [b]).
    pub fn batch(&self, indices: &Tensor<B>) -> Result<(Tensor<B>, Tensor<B>)> {
        let (x, y) = self.gather(indices, &self.scale, &self.shift)?;
        Ok((self.model_input(x)?, y))
    }

    /// The images with pixels scaled to [0, 1] (before normalisation, for augmentation) and
    /// the labels at `indices`.
    pub fn raw_batch(&self, indices: &Tensor<B>) -> Result<(Tensor<B>, Tensor<B>)> {
        self.gather(indices, &self.raw_scale, &self.raw_shift)
    }

    /// The fitted preprocessing applied to images in [0, 1] (from `raw_batch`).
    pub fn normalize(&self, unit: &Tensor<B>) -> Result<Tensor<B>> {
        let x = ((unit * &self.unit_scale)? + &self.unit_shift)?;
        self.model_input(x)
    }

    /// Whitened when the preprocessing says so, then shaped as the model takes it.
    fn model_input(&self, x: Tensor<B>) -> Result<Tensor<B>> {
        let x = match &self.whitening {
            Some(w) => x.matmul(w)?,
            None => x,
        };
        if !self.image_batches {
            return Ok(x);
        }
        let rows = x.dims()[0];
        let ImageShape {
            channels,
            height,
            width,
        } = self.image;
        Ok(x.reshape([rows, channels, height, width])?)
    }

    fn gather(
        &self,
        indices: &Tensor<B>,
        scale: &Tensor<B>,
        shift: &Tensor<B>,
    ) -> Result<(Tensor<B>, Tensor<B>)> {
        // A narrowed view of an epoch's index tensor is made contiguous once, for both gathers.
        let indices = indices.contiguous()?;
        let chunks: Vec<(&Tensor<B>, usize)> = self.chunks.iter().map(|(t, f)| (t, *f)).collect();
        let x = Tensor::gather_u8_affine(&chunks, &indices, scale, shift)?;
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
