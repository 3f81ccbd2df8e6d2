//! Tensor-level image augmentation: a minibatch f32 [count, channels · height · width] with
//! values in [0, 1], transformed by per-image choices drawn elsewhere (kiln-data draws them
//! from a seed, so both backends apply the same transforms).

use crate::backend::Backend;
use crate::error::{KilnError, Result};
use crate::ops::{ImageBatch, Warp};
use crate::{DType, Tensor};

/// The size of one image: channels × height × width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    pub fn features(&self) -> usize {
        self.channels * self.height * self.width
    }
}

impl<B: Backend> Tensor<B> {
    /// The tensor with its last dimension reversed: a horizontal flip of [N, C, H, W] images.
    /// Exact on every backend: the columns are gathered as rows of the transposed tensor.
    pub fn flip_width(&self) -> Result<Self> {
        let dims = self.dims().to_vec();
        let Some(&width) = dims.last() else {
            return Err(KilnError::invalid(
                "flip_width",
                "a scalar has no width to flip",
            ));
        };
        if width <= 1 || self.numel() == 0 {
            return self.contiguous();
        }
        let reversed: Vec<u32> = (0..width as u32).rev().collect();
        let indices = Tensor::from_vec(reversed, [width], &self.backend)?;
        let columns = self
            .reshape([self.numel() / width, width])?
            .t()?
            .contiguous()?;
        columns
            .gather_rows(&indices)?
            .t()?
            .contiguous()?
            .reshape(dims)
    }

    /// Checks that self is an f32 image batch of `image`s and `choices` a [count, per_image]
    /// tensor of `dtype`; returns the batch description and both made contiguous.
    fn image_operands(
        &self,
        op: &'static str,
        image: ImageShape,
        choices: &Tensor<B>,
        dtype: DType,
        per_image: usize,
    ) -> Result<(ImageBatch, Tensor<B>, Tensor<B>)> {
        if self.dtype() != DType::F32 || self.rank() != 2 || self.dims()[1] != image.features() {
            return Err(KilnError::invalid(
                op,
                format!(
                    "images must be f32 [count, {}] ({} × {} × {}), got {} of shape {}",
                    image.features(),
                    image.channels,
                    image.height,
                    image.width,
                    self.dtype(),
                    self.shape()
                ),
            ));
        }
        let count = self.dims()[0];
        if choices.dtype() != dtype || choices.dims() != [count, per_image] {
            return Err(KilnError::invalid(
                op,
                format!(
                    "the per-image choices must be {dtype} [{count}, {per_image}], got {} of shape {}",
                    choices.dtype(),
                    choices.shape()
                ),
            ));
        }
        let batch = ImageBatch {
            count,
            channels: image.channels,
            height: image.height,
            width: image.width,
        };
        Ok((batch, self.contiguous()?, choices.contiguous()?))
    }

    /// Each image resampled through its 2 × 3 output-to-source map (`matrices` f32
    /// [count, 6], row-major): out(x, y) = sample(image, m · (x, y, 1)).
    pub fn warp_images(&self, image: ImageShape, matrices: &Tensor<B>, warp: Warp) -> Result<Self> {
        let (batch, x, m) = self.image_operands("warp_images", image, matrices, DType::F32, 6)?;
        let storage = self
            .backend
            .warp_images(&x.storage, batch, &m.storage, warp)?;
        Ok(self.wrap(storage, [batch.count, image.features()]))
    }

    /// Colour jitter, `factors` f32 [count, 3] = (brightness, contrast, saturation) per image
    /// (1 to 4 channels).
    pub fn jitter_images(&self, image: ImageShape, factors: &Tensor<B>) -> Result<Self> {
        let op = "jitter_images";
        if !(1..=4).contains(&image.channels) {
            return Err(KilnError::invalid(
                op,
                format!(
                    "colour jitter takes 1 to 4 channels, got {}",
                    image.channels
                ),
            ));
        }
        let (batch, x, f) = self.image_operands(op, image, factors, DType::F32, 3)?;
        let storage = self.backend.jitter_images(&x.storage, batch, &f.storage)?;
        Ok(self.wrap(storage, [batch.count, image.features()]))
    }

    /// CutMix: `boxes` u32 [count, 5] = (partner, x0, y0, x1, y1); the half-open box of each
    /// image is replaced by the same box of image `partner` of this batch.
    pub fn cutmix_images(&self, image: ImageShape, boxes: &Tensor<B>) -> Result<Self> {
        let (batch, x, b) = self.image_operands("cutmix_images", image, boxes, DType::U32, 5)?;
        let storage = self.backend.cutmix_images(&x.storage, batch, &b.storage)?;
        Ok(self.wrap(storage, [batch.count, image.features()]))
    }
}
