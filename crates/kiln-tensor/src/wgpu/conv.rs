//! Host side of conv.wgsl: 2-D convolution forward (with the bias + activation epilogue) and
//! both backward passes as implicit GEMM, no im2col buffer. A 1×1 convolution with stride 1
//! and no padding is routed by the tensor layer to the plain matmul instead. The weight
//! gradient splits its N·OH·OW-long reduction across workgroup layers and sums the layers'
//! partial results with the reduce kernel.
//!
//! Which path runs each pass: with channel groups, the direct grouped kernels (below); on
//! a device whose matmul is the texture kernel (CPU-type adapters) the packed-texture path
//! (conv_texture.rs), where it fits; on a tuned device with subgroups of a fixed size, the
//! faster of the two as the tuner measured it for the pass's class; else the implicit GEMM.

use super::context::Context;
use super::conv_texture;
use super::elementwise::to_u32;
use super::grid;
use super::matmul_tuning::{ConvClass, ConvKernel, ConvPass};
use super::param_layout::param_layout;
use super::pipeline_cache::Specialisation;
use super::reduce::reduce;
use super::shaders::{Kernel, ShaderFile};
use super::storage::{require_f32, WgpuStorage};
use crate::backend::ReduceDims;
use crate::error::{KilnError, Result};
use crate::ops::{Conv2dShape, ReduceOp, UnaryOp};
use crate::wgpu::MatmulKernel;
use crate::DType;
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

/// Mirrors `ConvGeometry` in common.wgsl: a convolution's shape, shared by this file's
/// parameters and conv_texture.rs's.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct ConvGeometry {
    pub(super) in_channels: u32,
    pub(super) height: u32,
    pub(super) width: u32,
    pub(super) out_channels: u32,
    pub(super) kernel_h: u32,
    pub(super) kernel_w: u32,
    pub(super) stride: u32,
    pub(super) padding: u32,
    pub(super) dilation: u32,
    pub(super) out_height: u32,
    pub(super) out_width: u32,
    pub(super) groups: u32,
}

impl ConvGeometry {
    /// The shape as the kernels read it; an error when a size does not fit in u32.
    pub(super) fn new(s: &Conv2dShape) -> Result<Self> {
        to_u32(s.input_len().max(s.output_len()), "element count")?;
        let u = |v: usize, what: &str| to_u32(v, what);
        Ok(ConvGeometry {
            in_channels: u(s.in_channels, "input channels")?,
            height: u(s.height, "height")?,
            width: u(s.width, "width")?,
            out_channels: u(s.out_channels, "output channels")?,
            kernel_h: u(s.kernel_h, "kernel height")?,
            kernel_w: u(s.kernel_w, "kernel width")?,
            stride: u(s.stride, "stride")?,
            padding: u(s.padding, "padding")?,
            dilation: u(s.dilation, "dilation")?,
            out_height: u(s.out_height(), "output height")?,
            out_width: u(s.out_width(), "output width")?,
            groups: u(s.groups, "groups")?,
        })
    }
}

/// Mirrors `ConvParams` in conv.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ConvParams {
    g: ConvGeometry,
    batch: u32,
    m: u32,
    n: u32,
    k: u32,
    k_split: u32,
    alpha: f32,
    pad: [u32; 2],
}

/// The tile each workgroup computes (64 × 64 outputs).
const TILE: usize = 64;
/// Reduction length per split of the weight gradient: long enough to amortise a workgroup's
/// start, short enough to give the adapter a few hundred workgroups.
const SPLIT_K: usize = 2048;

fn params(s: &Conv2dShape, (m, n, k): (usize, usize, usize), k_split: usize) -> Result<ConvParams> {
    let u = |v: usize, what: &str| to_u32(v, what);
    Ok(ConvParams {
        g: ConvGeometry::new(s)?,
        batch: u(s.batch, "batch")?,
        m: u(m, "GEMM rows")?,
        n: u(n, "GEMM columns")?,
        k: u(k, "GEMM depth")?,
        k_split: u(k_split, "split length")?,
        alpha: 0.0,
        pad: [0; 2],
    })
}

/// Workgroups over an m × n GEMM in `layers` layers; each grid side is limited to 65535.
fn tiles(op: &'static str, m: usize, n: usize, layers: usize) -> Result<[u32; 3]> {
    let (x, y) = (n.div_ceil(TILE), m.div_ceil(TILE));
    if x > 65535 || y > 65535 || layers > 65535 {
        return Err(KilnError::invalid(
            op,
            format!("a {m} × {n} product is past the adapter's 65535 workgroups per side; use smaller batches"),
        ));
    }
    Ok([x as u32, y as u32, layers as u32])
}

/// Runs one pass on the path chosen for it (see the file's header). `texture` runs the
/// packed-texture path with the device's subgroup size (`None` when the shape does not fit
/// it); `implicit` the implicit GEMM.
fn run_pass(
    ctx: &Arc<Context>,
    pass: ConvPass,
    s: &Conv2dShape,
    texture: &dyn Fn(u32) -> Result<Option<WgpuStorage>>,
    implicit: &dyn Fn() -> Result<WgpuStorage>,
) -> Result<WgpuStorage> {
    let Some(subgroup_size) = ctx.matmul.subgroup_size else {
        return implicit();
    };
    let run = |kernel| match kernel {
        ConvKernel::Texture => match texture(subgroup_size)? {
            Some(out) => Ok(out),
            None => implicit(),
        },
        ConvKernel::ImplicitGemm => implicit(),
    };
    let kernel = match (&ctx.matmul.tuner, ctx.matmul.kernel) {
        (_, MatmulKernel::Texture) => ConvKernel::Texture,
        (Some(tuner), _) => tuner.choose_conv(ctx, ConvClass::of(pass, s), &run)?,
        (None, _) => ConvKernel::ImplicitGemm,
    };
    run(kernel)
}

/// y = act(conv(x, w) + bias).
pub(crate) fn conv2d(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    w: &WgpuStorage,
    bias: Option<&WgpuStorage>,
    activation: Option<UnaryOp>,
    s: &Conv2dShape,
) -> Result<WgpuStorage> {
    require_f32(x, "conv2d")?;
    require_f32(w, "conv2d")?;
    if s.groups > 1 {
        return grouped_conv2d(ctx, (x, w, bias), activation, s);
    }
    let texture =
        |subgroup_size| conv_texture::conv2d(ctx, (x, w, bias), activation, s, subgroup_size);
    let implicit = || implicit_conv2d(ctx, (x, w, bias), activation, s);
    run_pass(ctx, ConvPass::Forward, s, &texture, &implicit)
}

fn implicit_conv2d(
    ctx: &Arc<Context>,
    (x, w, bias): (&WgpuStorage, &WgpuStorage, Option<&WgpuStorage>),
    activation: Option<UnaryOp>,
    s: &Conv2dShape,
) -> Result<WgpuStorage> {
    let gemm = (
        s.batch * s.out_height() * s.out_width(),
        s.out_channels,
        s.patch_len(),
    );
    let mut p = params(s, gemm, 0)?;
    p.alpha = activation.map_or(0.0, |op| op.param());
    let workgroups = tiles("conv2d", gemm.0, gemm.1, 1)?;
    dispatch_forward(
        ctx,
        (Kernel::ConvForward, Specialisation::default()),
        &p,
        (x, w, bias),
        activation,
        workgroups,
    )
}

/// Records a forward kernel (`conv_forward`, `conv_grouped_forward`, with its own override
/// constants) into a new y, adding the epilogue's constants; without a bias, w is bound in
/// its place (the kernel never reads it).
fn dispatch_forward(
    ctx: &Arc<Context>,
    (kernel, mut constants): (Kernel, Specialisation),
    p: &ConvParams,
    (x, w, bias): (&WgpuStorage, &WgpuStorage, Option<&WgpuStorage>),
    activation: Option<UnaryOp>,
    workgroups: [u32; 3],
) -> Result<WgpuStorage> {
    let dims = [p.batch, p.g.out_channels, p.g.out_height, p.g.out_width];
    let len = dims.iter().map(|&d| d as usize).product();
    let y = WgpuStorage::output(ctx, len, DType::F32, "conv2d")?;
    constants.0.extend([
        ("HAS_BIAS", bias.is_some() as u32),
        ("ACTIVATION", activation.map_or(0, |op| op.code())),
    ]);
    let bindings = [
        x.binding(),
        w.binding(),
        bias.unwrap_or(w).binding(),
        y.binding(),
    ];
    ctx.dispatch(
        kernel,
        constants,
        bytemuck::bytes_of(p),
        &bindings,
        workgroups,
    )?;
    Ok(y)
}

/// dx = the transposed convolution of dy with w.
pub(crate) fn conv2d_backward_input(
    ctx: &Arc<Context>,
    dy: &WgpuStorage,
    w: &WgpuStorage,
    s: &Conv2dShape,
) -> Result<WgpuStorage> {
    require_f32(dy, "conv2d_backward_input")?;
    if s.groups > 1 {
        return grouped_backward_input(ctx, dy, w, s);
    }
    let texture = |subgroup_size| conv_texture::conv2d_backward_input(ctx, dy, w, s, subgroup_size);
    let implicit = || implicit_backward_input(ctx, dy, w, s);
    run_pass(ctx, ConvPass::BackwardInput, s, &texture, &implicit)
}

fn implicit_backward_input(
    ctx: &Arc<Context>,
    dy: &WgpuStorage,
    w: &WgpuStorage,
    s: &Conv2dShape,
) -> Result<WgpuStorage> {
    let taps = s.kernel_h * s.kernel_w;
    let gemm = (
        s.batch * s.height * s.width,
        s.in_channels,
        s.out_channels * taps,
    );
    let p = params(s, gemm, 0)?;
    let dx = WgpuStorage::output(ctx, s.input_len(), DType::F32, "conv2d_backward_input")?;
    ctx.dispatch(
        Kernel::ConvBackwardInput,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[dy.binding(), w.binding(), dx.binding()],
        tiles("conv2d_backward_input", gemm.0, gemm.1, 1)?,
    )?;
    Ok(dx)
}

/// dw = Σ over the batch and the output pixels of dy · the input taps.
pub(crate) fn conv2d_backward_weight(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    dy: &WgpuStorage,
    s: &Conv2dShape,
) -> Result<WgpuStorage> {
    require_f32(x, "conv2d_backward_weight")?;
    if s.groups > 1 {
        return grouped_backward_weight(ctx, x, dy, s);
    }
    let texture =
        |subgroup_size| conv_texture::conv2d_backward_weight(ctx, x, dy, s, subgroup_size);
    let implicit = || implicit_backward_weight(ctx, x, dy, s);
    run_pass(ctx, ConvPass::BackwardWeight, s, &texture, &implicit)
}

fn implicit_backward_weight(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    dy: &WgpuStorage,
    s: &Conv2dShape,
) -> Result<WgpuStorage> {
    let depth = s.batch * s.out_height() * s.out_width();
    let gemm = (s.out_channels, s.patch_len(), depth);
    // The layers' partial sums are one buffer: no more layers than the binding limit holds.
    let limits = &ctx.limits;
    let limit = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size) as usize;
    let fit = (limit / (4 * s.weight_len().max(1))).max(1);
    let splits = depth.div_ceil(SPLIT_K).clamp(1, fit);
    let k_split = depth.div_ceil(splits).next_multiple_of(16);
    let p = params(s, gemm, k_split)?;
    let partial = WgpuStorage::output(
        ctx,
        splits * s.weight_len(),
        DType::F32,
        "conv2d_backward_weight",
    )?;
    ctx.dispatch(
        Kernel::ConvBackwardWeight,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[dy.binding(), x.binding(), partial.binding()],
        tiles("conv2d_backward_weight", gemm.0, gemm.1, splits)?,
    )?;
    if splits == 1 {
        return Ok(partial);
    }
    let dims = ReduceDims {
        outer: 1,
        len: splits,
        inner: s.weight_len(),
    };
    reduce(ctx, ReduceOp::Sum, &partial, dims)
}

/// The parameters the grouped kernels read: the geometry, the batch and the activation's
/// parameter (the GEMM fields stay 0).
fn grouped_params(s: &Conv2dShape, alpha: f32) -> Result<ConvParams> {
    let mut p = params(s, (0, 0, 0), 0)?;
    p.alpha = alpha;
    Ok(p)
}

/// The grouped kernels' override constants: the shape.
fn grouped_constants(p: &ConvParams) -> Specialisation {
    let g = &p.g;
    Specialisation(vec![
        ("G_IN_CHANNELS", g.in_channels),
        ("G_HEIGHT", g.height),
        ("G_WIDTH", g.width),
        ("G_OUT_CHANNELS", g.out_channels),
        ("G_OUT_HEIGHT", g.out_height),
        ("G_OUT_WIDTH", g.out_width),
        ("G_KERNEL_H", g.kernel_h),
        ("G_KERNEL_W", g.kernel_w),
        ("G_STRIDE", g.stride),
        ("G_PADDING", g.padding),
        ("G_DILATION", g.dilation),
        ("G_GROUPS", g.groups),
    ])
}

/// Grouped y = act(conv(x, w) + bias): one invocation per output element.
fn grouped_conv2d(
    ctx: &Arc<Context>,
    (x, w, bias): (&WgpuStorage, &WgpuStorage, Option<&WgpuStorage>),
    activation: Option<UnaryOp>,
    s: &Conv2dShape,
) -> Result<WgpuStorage> {
    let p = grouped_params(s, activation.map_or(0.0, |op| op.param()))?;
    let workgroups = grid(s.output_len().div_ceil(256));
    dispatch_forward(
        ctx,
        (Kernel::ConvGroupedForward, grouped_constants(&p)),
        &p,
        (x, w, bias),
        activation,
        workgroups,
    )
}

/// Grouped dx: one invocation per input element, gathering the outputs that read it.
fn grouped_backward_input(
    ctx: &Arc<Context>,
    dy: &WgpuStorage,
    w: &WgpuStorage,
    s: &Conv2dShape,
) -> Result<WgpuStorage> {
    let p = grouped_params(s, 0.0)?;
    let dx = WgpuStorage::output(ctx, s.input_len(), DType::F32, "conv2d_backward_input")?;
    ctx.dispatch(
        Kernel::ConvGroupedBackwardInput,
        grouped_constants(&p),
        bytemuck::bytes_of(&p),
        &[dy.binding(), w.binding(), dx.binding()],
        grid(s.input_len().div_ceil(256)),
    )?;
    Ok(dx)
}

/// Grouped dw: one workgroup per weight element, reducing over the batch and the output
/// pixels.
fn grouped_backward_weight(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    dy: &WgpuStorage,
    s: &Conv2dShape,
) -> Result<WgpuStorage> {
    let p = grouped_params(s, 0.0)?;
    to_u32(s.batch * s.out_height() * s.out_width(), "output pixels")?;
    let dw = WgpuStorage::output(ctx, s.weight_len(), DType::F32, "conv2d_backward_weight")?;
    ctx.dispatch(
        Kernel::ConvGroupedBackwardWeight,
        grouped_constants(&p),
        bytemuck::bytes_of(&p),
        &[dy.binding(), x.binding(), dw.binding()],
        grid(s.weight_len()),
    )?;
    Ok(dw)
}

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![
        param_layout!(
            ConvGeometry,
            ShaderFile::Conv,
            "ConvGeometry",
            [
                in_channels,
                height,
                width,
                out_channels,
                kernel_h,
                kernel_w,
                stride,
                padding,
                dilation,
                out_height,
                out_width,
                groups
            ]
        ),
        param_layout!(
            ConvParams,
            ShaderFile::Conv,
            "ConvParams",
            [g, batch, m, n, k, k_split, alpha]
        ),
    ]
}
