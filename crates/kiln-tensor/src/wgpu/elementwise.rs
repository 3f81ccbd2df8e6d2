//! Host side of elementwise.wgsl: strided unary/binary/select ops, strided copy and fill,
//! and the parameter blocks activation.wgsl shares.

use super::context::{Binding, Context};
use super::grid;
use super::param_layout::param_layout;
use super::pipeline_cache::Specialisation;
use super::shaders::Kernel;
use super::shaders::ShaderFile;
use super::storage::{require_f32, WgpuStorage};
use crate::backend::BackendStorage;
use crate::error::{KilnError, Result};
use crate::ops::{BinaryOp, UnaryOp};
use crate::{layout::MAX_RANK, DType, Layout, Shape};
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

/// Mirrors `StridedParams` in common.wgsl (used by elementwise.wgsl and activation.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct StridedParams {
    numel: u32,
    rank: u32,
    pub(crate) alpha: f32,
    scalar: f32,
    offsets: [u32; 3],
    flags: u32,
    shape: [u32; 8],
    strides: [[u32; 8]; 3],
}

pub(crate) fn to_u32(value: usize, what: &str) -> Result<u32> {
    u32::try_from(value).map_err(|_| {
        KilnError::invalid(
            "wgpu",
            format!("{what} = {value} exceeds the 32-bit indexing of the GPU kernels"),
        )
    })
}

impl StridedParams {
    pub(crate) fn new(shape: &Shape, operands: &[&Layout]) -> Result<Self> {
        if shape.rank() > MAX_RANK {
            return Err(KilnError::invalid(
                "elementwise",
                format!(
                    "shape {shape} has rank {}, the GPU kernels take at most {MAX_RANK}",
                    shape.rank()
                ),
            ));
        }
        let mut p = StridedParams::zeroed();
        p.numel = to_u32(shape.numel(), "element count")?;
        p.rank = shape.rank() as u32;
        for (d, &dim) in shape.dims().iter().enumerate() {
            p.shape[d] = to_u32(dim, "dimension")?;
        }
        for (i, layout) in operands.iter().enumerate() {
            debug_assert_eq!(layout.shape(), shape);
            p.offsets[i] = to_u32(layout.offset(), "offset")?;
            for (d, &stride) in layout.strides().iter().enumerate() {
                p.strides[i][d] = to_u32(stride, "stride")?;
            }
            if layout.is_contiguous() {
                p.flags |= 1 << i;
            }
        }
        Ok(p)
    }
}

/// Mirrors `QuadParams` in common.wgsl: the `_vec4` kernels' parameters.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct QuadParams {
    quads: u32,
    pub(crate) alpha: f32,
    scalar: f32,
    flags: u32,
    offsets: [u32; 2],
    periods: [u32; 2],
}

/// An operand as the `_vec4` kernels read it: (offset, period) in vec4s, period 0 for a plain
/// contiguous operand. Some when the layout is contiguous, or a contiguous trailing block
/// repeated along leading broadcast dimensions (stride 0), with the offset and the block a
/// whole number of vec4s.
fn quad_view(layout: &Layout) -> Option<(u32, u32)> {
    if !layout.offset().is_multiple_of(4) || !layout.numel().is_multiple_of(4) {
        return None;
    }
    let offset = u32::try_from(layout.offset() / 4).ok()?;
    if layout.is_contiguous() {
        return Some((offset, 0));
    }
    // Walk from the last dimension: a row-major block first, then only broadcast dimensions.
    let (dims, strides) = (layout.shape().dims(), layout.strides());
    let mut block = 1usize;
    let mut d = dims.len();
    while d > 0 && (dims[d - 1] == 1 || strides[d - 1] == block) {
        block *= dims[d - 1];
        d -= 1;
    }
    let repeated = dims[..d]
        .iter()
        .zip(&strides[..d])
        .all(|(&dim, &stride)| stride == 0 || dim == 1);
    if !repeated || !block.is_multiple_of(4) || block == 0 {
        return None;
    }
    Some((offset, u32::try_from(block / 4).ok()?))
}

/// The `_vec4` kernels' parameters when every operand has a quad view.
pub(crate) fn quad_params(numel: usize, operands: &[&Layout]) -> Option<QuadParams> {
    let mut p = QuadParams::zeroed();
    p.quads = u32::try_from(numel / 4).ok()?;
    for (i, layout) in operands.iter().enumerate() {
        let (offset, period) = quad_view(layout)?;
        p.offsets[i] = offset;
        p.periods[i] = period;
    }
    Some(p)
}

/// Records one `_vec4` kernel over `q.quads` vec4s (reads, then the output, in `bindings`).
pub(crate) fn dispatch_quads(
    ctx: &Arc<Context>,
    kernel: Kernel,
    op_code: u32,
    q: &QuadParams,
    bindings: &[Binding<'_>],
) -> Result<()> {
    ctx.dispatch(
        kernel,
        op_constant(op_code),
        bytemuck::bytes_of(q),
        bindings,
        grid((q.quads as usize).div_ceil(256)),
    )
}

pub(crate) fn op_constant(code: u32) -> Specialisation {
    Specialisation(vec![("OP", code)])
}

pub(crate) fn unary(
    ctx: &Arc<Context>,
    op: UnaryOp,
    x: &WgpuStorage,
    layout: &Layout,
) -> Result<WgpuStorage> {
    require_f32(x, op.name())?;
    let out = WgpuStorage::output(ctx, layout.numel(), DType::F32, op.name())?;
    if let Some(mut q) = quad_params(layout.numel(), &[layout]) {
        q.alpha = op.param();
        dispatch_quads(
            ctx,
            Kernel::ElementwiseUnaryVec4,
            op.code(),
            &q,
            &[x.binding(), out.binding()],
        )?;
        return Ok(out);
    }
    let mut p = StridedParams::new(layout.shape(), &[layout])?;
    p.alpha = op.param();
    ctx.dispatch(
        Kernel::ElementwiseUnary,
        op_constant(op.code()),
        bytemuck::bytes_of(&p),
        &[x.binding(), out.binding()],
        grid(layout.numel().div_ceil(256)),
    )?;
    Ok(out)
}

pub(crate) fn binary(
    ctx: &Arc<Context>,
    op: BinaryOp,
    a: &WgpuStorage,
    al: &Layout,
    b: &WgpuStorage,
    bl: &Layout,
) -> Result<WgpuStorage> {
    require_f32(a, op.name())?;
    let out = WgpuStorage::output(ctx, al.numel(), DType::F32, op.name())?;
    if let Some(q) = quad_params(al.numel(), &[al, bl]) {
        dispatch_quads(
            ctx,
            Kernel::ElementwiseBinaryVec4,
            op.code(),
            &q,
            &[a.binding(), b.binding(), out.binding()],
        )?;
        return Ok(out);
    }
    let p = StridedParams::new(al.shape(), &[al, bl])?;
    ctx.dispatch(
        Kernel::ElementwiseBinary,
        op_constant(op.code()),
        bytemuck::bytes_of(&p),
        &[a.binding(), b.binding(), out.binding()],
        grid(al.numel().div_ceil(256)),
    )?;
    Ok(out)
}

pub(crate) fn binary_scalar(
    ctx: &Arc<Context>,
    op: BinaryOp,
    x: &WgpuStorage,
    layout: &Layout,
    scalar: f64,
    scalar_on_left: bool,
) -> Result<WgpuStorage> {
    require_f32(x, op.name())?;
    let out = WgpuStorage::output(ctx, layout.numel(), DType::F32, op.name())?;
    if let Some(mut q) = quad_params(layout.numel(), &[layout]) {
        q.scalar = scalar as f32;
        q.flags = if scalar_on_left { 8 } else { 0 };
        dispatch_quads(
            ctx,
            Kernel::ElementwiseBinaryScalarVec4,
            op.code(),
            &q,
            &[x.binding(), out.binding()],
        )?;
        return Ok(out);
    }
    let mut p = StridedParams::new(layout.shape(), &[layout])?;
    p.scalar = scalar as f32;
    if scalar_on_left {
        p.flags |= 8;
    }
    ctx.dispatch(
        Kernel::ElementwiseBinaryScalar,
        op_constant(op.code()),
        bytemuck::bytes_of(&p),
        &[x.binding(), out.binding()],
        grid(layout.numel().div_ceil(256)),
    )?;
    Ok(out)
}

pub(crate) fn select(
    ctx: &Arc<Context>,
    c: (&WgpuStorage, &Layout),
    t: (&WgpuStorage, &Layout),
    f: (&WgpuStorage, &Layout),
) -> Result<WgpuStorage> {
    require_f32(c.0, "select")?;
    let p = StridedParams::new(c.1.shape(), &[c.1, t.1, f.1])?;
    let out = WgpuStorage::output(ctx, c.1.numel(), DType::F32, "select")?;
    ctx.dispatch(
        Kernel::ElementwiseSelect,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[c.0.binding(), t.0.binding(), f.0.binding(), out.binding()],
        grid(c.1.numel().div_ceil(256)),
    )?;
    Ok(out)
}

/// Strided → contiguous copy of a 32-bit dtype.
pub(crate) fn copy_strided(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    layout: &Layout,
) -> Result<WgpuStorage> {
    if x.dtype().size_in_bytes() != 4 {
        return Err(KilnError::UnsupportedDType {
            op: "copy_strided",
            dtype: x.dtype(),
            backend: "wgpu".into(),
            supported: "f32, u32 (cast 8- and 16-bit tensors to f32 before taking strided views)"
                .into(),
        });
    }
    let p = StridedParams::new(layout.shape(), &[layout])?;
    let out = WgpuStorage::output(ctx, layout.numel(), x.dtype(), "copy")?;
    ctx.dispatch(
        Kernel::ElementwiseCopy,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[x.binding(), out.binding()],
        grid(layout.numel().div_ceil(256)),
    )?;
    Ok(out)
}

/// The 32-bit word that repeats `value` in `dtype` (two f16 or four u8 per word).
fn fill_word(dtype: DType, value: f64) -> u32 {
    match dtype {
        DType::F32 => (value as f32).to_bits(),
        DType::U32 => value as u32,
        DType::F16 => {
            let half = half::f16::from_f64(value).to_bits() as u32;
            half | (half << 16)
        }
        DType::U8 => u32::from_ne_bytes([value as u8; 4]),
        DType::F64 => unreachable!("f64 storages are not created on the GPU"),
    }
}

pub(crate) fn fill(
    ctx: &Arc<Context>,
    numel: usize,
    dtype: DType,
    value: f64,
) -> Result<WgpuStorage> {
    let out = WgpuStorage::output(ctx, numel, dtype, "fill")?;
    let words = (numel * dtype.size_in_bytes()).div_ceil(4);
    let mut p = StridedParams::zeroed();
    p.numel = to_u32(words, "element count")?;
    p.offsets[0] = fill_word(dtype, value);
    ctx.dispatch(
        Kernel::ElementwiseFill,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[out.binding()],
        grid(words.div_ceil(256)),
    )?;
    Ok(out)
}

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![
        param_layout!(StridedParams, ShaderFile::Elementwise, "StridedParams", [numel, rank, alpha, scalar, offsets => "offset_a", flags, shape, strides => "strides_a"]),
        param_layout!(QuadParams, ShaderFile::Elementwise, "QuadParams", [quads, alpha, scalar, flags, offsets => "offset_a", periods => "period_a"]),
    ]
}
