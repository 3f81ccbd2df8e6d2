//! The wgpu backend: Kiln's WGSL kernels on any Vulkan, Metal or DX12 adapter.
//!
//! Ops never wait for the GPU: they record dispatches into a pending batch (see `context`),
//! which is submitted at a sync point. Pipelines are built once per process and buffers come
//! from a size-class pool; `counters()` shows both.

mod activation;
mod adapter;
mod augment;
mod batch_norm;
mod buffer_pool;
mod cast;
mod context;
mod conv;
mod conv_texture;
mod data;
mod elementwise;
mod gather;
mod kernel_profile;
mod loss_scale;
mod matmul;
mod matmul_f16;
mod matmul_texture;
mod matmul_tuning;
mod memory;
mod optim;
mod param_layout;
mod pipeline_cache;
mod pool;
mod random;
mod readback;
mod reduce;
mod shaders;
mod softmax_xent;
mod storage;
mod timer;

/// The wgpu backend set chosen in [`WgpuOptions::backends`].
pub use ::wgpu::{Backends, DeviceType};
pub use adapter::{AdapterSummary, MatmulKernel, WgpuOptions};
pub use buffer_pool::size_class;
pub use context::{Counters, MAX_DISPATCHES_PER_BATCH};
pub use kernel_profile::{kernel_table, KernelTime};
pub use matmul_tuning::{
    ConvClass, ConvKernel, ConvPass, ShapeClass, TunedClass, TunedConv, TuningReport,
};
pub use param_layout::{FieldLayout, ParamLayout};
pub use readback::Readback;
pub use shaders::{Kernel, ShaderFile};
pub use storage::WgpuStorage;

use crate::backend::{
    BatchNormShape, CoreOps, DataOps, Epilogue, NnOps, OptimOps, ReduceDims, Rows,
};
use crate::error::{KilnError, Result};
use crate::ops::{
    AdamStep, AdaptiveStep, BinaryOp, Conv2dShape, Distribution, ImageBatch, LossScaleRule,
    MatmulShape, Pool2dShape, ReduceOp, RngState, SgdStep, UnaryOp, Warp, XentTargets,
};
use crate::{DType, HostData, Layout, Tensor};
use bytemuck::{Pod, Zeroable};
use context::Context;
use elementwise::to_u32;
use param_layout::param_layout;
use std::fmt;
use std::sync::Arc;

/// A 2-D grid of workgroups covering `groups` (each dimension is limited to 65535).
pub(crate) fn grid(groups: usize) -> [u32; 3] {
    if groups == 0 {
        return [0, 1, 1];
    }
    let x = groups.min(65535);
    [x as u32, groups.div_ceil(x) as u32, 1]
}

/// Mirrors `RowParams` (softmax_xent.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct RowParams {
    rows: u32,
    cols: u32,
    eps: f32,
    pad: u32,
}

pub(crate) fn row_params(shape: Rows, eps: f32) -> Result<RowParams> {
    to_u32(shape.rows * shape.cols, "element count")?;
    Ok(RowParams {
        rows: shape.rows as u32,
        cols: shape.cols as u32,
        eps,
        pad: 0,
    })
}

/// This file's parameter blocks, for the layout test (see `param_layout`).
fn own_param_layouts() -> Vec<param_layout::ParamLayout> {
    vec![param_layout!(
        RowParams,
        ShaderFile::SoftmaxXent,
        "RowParams",
        [rows, cols, eps]
    )]
}

/// Every parameter block Rust and WGSL share, with the WGSL struct it mirrors; a test holds
/// each against the shader (tests/shaders_validate.rs).
pub fn param_layouts() -> Vec<ParamLayout> {
    [
        own_param_layouts(),
        activation::param_layouts(),
        augment::param_layouts(),
        batch_norm::param_layouts(),
        cast::param_layouts(),
        conv::param_layouts(),
        conv_texture::param_layouts(),
        data::param_layouts(),
        elementwise::param_layouts(),
        gather::param_layouts(),
        loss_scale::param_layouts(),
        matmul::param_layouts(),
        matmul_texture::param_layouts(),
        optim::param_layouts(),
        pool::param_layouts(),
        random::param_layouts(),
        reduce::param_layouts(),
    ]
    .concat()
}

/// A handle to one GPU device; clones share it.
#[derive(Clone)]
pub struct WgpuBackend {
    ctx: Arc<Context>,
}

impl fmt::Debug for WgpuBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WgpuBackend({})", self.ctx.adapter_description())
    }
}

impl WgpuBackend {
    /// The adapter named by `KILN_ADAPTER`, or else the best one (discrete, integrated,
    /// virtual, then CPU-type adapters).
    pub fn new() -> Result<Self> {
        Self::with_options(WgpuOptions::default())
    }

    /// The first adapter whose name contains `name` (case-insensitive).
    pub fn with_adapter(name: &str) -> Result<Self> {
        Self::with_options(WgpuOptions {
            adapter: Some(name.to_string()),
            ..WgpuOptions::default()
        })
    }

    pub fn with_options(options: WgpuOptions) -> Result<Self> {
        Ok(WgpuBackend {
            ctx: adapter::open(&options)?,
        })
    }

    /// Every adapter the primary backends (Vulkan, Metal, DX12) offer, best first.
    pub fn adapters() -> Vec<AdapterSummary> {
        adapter::summaries(wgpu::Backends::PRIMARY)
    }

    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.ctx.info
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.ctx.limits
    }

    /// The matmul kernel this device runs (see [`MatmulKernel`]; never `Auto`).
    pub fn matmul_kernel(&self) -> MatmulKernel {
        self.ctx.matmul.kernel
    }

    /// The tuner's file, candidates and choices so far, when the device tunes its matmuls.
    pub fn matmul_tuning(&self) -> Option<TuningReport> {
        self.ctx.matmul.tuner.as_ref().map(|t| t.report())
    }

    /// True when f16 casts run with native `shader-f16` (else the packed fallback).
    pub fn has_native_f16(&self) -> bool {
        self.ctx.native_f16
    }

    pub fn counters(&self) -> Counters {
        self.ctx.counters()
    }

    /// Starts the peak-memory counter again from the bytes in use now.
    pub fn reset_peak_memory(&self) {
        self.ctx.reset_peak();
    }

    /// Frees the pool's idle buffers.
    pub fn trim_pool(&self) {
        self.ctx.trim_pool();
    }

    /// Destroys the device now. Every later op or sync returns `KilnError::DeviceLost`,
    /// as after a driver reset.
    pub fn destroy(&self) {
        self.ctx.device.destroy();
    }

    /// Copies `src` into `dst` in place (`dst.copy_(src)` in PyTorch): whole contiguous
    /// tensors of one dtype and shape, as one buffer-to-buffer copy recorded into the batch.
    /// It is the device's plain copy, which `compare_backends` takes as its bandwidth ceiling.
    pub fn copy_into(&self, src: &Tensor<WgpuBackend>, dst: &Tensor<WgpuBackend>) -> Result<()> {
        src.check_copy_into(dst)?;
        let bytes = (src.numel() * src.dtype().size_in_bytes()) as u64;
        if !bytes.is_multiple_of(4) {
            return Err(KilnError::invalid(
                "copy_into",
                format!("{bytes} bytes: buffer copies move whole 4-byte words"),
            ));
        }
        if bytes > 0 {
            self.ctx
                .copy_buffer(src.storage().buffer(), dst.storage().buffer(), bytes);
        }
        Ok(())
    }

    /// True when the adapter has timestamp queries, so [`Self::time_on_device`] measures.
    pub fn can_time_on_device(&self) -> bool {
        self.ctx.timestamps.is_some()
    }

    /// Runs `work` (which records ops) between two device timestamps, waits for the device,
    /// and returns `work`'s result with the GPU time between the stamps: the kernels' time
    /// without the host's recording, submit or readback. None when the adapter has no
    /// timestamp queries. Work pending before the call runs before the first stamp.
    pub fn time_on_device<T>(
        &self,
        work: impl FnOnce() -> Result<T>,
    ) -> Result<(T, Option<std::time::Duration>)> {
        timer::time_on_device(&self.ctx, work)
    }

    /// Starts or stops timing every kernel dispatch on the device (needs timestamp queries).
    /// A diagnostic: while it is on, each submit waits for the device. Read the times with
    /// [`Self::kernel_profile`].
    pub fn set_kernel_profiling(&self, on: bool) -> Result<()> {
        self.ctx.set_kernel_profiling(on)
    }

    /// Device time per pipeline (entry point and constants) since profiling started or since
    /// the last call, slowest first; submits pending work first. Empty when profiling is off.
    pub fn kernel_profile(&self) -> Result<Vec<KernelTime>> {
        self.ctx.kernel_profile()
    }

    /// Submits pending work without waiting for it.
    pub fn flush(&self) -> Result<()> {
        self.ctx.flush()
    }

    /// Reads several tensors with one submit; the future completes when the copies land.
    /// Poll it from any executor; `Backend::download` is the blocking form.
    pub fn read_async(&self, tensors: &[&Tensor<WgpuBackend>]) -> Result<Readback> {
        let requests: Vec<_> = tensors.iter().map(|t| (t.storage(), t.layout())).collect();
        memory::start_download(&self.ctx, &requests)
    }
}

impl CoreOps for WgpuBackend {
    type Storage = WgpuStorage;

    fn name(&self) -> String {
        format!("wgpu: {}", self.ctx.adapter_description())
    }

    fn supports_dtype(&self, dtype: DType) -> bool {
        dtype != DType::F64
    }

    fn max_binding_bytes(&self) -> usize {
        let limits = &self.ctx.limits;
        limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size) as usize
    }

    fn upload(&self, data: &HostData) -> Result<WgpuStorage> {
        memory::upload(&self.ctx, data)
    }

    fn download(&self, tensors: &[(&WgpuStorage, &Layout)]) -> Result<Vec<HostData>> {
        let readback = memory::start_download(&self.ctx, tensors)?;
        self.ctx.sync()?;
        pollster::block_on(readback)
    }

    fn sync(&self) -> Result<()> {
        self.ctx.sync()
    }

    fn fill(&self, numel: usize, dtype: DType, value: f64) -> Result<WgpuStorage> {
        elementwise::fill(&self.ctx, numel, dtype, value)
    }

    fn copy_strided(&self, src: &WgpuStorage, layout: &Layout) -> Result<WgpuStorage> {
        elementwise::copy_strided(&self.ctx, src, layout)
    }

    fn cast(&self, src: &WgpuStorage, to: DType) -> Result<WgpuStorage> {
        cast::cast(&self.ctx, src, to)
    }

    fn unary(&self, op: UnaryOp, x: &WgpuStorage, layout: &Layout) -> Result<WgpuStorage> {
        elementwise::unary(&self.ctx, op, x, layout)
    }

    fn binary(
        &self,
        op: BinaryOp,
        lhs: &WgpuStorage,
        lhs_layout: &Layout,
        rhs: &WgpuStorage,
        rhs_layout: &Layout,
    ) -> Result<WgpuStorage> {
        elementwise::binary(&self.ctx, op, lhs, lhs_layout, rhs, rhs_layout)
    }

    fn binary_scalar(
        &self,
        op: BinaryOp,
        x: &WgpuStorage,
        layout: &Layout,
        scalar: f64,
        scalar_on_left: bool,
    ) -> Result<WgpuStorage> {
        elementwise::binary_scalar(&self.ctx, op, x, layout, scalar, scalar_on_left)
    }

    fn select(
        &self,
        cond: (&WgpuStorage, &Layout),
        on_true: (&WgpuStorage, &Layout),
        on_false: (&WgpuStorage, &Layout),
    ) -> Result<WgpuStorage> {
        elementwise::select(&self.ctx, cond, on_true, on_false)
    }

    fn reduce(&self, op: ReduceOp, x: &WgpuStorage, dims: ReduceDims) -> Result<WgpuStorage> {
        reduce::reduce(&self.ctx, op, x, dims)
    }

    fn sum_all(&self, x: &WgpuStorage) -> Result<WgpuStorage> {
        reduce::sum_all(&self.ctx, x)
    }

    fn gather_rows(
        &self,
        src: &WgpuStorage,
        src_rows: Rows,
        indices: &WgpuStorage,
    ) -> Result<WgpuStorage> {
        gather::gather_rows(&self.ctx, src, src_rows, indices)
    }

    fn random(
        &self,
        numel: usize,
        distribution: Distribution,
        rng: RngState,
    ) -> Result<WgpuStorage> {
        random::random(&self.ctx, numel, distribution, rng)
    }
}

impl NnOps for WgpuBackend {
    fn matmul(
        &self,
        a: &WgpuStorage,
        b: &WgpuStorage,
        shape: &MatmulShape,
        epilogue: Epilogue<'_, WgpuStorage>,
    ) -> Result<WgpuStorage> {
        matmul::matmul(&self.ctx, a, b, shape, epilogue)
    }

    fn unary_backward(
        &self,
        op: UnaryOp,
        x: &WgpuStorage,
        x_layout: &Layout,
        grad: &WgpuStorage,
        grad_layout: &Layout,
    ) -> Result<WgpuStorage> {
        activation::unary_backward(&self.ctx, op, x, x_layout, grad, grad_layout)
    }

    fn prelu(&self, x: &WgpuStorage, alpha: &WgpuStorage, dims: ReduceDims) -> Result<WgpuStorage> {
        activation::prelu(&self.ctx, x, alpha, dims)
    }

    fn prelu_backward(
        &self,
        x: &WgpuStorage,
        alpha: &WgpuStorage,
        grad: &WgpuStorage,
        dims: ReduceDims,
    ) -> Result<(WgpuStorage, WgpuStorage)> {
        activation::prelu_backward(&self.ctx, x, alpha, grad, dims)
    }

    fn softmax(&self, x: &WgpuStorage, shape: Rows, log: bool) -> Result<WgpuStorage> {
        softmax_xent::softmax(&self.ctx, x, shape, log)
    }

    fn softmax_xent(
        &self,
        logits: &WgpuStorage,
        shape: Rows,
        targets: XentTargets<'_, WgpuStorage>,
    ) -> Result<WgpuStorage> {
        softmax_xent::softmax_xent(&self.ctx, logits, shape, targets)
    }

    fn softmax_xent_backward(
        &self,
        logits: &WgpuStorage,
        shape: Rows,
        targets: XentTargets<'_, WgpuStorage>,
        grad_rows: &WgpuStorage,
    ) -> Result<WgpuStorage> {
        softmax_xent::softmax_xent_backward(&self.ctx, logits, shape, targets, grad_rows)
    }

    fn batch_norm_stats(
        &self,
        x: &WgpuStorage,
        shape: BatchNormShape,
    ) -> Result<(WgpuStorage, WgpuStorage)> {
        batch_norm::batch_norm_stats(&self.ctx, x, shape)
    }

    fn batch_norm_forward(
        &self,
        x: &WgpuStorage,
        mean: &WgpuStorage,
        var: &WgpuStorage,
        gamma: &WgpuStorage,
        beta: &WgpuStorage,
        shape: BatchNormShape,
        eps: f32,
    ) -> Result<WgpuStorage> {
        batch_norm::batch_norm_forward(&self.ctx, x, mean, var, gamma, beta, shape, eps)
    }

    fn batch_norm_backward_reduce(
        &self,
        x: &WgpuStorage,
        dy: &WgpuStorage,
        mean: &WgpuStorage,
        var: &WgpuStorage,
        shape: BatchNormShape,
        eps: f32,
    ) -> Result<(WgpuStorage, WgpuStorage)> {
        batch_norm::batch_norm_backward_reduce(&self.ctx, x, dy, (mean, var), shape, eps)
    }

    fn batch_norm_backward_input(
        &self,
        x: &WgpuStorage,
        dy: &WgpuStorage,
        mean: &WgpuStorage,
        var: &WgpuStorage,
        gamma: &WgpuStorage,
        sums: (&WgpuStorage, &WgpuStorage),
        shape: BatchNormShape,
        eps: f32,
    ) -> Result<WgpuStorage> {
        batch_norm::batch_norm_backward_input(
            &self.ctx,
            x,
            dy,
            (mean, var, gamma),
            sums,
            shape,
            eps,
        )
    }

    fn dropout(
        &self,
        x: &WgpuStorage,
        p: f32,
        rng: RngState,
    ) -> Result<(WgpuStorage, WgpuStorage)> {
        random::dropout(&self.ctx, x, p, rng)
    }

    fn conv2d(
        &self,
        x: &WgpuStorage,
        w: &WgpuStorage,
        bias: Option<&WgpuStorage>,
        activation: Option<UnaryOp>,
        shape: &Conv2dShape,
    ) -> Result<WgpuStorage> {
        conv::conv2d(&self.ctx, x, w, bias, activation, shape)
    }

    fn conv2d_backward_input(
        &self,
        dy: &WgpuStorage,
        w: &WgpuStorage,
        shape: &Conv2dShape,
    ) -> Result<WgpuStorage> {
        conv::conv2d_backward_input(&self.ctx, dy, w, shape)
    }

    fn conv2d_backward_weight(
        &self,
        x: &WgpuStorage,
        dy: &WgpuStorage,
        shape: &Conv2dShape,
    ) -> Result<WgpuStorage> {
        conv::conv2d_backward_weight(&self.ctx, x, dy, shape)
    }

    fn max_pool2d(
        &self,
        x: &WgpuStorage,
        shape: &Pool2dShape,
    ) -> Result<(WgpuStorage, WgpuStorage)> {
        pool::max_pool2d(&self.ctx, x, shape)
    }

    fn max_pool2d_backward(
        &self,
        dy: &WgpuStorage,
        indices: &WgpuStorage,
        shape: &Pool2dShape,
    ) -> Result<WgpuStorage> {
        pool::max_pool2d_backward(&self.ctx, dy, indices, shape)
    }

    fn avg_pool2d(&self, x: &WgpuStorage, shape: &Pool2dShape) -> Result<WgpuStorage> {
        pool::avg_pool2d(&self.ctx, x, shape)
    }

    fn avg_pool2d_backward(&self, dy: &WgpuStorage, shape: &Pool2dShape) -> Result<WgpuStorage> {
        pool::avg_pool2d_backward(&self.ctx, dy, shape)
    }
}

impl OptimOps for WgpuBackend {
    fn adam_step(
        &self,
        param: &WgpuStorage,
        grad: &WgpuStorage,
        m: &WgpuStorage,
        v: &WgpuStorage,
        step: &AdamStep,
        skip_if: Option<&WgpuStorage>,
    ) -> Result<()> {
        optim::adam_step(&self.ctx, param, grad, m, v, step, skip_if)
    }

    fn sgd_step(
        &self,
        param: &WgpuStorage,
        grad: &WgpuStorage,
        velocity: Option<&WgpuStorage>,
        step: &SgdStep,
        skip_if: Option<&WgpuStorage>,
    ) -> Result<()> {
        optim::sgd_step(&self.ctx, param, grad, velocity, step, skip_if)
    }

    fn adaptive_step(
        &self,
        param: &WgpuStorage,
        grad: &WgpuStorage,
        accumulator: &WgpuStorage,
        step: &AdaptiveStep,
        skip_if: Option<&WgpuStorage>,
    ) -> Result<()> {
        optim::adaptive_step(&self.ctx, param, grad, accumulator, step, skip_if)
    }

    fn unscale_gradient(
        &self,
        grad: &WgpuStorage,
        scale: &WgpuStorage,
        flags: &WgpuStorage,
    ) -> Result<()> {
        loss_scale::unscale_gradient(&self.ctx, grad, scale, flags)
    }

    fn update_loss_scale(
        &self,
        scale: &WgpuStorage,
        flags: &WgpuStorage,
        rule: &LossScaleRule,
    ) -> Result<()> {
        loss_scale::update_loss_scale(&self.ctx, scale, flags, rule)
    }
}

impl DataOps for WgpuBackend {
    fn gather_u8_affine(
        &self,
        chunks: &[(&WgpuStorage, usize)],
        features: usize,
        indices: &WgpuStorage,
        scale: &WgpuStorage,
        shift: &WgpuStorage,
    ) -> Result<WgpuStorage> {
        data::gather_u8_affine(&self.ctx, chunks, features, indices, scale, shift)
    }

    fn warp_images(
        &self,
        images: &WgpuStorage,
        shape: ImageBatch,
        matrices: &WgpuStorage,
        warp: Warp,
    ) -> Result<WgpuStorage> {
        augment::warp_images(&self.ctx, images, shape, matrices, warp)
    }

    fn jitter_images(
        &self,
        images: &WgpuStorage,
        shape: ImageBatch,
        factors: &WgpuStorage,
    ) -> Result<WgpuStorage> {
        augment::jitter_images(&self.ctx, images, shape, factors)
    }

    fn cutmix_images(
        &self,
        images: &WgpuStorage,
        shape: ImageBatch,
        boxes: &WgpuStorage,
    ) -> Result<WgpuStorage> {
        augment::cutmix_images(&self.ctx, images, shape, boxes)
    }
}
