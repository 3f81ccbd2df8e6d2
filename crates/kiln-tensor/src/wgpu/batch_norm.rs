//! Host side of batch_norm.wgsl: per-channel statistics, the one-pass forward map, the two
//! reductions of the backward pass and the one-pass input gradient.

use super::context::{Binding, Context};
use super::elementwise::to_u32;
use super::grid;
use super::param_layout::param_layout;
use super::pipeline_cache::Specialisation;
use super::shaders::{Kernel, ShaderFile};
use super::storage::{require_f32, WgpuStorage};
use crate::backend::BatchNormShape;
use crate::error::Result;
use crate::DType;
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct BatchNormParams {
    outer: u32,
    channels: u32,
    inner: u32,
    eps: f32,
}

fn params(shape: BatchNormShape, eps: f32) -> Result<BatchNormParams> {
    to_u32(shape.numel(), "element count")?;
    Ok(BatchNormParams {
        outer: shape.outer as u32,
        channels: shape.channels as u32,
        inner: shape.inner as u32,
        eps,
    })
}

/// Workgroups of a reduction: blocks of 64 channels when inner is 1, else one per channel.
fn reduction_groups(shape: BatchNormShape) -> Result<[u32; 3]> {
    let groups = if shape.inner == 1 {
        shape.channels.div_ceil(64)
    } else {
        shape.channels
    };
    Ok([to_u32(groups, "channel workgroups")?, 1, 1])
}

fn channel_output(ctx: &Arc<Context>, shape: BatchNormShape, op: &str) -> Result<WgpuStorage> {
    WgpuStorage::output(ctx, shape.channels, DType::F32, op)
}

/// The shape as the shader's override constants (it divides by them).
fn shape_constants(shape: BatchNormShape) -> Result<Specialisation> {
    Ok(Specialisation(vec![
        ("CHANNELS", to_u32(shape.channels, "channels")?),
        (
            "INNER",
            to_u32(shape.inner, "elements per channel and sample")?,
        ),
    ]))
}

/// One invocation per element, or per 4 elements with the `_vec4` kernel when a channel's
/// elements per sample are a multiple of 4: the maps' dispatch.
fn map(
    ctx: &Arc<Context>,
    (scalar, vec4): (Kernel, Kernel),
    (shape, eps): (BatchNormShape, f32),
    inputs: &[&WgpuStorage],
    op: &'static str,
) -> Result<WgpuStorage> {
    for input in inputs {
        require_f32(input, op)?;
    }
    let p = params(shape, eps)?;
    let out = WgpuStorage::output(ctx, shape.numel(), DType::F32, op)?;
    let bindings: Vec<Binding<'_>> = inputs
        .iter()
        .map(|s| s.binding())
        .chain([out.binding()])
        .collect();
    let (kernel, per_invocation) = if shape.inner.is_multiple_of(4) {
        (vec4, 4)
    } else {
        (scalar, 1)
    };
    ctx.dispatch(
        kernel,
        shape_constants(shape)?,
        bytemuck::bytes_of(&p),
        &bindings,
        grid(shape.numel().div_ceil(256 * per_invocation)),
    )?;
    Ok(out)
}

pub(crate) fn batch_norm_stats(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    shape: BatchNormShape,
) -> Result<(WgpuStorage, WgpuStorage)> {
    let op = "batch_norm_stats";
    require_f32(x, op)?;
    let p = params(shape, 0.0)?;
    let mean = channel_output(ctx, shape, op)?;
    let var = channel_output(ctx, shape, op)?;
    ctx.dispatch(
        Kernel::BatchNormStats,
        shape_constants(shape)?,
        bytemuck::bytes_of(&p),
        &[x.binding(), mean.binding(), var.binding()],
        reduction_groups(shape)?,
    )?;
    Ok((mean, var))
}

/// y = (x − mean) / sqrt(var + eps) · γ + β.
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_forward(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    mean: &WgpuStorage,
    var: &WgpuStorage,
    gamma: &WgpuStorage,
    beta: &WgpuStorage,
    shape: BatchNormShape,
    eps: f32,
) -> Result<WgpuStorage> {
    map(
        ctx,
        (Kernel::BatchNormForward, Kernel::BatchNormForwardVec4),
        (shape, eps),
        &[x, mean, var, beta, gamma],
        "batch_norm_forward",
    )
}

pub(crate) fn batch_norm_backward_reduce(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    dy: &WgpuStorage,
    (mean, var): (&WgpuStorage, &WgpuStorage),
    shape: BatchNormShape,
    eps: f32,
) -> Result<(WgpuStorage, WgpuStorage)> {
    let op = "batch_norm_backward_reduce";
    for input in [x, dy, mean, var] {
        require_f32(input, op)?;
    }
    let p = params(shape, eps)?;
    let sum_dy = channel_output(ctx, shape, op)?;
    let sum_dy_xhat = channel_output(ctx, shape, op)?;
    ctx.dispatch(
        Kernel::BatchNormBackwardReduce,
        shape_constants(shape)?,
        bytemuck::bytes_of(&p),
        &[
            x.binding(),
            mean.binding(),
            var.binding(),
            dy.binding(),
            sum_dy.binding(),
            sum_dy_xhat.binding(),
        ],
        reduction_groups(shape)?,
    )?;
    Ok((sum_dy, sum_dy_xhat))
}

/// dx = γ / sqrt(var + eps) · (dy − Σdy / n − x̂ · Σ(dy·x̂) / n).
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_backward_input(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    dy: &WgpuStorage,
    (mean, var, gamma): (&WgpuStorage, &WgpuStorage, &WgpuStorage),
    (sum_dy, sum_dy_xhat): (&WgpuStorage, &WgpuStorage),
    shape: BatchNormShape,
    eps: f32,
) -> Result<WgpuStorage> {
    map(
        ctx,
        (
            Kernel::BatchNormBackwardInput,
            Kernel::BatchNormBackwardInputVec4,
        ),
        (shape, eps),
        &[x, mean, var, dy, gamma, sum_dy, sum_dy_xhat],
        "batch_norm_backward_input",
    )
}

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![param_layout!(
        BatchNormParams,
        ShaderFile::BatchNorm,
        "BatchNormParams",
        [outer, channels, inner, eps]
    )]
}
