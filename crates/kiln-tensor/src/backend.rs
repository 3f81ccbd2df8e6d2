//! What a backend implements, grouped by family: [`CoreOps`] (memory, elementwise,
//! reductions, gathers, random streams), [`NnOps`] (matmul, activations' derivatives, softmax
//! cross-entropy, batch norm, dropout), [`OptimOps`] (fused optimiser steps, loss scaling) and
//! [`DataOps`] (dataset minibatches, image augmentation). [`Backend`] is all four: the one
//! bound users write.
//!
//! Conventions shared by every method:
//! - Storages are flat buffers of one dtype ([`BackendStorage::dtype`]); elementwise ops read
//!   their inputs through a [`Layout`] (strides, broadcast, offset) and every other op takes
//!   contiguous row-major inputs starting at element 0. Outputs are always new contiguous
//!   storages, except `adam_step`, which updates its state in place.
//! - Arithmetic accepts f32 everywhere and f64 where [`Backend::supports_dtype`] says so.
//! - No method waits for the device: a GPU backend records work and runs it at a sync point
//!   ([`Backend::download`] or [`Backend::sync`]).

use crate::error::Result;
use crate::ops::{
    AdamStep, AdaptiveStep, BinaryOp, Conv2dShape, Distribution, ImageBatch, LossScaleRule,
    MatmulShape, Pool2dShape, ReduceOp, RngState, SgdStep, UnaryOp, Warp, XentTargets,
};
use crate::{DType, HostData, Layout};
use std::fmt;

/// What a backend's storage must say about itself.
pub trait BackendStorage: Send + Sync + fmt::Debug + 'static {
    fn dtype(&self) -> DType;
    /// Number of elements the storage holds.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A rows × cols matrix view used by the row-wise ops (softmax, batch-norm, gather).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rows {
    pub rows: usize,
    pub cols: usize,
}

/// The batch-norm family's view of x: [outer, channels, inner], statistics per channel over
/// outer · inner elements. A [N, C] batch is outer N, inner 1; [N, C, H, W] images are outer N,
/// inner H·W (PyTorch's BatchNorm1d and BatchNorm2d).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNormShape {
    pub outer: usize,
    pub channels: usize,
    pub inner: usize,
}

impl BatchNormShape {
    /// Elements per channel: the count each statistic averages over.
    pub fn count(&self) -> usize {
        self.outer * self.inner
    }

    pub fn numel(&self) -> usize {
        self.outer * self.channels * self.inner
    }

    /// The channel of flat element i.
    pub fn channel_of(&self, i: usize) -> usize {
        (i / self.inner.max(1)) % self.channels.max(1)
    }
}

/// An optional epilogue fused into matmul: C = act(A·B + bias), bias broadcast over rows.
/// `output` is C's dtype when it differs from the operands' (f16 operands, f32 C); the bias
/// has C's dtype.
pub struct Epilogue<'a, S> {
    pub bias: Option<&'a S>,
    pub activation: Option<UnaryOp>,
    pub output: Option<DType>,
}

impl<S> Epilogue<'_, S> {
    pub fn none() -> Self {
        Epilogue {
            bias: None,
            activation: None,
            output: None,
        }
    }
}

/// The three dimensions of a reduction along one axis of a contiguous tensor:
/// the tensor is viewed as [outer, len, inner] and reduced over `len`, giving [outer, inner].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReduceDims {
    pub outer: usize,
    pub len: usize,
    pub inner: usize,
}

/// The core tensor ops: memory, elementwise arithmetic, reductions, row gathers and random
/// streams. Every other family is built on these.
pub trait CoreOps: Clone + Send + Sync + fmt::Debug + 'static {
    type Storage: BackendStorage;

    /// A human-readable name: "cpu", or "wgpu: <adapter> (<api>)".
    fn name(&self) -> String;

    fn supports_dtype(&self, dtype: DType) -> bool;

    /// The largest buffer one kernel may bind (data larger than this is split in chunks).
    fn max_binding_bytes(&self) -> usize {
        usize::MAX
    }

    fn upload(&self, data: &HostData) -> Result<Self::Storage>;

    /// Reads several tensors back in one flush, each through its layout, as contiguous data.
    fn download(&self, tensors: &[(&Self::Storage, &Layout)]) -> Result<Vec<HostData>>;

    /// Runs all recorded work and waits for it; surfaces device errors.
    fn sync(&self) -> Result<()>;

    /// `numel` elements of `dtype`, all equal to `value` (cast to the dtype).
    fn fill(&self, numel: usize, dtype: DType, value: f64) -> Result<Self::Storage>;

    /// Copies a strided view into a new contiguous storage.
    fn copy_strided(&self, src: &Self::Storage, layout: &Layout) -> Result<Self::Storage>;

    /// Converts `src` (contiguous) to another dtype: f32↔f16, u8→f32, u32↔f32, f32↔f64.
    fn cast(&self, src: &Self::Storage, to: DType) -> Result<Self::Storage>;

    fn unary(&self, op: UnaryOp, x: &Self::Storage, layout: &Layout) -> Result<Self::Storage>;

    /// Both layouts already have the output's shape (broadcast views have stride 0).
    fn binary(
        &self,
        op: BinaryOp,
        lhs: &Self::Storage,
        lhs_layout: &Layout,
        rhs: &Self::Storage,
        rhs_layout: &Layout,
    ) -> Result<Self::Storage>;

    /// `x op scalar`, or `scalar op x` when `scalar_on_left`.
    fn binary_scalar(
        &self,
        op: BinaryOp,
        x: &Self::Storage,
        layout: &Layout,
        scalar: f64,
        scalar_on_left: bool,
    ) -> Result<Self::Storage>;

    /// cond != 0 ? on_true : on_false, all three layouts of the output's shape.
    fn select(
        &self,
        cond: (&Self::Storage, &Layout),
        on_true: (&Self::Storage, &Layout),
        on_false: (&Self::Storage, &Layout),
    ) -> Result<Self::Storage>;

    /// Reduces a contiguous [outer, len, inner] tensor over `len`; ArgMax gives u32.
    fn reduce(&self, op: ReduceOp, x: &Self::Storage, dims: ReduceDims) -> Result<Self::Storage>;

    /// Sum of every element, as a one-element storage.
    fn sum_all(&self, x: &Self::Storage) -> Result<Self::Storage>;

    /// out[i, :] = src[indices[i], :] for a contiguous [src_rows, cols] source and u32 indices.
    /// An index out of range is an error on the CPU and gives a row of NaN (u32::MAX for
    /// integer dtypes) on the GPU, which cannot check without a readback.
    fn gather_rows(
        &self,
        src: &Self::Storage,
        src_rows: Rows,
        indices: &Self::Storage,
    ) -> Result<Self::Storage>;

    /// `numel` f32 values from a counter-based generator: element i depends only on
    /// (seed, offset + i), so every backend produces the same stream.
    fn random(
        &self,
        numel: usize,
        distribution: Distribution,
        rng: RngState,
    ) -> Result<Self::Storage>;
}

/// The neural-network ops: the matrix product with its fused epilogue, the activations'
/// derivatives and PReLU, softmax cross-entropy, the batch-norm reductions, dropout, and 2-D
/// convolution and pooling over NCHW images.
pub trait NnOps: CoreOps {
    fn matmul(
        &self,
        a: &Self::Storage,
        b: &Self::Storage,
        shape: &MatmulShape,
        epilogue: Epilogue<'_, Self::Storage>,
    ) -> Result<Self::Storage>;

    /// grad · op'(x): the derivative of a unary op at x, times the incoming gradient.
    /// Both layouts have the same shape.
    fn unary_backward(
        &self,
        op: UnaryOp,
        x: &Self::Storage,
        x_layout: &Layout,
        grad: &Self::Storage,
        grad_layout: &Layout,
    ) -> Result<Self::Storage>;

    /// PReLU over [outer, channels, inner]: x > 0 ? x : alpha[channel] · x.
    fn prelu(
        &self,
        x: &Self::Storage,
        alpha: &Self::Storage,
        dims: ReduceDims,
    ) -> Result<Self::Storage>;

    /// PReLU's gradients: (d/dx, d/dalpha summed per channel).
    fn prelu_backward(
        &self,
        x: &Self::Storage,
        alpha: &Self::Storage,
        grad: &Self::Storage,
        dims: ReduceDims,
    ) -> Result<(Self::Storage, Self::Storage)>;

    /// Softmax (or log-softmax) of each row.
    fn softmax(&self, x: &Self::Storage, shape: Rows, log: bool) -> Result<Self::Storage>;

    /// Per-row cross-entropy of softmax(logits) against the targets: a [rows] storage.
    fn softmax_xent(
        &self,
        logits: &Self::Storage,
        shape: Rows,
        targets: XentTargets<'_, Self::Storage>,
    ) -> Result<Self::Storage>;

    /// Gradient of the per-row losses with respect to the logits, scaled per row by
    /// `grad_rows` ([rows]): (softmax · Σt − t) · g.
    fn softmax_xent_backward(
        &self,
        logits: &Self::Storage,
        shape: Rows,
        targets: XentTargets<'_, Self::Storage>,
        grad_rows: &Self::Storage,
    ) -> Result<Self::Storage>;

    /// Per-channel mean and biased variance of x viewed as [outer, channels, inner]
    /// (two-pass, stable).
    fn batch_norm_stats(
        &self,
        x: &Self::Storage,
        shape: BatchNormShape,
    ) -> Result<(Self::Storage, Self::Storage)>;

    /// y = (x − mean) / sqrt(var + eps) · γ + β per channel, in one pass; mean, var, γ and β
    /// are [channels].
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_forward(
        &self,
        x: &Self::Storage,
        mean: &Self::Storage,
        var: &Self::Storage,
        gamma: &Self::Storage,
        beta: &Self::Storage,
        shape: BatchNormShape,
        eps: f32,
    ) -> Result<Self::Storage>;

    /// Per-channel Σ dy and Σ dy · x̂ with x̂ = (x − mean) / sqrt(var + eps): the two reductions
    /// the batch-norm backward pass needs (β's and γ's gradients).
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward_reduce(
        &self,
        x: &Self::Storage,
        dy: &Self::Storage,
        mean: &Self::Storage,
        var: &Self::Storage,
        shape: BatchNormShape,
        eps: f32,
    ) -> Result<(Self::Storage, Self::Storage)>;

    /// dx of batch normalisation with batch statistics, in one pass:
    /// γ · inv_std · (dy − Σdy / n − x̂ · Σ(dy·x̂) / n), n = outer · inner.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward_input(
        &self,
        x: &Self::Storage,
        dy: &Self::Storage,
        mean: &Self::Storage,
        var: &Self::Storage,
        gamma: &Self::Storage,
        sums: (&Self::Storage, &Self::Storage),
        shape: BatchNormShape,
        eps: f32,
    ) -> Result<Self::Storage>;

    /// Inverted dropout: returns (y, mask) with mask = keep / (1 - p) and y = x · mask.
    fn dropout(
        &self,
        x: &Self::Storage,
        p: f32,
        rng: RngState,
    ) -> Result<(Self::Storage, Self::Storage)>;

    /// y = act(conv(x, w) + bias) over NCHW (see [`Conv2dShape`]): x, w and bias contiguous,
    /// bias [out_channels]; y [batch, out_channels, out_height, out_width].
    fn conv2d(
        &self,
        x: &Self::Storage,
        w: &Self::Storage,
        bias: Option<&Self::Storage>,
        activation: Option<UnaryOp>,
        shape: &Conv2dShape,
    ) -> Result<Self::Storage>;
    /// dx [batch, in_channels, height, width] of a convolution from dy and w.
    fn conv2d_backward_input(
        &self,
        dy: &Self::Storage,
        w: &Self::Storage,
        shape: &Conv2dShape,
    ) -> Result<Self::Storage>;
    /// dw [out_channels, in_channels, kernel_h, kernel_w] of a convolution from x and dy,
    /// summed over the batch.
    fn conv2d_backward_weight(
        &self,
        x: &Self::Storage,
        dy: &Self::Storage,
        shape: &Conv2dShape,
    ) -> Result<Self::Storage>;
    /// Max pooling: (y, the arg-max of each window as a u32 index into its input plane; ties
    /// go to the first maximum in scan order).
    fn max_pool2d(
        &self,
        x: &Self::Storage,
        shape: &Pool2dShape,
    ) -> Result<(Self::Storage, Self::Storage)>;
    /// dx of max pooling: each window's gradient to its arg-max.
    fn max_pool2d_backward(
        &self,
        dy: &Self::Storage,
        indices: &Self::Storage,
        shape: &Pool2dShape,
    ) -> Result<Self::Storage>;
    /// Average pooling (zero padding counts in the average).
    fn avg_pool2d(&self, x: &Self::Storage, shape: &Pool2dShape) -> Result<Self::Storage>;
    /// dx of average pooling.
    fn avg_pool2d_backward(&self, dy: &Self::Storage, shape: &Pool2dShape)
        -> Result<Self::Storage>;
}

/// The optimiser steps, each one fused kernel updating its tensors in place, and dynamic
/// loss scaling for mixed precision.
pub trait OptimOps: CoreOps {
    /// One fused Adam/AdamW step, updating param, m and v in place. With `skip_if` (a loss
    /// scaler's u32 flags, see `unscale_gradient`) the step does nothing when flags[0] ≠ 0, and
    /// the bias corrections count only steps taken (step − flags[1]).
    fn adam_step(
        &self,
        param: &Self::Storage,
        grad: &Self::Storage,
        m: &Self::Storage,
        v: &Self::Storage,
        step: &AdamStep,
        skip_if: Option<&Self::Storage>,
    ) -> Result<()>;

    /// One fused SGD step, updating param (and the velocity, given exactly when
    /// `step.momentum != 0`) in place; `skip_if` as for `adam_step`.
    fn sgd_step(
        &self,
        param: &Self::Storage,
        grad: &Self::Storage,
        velocity: Option<&Self::Storage>,
        step: &SgdStep,
        skip_if: Option<&Self::Storage>,
    ) -> Result<()>;

    /// One fused AdaGrad/RMSProp step, updating param and the accumulator in place; `skip_if`
    /// as for `adam_step`.
    fn adaptive_step(
        &self,
        param: &Self::Storage,
        grad: &Self::Storage,
        accumulator: &Self::Storage,
        step: &AdaptiveStep,
        skip_if: Option<&Self::Storage>,
    ) -> Result<()>;

    /// grad ← grad / scale[0] in place (f32), setting flags[0] = 1 when any element was inf or
    /// NaN. `flags` is the scaler's u32 state: [found non-finite, steps skipped, finite steps
    /// since the scale changed].
    fn unscale_gradient(
        &self,
        grad: &Self::Storage,
        scale: &Self::Storage,
        flags: &Self::Storage,
    ) -> Result<()>;

    /// After a step: moves `scale` by `rule` according to flags[0], counts the step in flags[1]
    /// or flags[2], and clears flags[0].
    fn update_loss_scale(
        &self,
        scale: &Self::Storage,
        flags: &Self::Storage,
        rule: &LossScaleRule,
    ) -> Result<()>;
}

/// Data on the device: minibatches gathered from u8 datasets and image augmentation
/// (images f32 [count, channels·height·width] in [0, 1]).
pub trait DataOps: CoreOps {
    /// Minibatch rows of a u8 dataset mapped to f32 by a per-column affine map:
    /// out[i, c] = data[indices[i], c] · scale[c] + shift[c], with out [indices.len, features].
    /// The dataset is given as chunks of whole rows, `(storage, first row)`, so that each
    /// fits the device's binding limit. An index in no chunk is an error on the CPU and leaves
    /// that output row unspecified on the GPU.
    fn gather_u8_affine(
        &self,
        chunks: &[(&Self::Storage, usize)],
        features: usize,
        indices: &Self::Storage,
        scale: &Self::Storage,
        shift: &Self::Storage,
    ) -> Result<Self::Storage>;

    /// Resamples each image through its 2 × 3 output-to-source map, `matrices` f32
    /// [count, 6]: out(x, y) = sample(image, m · (x, y, 1)).
    fn warp_images(
        &self,
        images: &Self::Storage,
        shape: ImageBatch,
        matrices: &Self::Storage,
        warp: Warp,
    ) -> Result<Self::Storage>;

    /// Colour jitter with `factors` f32 [count, 3] = (brightness, contrast, saturation),
    /// applied in that order and clamped to [0, 1] after each (1 to 4 channels).
    fn jitter_images(
        &self,
        images: &Self::Storage,
        shape: ImageBatch,
        factors: &Self::Storage,
    ) -> Result<Self::Storage>;

    /// CutMix: the box [x0, x1) × [y0, y1) of each image replaced by the same box of its
    /// partner in the batch, `boxes` u32 [count, 5] = (partner, x0, y0, x1, y1).
    fn cutmix_images(
        &self,
        images: &Self::Storage,
        shape: ImageBatch,
        boxes: &Self::Storage,
    ) -> Result<Self::Storage>;
}

/// Everything a backend implements: the bound users write (`B: Backend`). Implemented for
/// every type that implements the four families.
pub trait Backend: CoreOps + NnOps + OptimOps + DataOps {}

impl<T: CoreOps + NnOps + OptimOps + DataOps> Backend for T {}
