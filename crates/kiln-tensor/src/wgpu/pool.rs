//! Host side of pool.wgsl: max pooling (with its arg-max indices) and average pooling, forward
//! and backward, one invocation per output (forward) or input (backward) element.

use super::context::Context;
use super::elementwise::to_u32;
use super::grid;
use super::param_layout::param_layout;
use super::pipeline_cache::Specialisation;
use super::shaders::{Kernel, ShaderFile};
use super::storage::{require_f32, WgpuStorage};
use crate::error::Result;
use crate::ops::Pool2dShape;
use crate::DType;
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

/// Mirrors `PoolParams` in pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PoolParams {
    planes: u32,
    height: u32,
    width: u32,
    kernel: u32,
    stride: u32,
    padding: u32,
    out_height: u32,
    out_width: u32,
}

/// The window and plane shapes as the shader's override constants (it divides by them).
fn shape_constants(p: &PoolParams) -> Specialisation {
    Specialisation(vec![
        ("HEIGHT", p.height),
        ("WIDTH", p.width),
        ("KERNEL", p.kernel),
        ("STRIDE", p.stride),
        ("PADDING", p.padding),
        ("OUT_HEIGHT", p.out_height),
        ("OUT_WIDTH", p.out_width),
    ])
}

fn params(s: &Pool2dShape) -> Result<PoolParams> {
    to_u32(s.input_len().max(s.output_len()), "element count")?;
    Ok(PoolParams {
        planes: to_u32(s.batch * s.channels, "planes")?,
        height: to_u32(s.height, "height")?,
        width: to_u32(s.width, "width")?,
        kernel: to_u32(s.kernel, "kernel")?,
        stride: to_u32(s.stride, "stride")?,
        padding: to_u32(s.padding, "padding")?,
        out_height: to_u32(s.out_height(), "output height")?,
        out_width: to_u32(s.out_width(), "output width")?,
    })
}

/// (y, arg-max indices into each input plane, u32).
pub(crate) fn max_pool2d(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    s: &Pool2dShape,
) -> Result<(WgpuStorage, WgpuStorage)> {
    require_f32(x, "max_pool2d")?;
    let p = params(s)?;
    let y = WgpuStorage::output(ctx, s.output_len(), DType::F32, "max_pool2d")?;
    let indices = WgpuStorage::output(ctx, s.output_len(), DType::U32, "max_pool2d")?;
    ctx.dispatch(
        Kernel::PoolMax,
        shape_constants(&p),
        bytemuck::bytes_of(&p),
        &[x.binding(), y.binding(), indices.binding()],
        grid(s.output_len().div_ceil(256)),
    )?;
    Ok((y, indices))
}

pub(crate) fn max_pool2d_backward(
    ctx: &Arc<Context>,
    dy: &WgpuStorage,
    indices: &WgpuStorage,
    s: &Pool2dShape,
) -> Result<WgpuStorage> {
    require_f32(dy, "max_pool2d_backward")?;
    let p = params(s)?;
    let dx = WgpuStorage::output(ctx, s.input_len(), DType::F32, "max_pool2d_backward")?;
    ctx.dispatch(
        Kernel::PoolMaxBackward,
        shape_constants(&p),
        bytemuck::bytes_of(&p),
        &[dy.binding(), indices.binding(), dx.binding()],
        grid(s.input_len().div_ceil(256)),
    )?;
    Ok(dx)
}

pub(crate) fn avg_pool2d(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    s: &Pool2dShape,
) -> Result<WgpuStorage> {
    require_f32(x, "avg_pool2d")?;
    let p = params(s)?;
    let y = WgpuStorage::output(ctx, s.output_len(), DType::F32, "avg_pool2d")?;
    ctx.dispatch(
        Kernel::PoolAvg,
        shape_constants(&p),
        bytemuck::bytes_of(&p),
        &[x.binding(), y.binding()],
        grid(s.output_len().div_ceil(256)),
    )?;
    Ok(y)
}

pub(crate) fn avg_pool2d_backward(
    ctx: &Arc<Context>,
    dy: &WgpuStorage,
    s: &Pool2dShape,
) -> Result<WgpuStorage> {
    require_f32(dy, "avg_pool2d_backward")?;
    let p = params(s)?;
    let dx = WgpuStorage::output(ctx, s.input_len(), DType::F32, "avg_pool2d_backward")?;
    ctx.dispatch(
        Kernel::PoolAvgBackward,
        shape_constants(&p),
        bytemuck::bytes_of(&p),
        &[dy.binding(), dx.binding()],
        grid(s.input_len().div_ceil(256)),
    )?;
    Ok(dx)
}

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![param_layout!(
        PoolParams,
        ShaderFile::Pool,
        "PoolParams",
        [planes, height, width, kernel, stride, padding, out_height, out_width]
    )]
}
