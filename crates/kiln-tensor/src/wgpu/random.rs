//! Host side of random.wgsl: counter-based random streams and dropout.

use super::context::Context;
use super::elementwise::to_u32;
use super::grid;
use super::param_layout::param_layout;
use super::pipeline_cache::Specialisation;
use super::shaders::Kernel;
use super::shaders::ShaderFile;
use super::storage::{require_f32, WgpuStorage};
use crate::backend::BackendStorage;
use crate::error::Result;
use crate::ops::{Distribution, RngState};
use crate::DType;
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

/// Mirrors `RandomParams` in random.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RandomParams {
    numel: u32,
    seed_lo: u32,
    seed_hi: u32,
    offset_lo: u32,
    offset_hi: u32,
    a: f32,
    b: f32,
    pad: u32,
}

fn random_params(numel: usize, rng: RngState, a: f32, b: f32) -> Result<RandomParams> {
    Ok(RandomParams {
        numel: to_u32(numel, "element count")?,
        seed_lo: rng.seed as u32,
        seed_hi: (rng.seed >> 32) as u32,
        offset_lo: rng.offset as u32,
        offset_hi: (rng.offset >> 32) as u32,
        a,
        b,
        pad: 0,
    })
}

pub(crate) fn random(
    ctx: &Arc<Context>,
    numel: usize,
    distribution: Distribution,
    rng: RngState,
) -> Result<WgpuStorage> {
    let (kernel, p) = match distribution {
        Distribution::Uniform { low, high } => {
            (Kernel::RandomUniform, random_params(numel, rng, low, high)?)
        }
        Distribution::Normal { mean, std } => {
            (Kernel::RandomNormal, random_params(numel, rng, mean, std)?)
        }
    };
    let out = WgpuStorage::output(ctx, numel, DType::F32, "random")?;
    ctx.dispatch(
        kernel,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[out.binding()],
        grid(numel.div_ceil(256)),
    )?;
    Ok(out)
}

pub(crate) fn dropout(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    p_drop: f32,
    rng: RngState,
) -> Result<(WgpuStorage, WgpuStorage)> {
    require_f32(x, "dropout")?;
    let p = random_params(x.len(), rng, p_drop, 1.0 / (1.0 - p_drop))?;
    let y = WgpuStorage::output(ctx, x.len(), DType::F32, "dropout")?;
    let mask = WgpuStorage::output(ctx, x.len(), DType::F32, "dropout")?;
    ctx.dispatch(
        Kernel::RandomDropout,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[x.binding(), y.binding(), mask.binding()],
        grid(x.len().div_ceil(256)),
    )?;
    Ok((y, mask))
}

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![param_layout!(
        RandomParams,
        ShaderFile::Random,
        "RandomParams",
        [numel, seed_lo, seed_hi, offset_lo, offset_hi, a, b]
    )]
}
