//! Host side of loss_scale.wgsl: dynamic loss scaling kept on the device (unscale with the
//! non-finite check, then the scale update), so a mixed-precision step needs no readback.

use super::context::Context;
use super::elementwise::to_u32;
use super::grid;
use super::param_layout::param_layout;
use super::pipeline_cache::Specialisation;
use super::shaders::Kernel;
use super::shaders::ShaderFile;
use super::storage::WgpuStorage;
use crate::backend::BackendStorage;
use crate::error::Result;
use crate::ops::LossScaleRule;
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

/// Mirrors `UnscaleParams` in loss_scale.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct UnscaleParams {
    numel: u32,
    pad: [u32; 3],
}

/// Mirrors `UpdateParams` in loss_scale.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct UpdateParams {
    growth: f32,
    backoff: f32,
    interval: u32,
    pad: u32,
}

pub(crate) fn unscale_gradient(
    ctx: &Arc<Context>,
    grad: &WgpuStorage,
    scale: &WgpuStorage,
    flags: &WgpuStorage,
) -> Result<()> {
    let p = UnscaleParams {
        numel: to_u32(grad.len(), "gradient length")?,
        pad: [0; 3],
    };
    ctx.dispatch(
        Kernel::LossScaleUnscale,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[scale.binding(), grad.binding(), flags.binding()],
        grid(grad.len().div_ceil(256)),
    )
}

pub(crate) fn update_loss_scale(
    ctx: &Arc<Context>,
    scale: &WgpuStorage,
    flags: &WgpuStorage,
    rule: &LossScaleRule,
) -> Result<()> {
    let p = UpdateParams {
        growth: rule.growth,
        backoff: rule.backoff,
        interval: rule.interval,
        pad: 0,
    };
    ctx.dispatch(
        Kernel::LossScaleUpdate,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[scale.binding(), flags.binding()],
        [1, 1, 1],
    )
}

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![
        param_layout!(
            UnscaleParams,
            ShaderFile::LossScale,
            "UnscaleParams",
            [numel]
        ),
        param_layout!(
            UpdateParams,
            ShaderFile::LossScale,
            "UpdateParams",
            [growth, backoff, interval]
        ),
    ]
}
