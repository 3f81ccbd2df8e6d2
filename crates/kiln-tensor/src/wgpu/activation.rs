//! Host side of activation.wgsl: the derivatives of the unary activations (their backward
//! pass) and PReLU forward and backward.

use super::context::Context;
use super::elementwise::{dispatch_quads, op_constant, quad_params, to_u32, StridedParams};
use super::grid;
use super::param_layout::param_layout;
use super::pipeline_cache::Specialisation;
use super::shaders::Kernel;
use super::shaders::ShaderFile;
use super::storage::{require_f32, WgpuStorage};
use crate::backend::{BackendStorage, ReduceDims};
use crate::error::Result;
use crate::ops::UnaryOp;
use crate::{DType, Layout};
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

pub(crate) fn unary_backward(
    ctx: &Arc<Context>,
    op: UnaryOp,
    x: &WgpuStorage,
    xl: &Layout,
    g: &WgpuStorage,
    gl: &Layout,
) -> Result<WgpuStorage> {
    require_f32(x, op.name())?;
    let out = WgpuStorage::output(ctx, xl.numel(), DType::F32, op.name())?;
    if let Some(mut q) = quad_params(xl.numel(), &[xl, gl]) {
        q.alpha = op.param();
        dispatch_quads(
            ctx,
            Kernel::ActivationBackwardVec4,
            op.code(),
            &q,
            &[x.binding(), g.binding(), out.binding()],
        )?;
        return Ok(out);
    }
    let mut p = StridedParams::new(xl.shape(), &[xl, gl])?;
    p.alpha = op.param();
    ctx.dispatch(
        Kernel::ActivationBackward,
        op_constant(op.code()),
        bytemuck::bytes_of(&p),
        &[x.binding(), g.binding(), out.binding()],
        grid(xl.numel().div_ceil(256)),
    )?;
    Ok(out)
}

/// Mirrors `PreluParams` in activation.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PreluParams {
    outer: u32,
    channels: u32,
    inner: u32,
    numel: u32,
}

fn prelu_params(dims: ReduceDims) -> Result<PreluParams> {
    Ok(PreluParams {
        outer: to_u32(dims.outer, "batch")?,
        channels: to_u32(dims.len, "channels")?,
        inner: to_u32(dims.inner.max(1), "inner size")?,
        numel: to_u32(dims.outer * dims.len * dims.inner, "element count")?,
    })
}

pub(crate) fn prelu(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    alpha: &WgpuStorage,
    dims: ReduceDims,
) -> Result<WgpuStorage> {
    require_f32(x, "prelu")?;
    let p = prelu_params(dims)?;
    let out = WgpuStorage::output(ctx, x.len(), DType::F32, "prelu")?;
    ctx.dispatch(
        Kernel::ActivationPrelu,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[x.binding(), alpha.binding(), out.binding()],
        grid((p.numel as usize).div_ceil(256)),
    )?;
    Ok(out)
}

pub(crate) fn prelu_backward(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    alpha: &WgpuStorage,
    grad: &WgpuStorage,
    dims: ReduceDims,
) -> Result<(WgpuStorage, WgpuStorage)> {
    require_f32(x, "prelu_backward")?;
    let p = prelu_params(dims)?;
    let dx = WgpuStorage::output(ctx, x.len(), DType::F32, "prelu_backward")?;
    ctx.dispatch(
        Kernel::ActivationPreluBackward,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[x.binding(), alpha.binding(), grad.binding(), dx.binding()],
        grid((p.numel as usize).div_ceil(256)),
    )?;
    let dalpha = WgpuStorage::output(ctx, dims.len, DType::F32, "prelu_backward")?;
    ctx.dispatch(
        Kernel::ActivationPreluAlphaGrad,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[x.binding(), grad.binding(), dalpha.binding()],
        [p.channels, 1, 1],
    )?;
    Ok((dx, dalpha))
}

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![param_layout!(
        PreluParams,
        ShaderFile::Activation,
        "PreluParams",
        [outer, channels, inner, numel]
    )]
}
