//! Host side of the fused training kernels: softmax_xent.wgsl, batchnorm.wgsl, optim.wgsl
//! and random.wgsl.

use super::context::Context;
use super::elementwise::to_u32;
use super::grid;
use super::pipeline_cache::Specialisation;
use super::shaders::Kernel;
use super::storage::WgpuStorage;
use crate::backend::{BackendStorage, Rows};
use crate::error::{KilnError, Result};
use crate::ops::{AdamStep, AdaptiveStep, Distribution, RngState, SgdStep, XentTargets};
use crate::DType;
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

/// Mirrors `RowParams` (softmax_xent.wgsl) and `BatchnormParams` (batchnorm.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RowParams {
    rows: u32,
    cols: u32,
    eps: f32,
    pad: u32,
}

fn row_params(shape: Rows, eps: f32) -> Result<RowParams> {
    to_u32(shape.rows * shape.cols, "element count")?;
    Ok(RowParams {
        rows: shape.rows as u32,
        cols: shape.cols as u32,
        eps,
        pad: 0,
    })
}

/// Rows of at most this many columns run the softmax kernels' `_narrow` forms: one invocation
/// per row, in workgroups of 64 rows.
const NARROW_COLS: usize = 64;

/// The wide kernel and its grid (a workgroup per row), or the narrow one and its grid.
fn row_kernel(shape: Rows, wide: Kernel, narrow: Kernel) -> (Kernel, [u32; 3]) {
    if shape.cols <= NARROW_COLS {
        (narrow, grid(shape.rows.div_ceil(64)))
    } else {
        (wide, grid(shape.rows))
    }
}

/// The cross-entropy kernel for these targets and pass (forward or backward) at this row
/// width, its grid, and the targets' storage.
fn xent_kernel<'t>(
    shape: Rows,
    targets: XentTargets<'t, WgpuStorage>,
    backward: bool,
) -> (Kernel, [u32; 3], &'t WgpuStorage) {
    use Kernel::*;
    let (wide, narrow, t) = match (targets, backward) {
        (XentTargets::Labels(t), false) => {
            (SoftmaxXentLabelsForward, SoftmaxXentLabelsForwardNarrow, t)
        }
        (XentTargets::Soft(t), false) => (SoftmaxXentSoftForward, SoftmaxXentSoftForwardNarrow, t),
        (XentTargets::Labels(t), true) => (
            SoftmaxXentLabelsBackward,
            SoftmaxXentLabelsBackwardNarrow,
            t,
        ),
        (XentTargets::Soft(t), true) => (SoftmaxXentSoftBackward, SoftmaxXentSoftBackwardNarrow, t),
    };
    let (kernel, workgroups) = row_kernel(shape, wide, narrow);
    (kernel, workgroups, t)
}

fn require_f32(s: &WgpuStorage, op: &'static str) -> Result<()> {
    if s.dtype() == DType::F32 {
        Ok(())
    } else {
        Err(KilnError::UnsupportedDType {
            op,
            dtype: s.dtype(),
            backend: "wgpu".into(),
            supported: "f32".into(),
        })
    }
}

pub(crate) fn softmax(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    shape: Rows,
    log: bool,
) -> Result<WgpuStorage> {
    require_f32(x, "softmax")?;
    let p = row_params(shape, 0.0)?;
    let out = WgpuStorage::output(ctx, shape.rows * shape.cols, DType::F32, "softmax")?;
    let constants = Specialisation(vec![("LOG", log as u32)]);
    let (kernel, workgroups) = row_kernel(
        shape,
        Kernel::SoftmaxXentSoftmax,
        Kernel::SoftmaxXentSoftmaxNarrow,
    );
    ctx.dispatch(
        kernel,
        constants,
        bytemuck::bytes_of(&p),
        &[x.binding(), out.binding()],
        workgroups,
    )?;
    Ok(out)
}

pub(crate) fn softmax_xent(
    ctx: &Arc<Context>,
    logits: &WgpuStorage,
    shape: Rows,
    targets: XentTargets<'_, WgpuStorage>,
) -> Result<WgpuStorage> {
    require_f32(logits, "softmax_xent")?;
    let p = row_params(shape, 0.0)?;
    let out = WgpuStorage::output(ctx, shape.rows, DType::F32, "softmax_xent")?;
    let (kernel, workgroups, t) = xent_kernel(shape, targets, false);
    ctx.dispatch(
        kernel,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[logits.binding(), t.binding(), out.binding()],
        workgroups,
    )?;
    Ok(out)
}

pub(crate) fn softmax_xent_backward(
    ctx: &Arc<Context>,
    logits: &WgpuStorage,
    shape: Rows,
    targets: XentTargets<'_, WgpuStorage>,
    grad_rows: &WgpuStorage,
) -> Result<WgpuStorage> {
    require_f32(logits, "softmax_xent_backward")?;
    let p = row_params(shape, 0.0)?;
    let out = WgpuStorage::output(
        ctx,
        shape.rows * shape.cols,
        DType::F32,
        "softmax_xent_backward",
    )?;
    let (kernel, workgroups, t) = xent_kernel(shape, targets, true);
    ctx.dispatch(
        kernel,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[
            logits.binding(),
            t.binding(),
            grad_rows.binding(),
            out.binding(),
        ],
        workgroups,
    )?;
    Ok(out)
}

pub(crate) fn batchnorm_stats(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    shape: Rows,
) -> Result<(WgpuStorage, WgpuStorage)> {
    require_f32(x, "batchnorm_stats")?;
    let p = row_params(shape, 0.0)?;
    let mean = WgpuStorage::output(ctx, shape.cols, DType::F32, "batchnorm_stats")?;
    let var = WgpuStorage::output(ctx, shape.cols, DType::F32, "batchnorm_stats")?;
    let groups = shape.cols.div_ceil(64);
    ctx.dispatch(
        Kernel::BatchnormStats,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[x.binding(), mean.binding(), var.binding()],
        [to_u32(groups, "column blocks")?, 1, 1],
    )?;
    Ok((mean, var))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn batchnorm_backward_reduce(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    dy: &WgpuStorage,
    mean: &WgpuStorage,
    var: &WgpuStorage,
    shape: Rows,
    eps: f32,
) -> Result<(WgpuStorage, WgpuStorage)> {
    require_f32(x, "batchnorm_backward_reduce")?;
    let p = row_params(shape, eps)?;
    let sum_dy = WgpuStorage::output(ctx, shape.cols, DType::F32, "batchnorm_backward_reduce")?;
    let sum_dy_xhat =
        WgpuStorage::output(ctx, shape.cols, DType::F32, "batchnorm_backward_reduce")?;
    let groups = shape.cols.div_ceil(64);
    ctx.dispatch(
        Kernel::BatchnormBackwardReduce,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[
            x.binding(),
            dy.binding(),
            mean.binding(),
            var.binding(),
            sum_dy.binding(),
            sum_dy_xhat.binding(),
        ],
        [to_u32(groups, "column blocks")?, 1, 1],
    )?;
    Ok((sum_dy, sum_dy_xhat))
}

/// Mirrors `AdamParams` in optim.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AdamParams {
    numel: u32,
    decoupled: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bias_correction1: f32,
    bias_correction2: f32,
    step: u32,
    pad: [u32; 2],
}

pub(crate) fn adam_step(
    ctx: &Arc<Context>,
    param: &WgpuStorage,
    grad: &WgpuStorage,
    m: &WgpuStorage,
    v: &WgpuStorage,
    step: &AdamStep,
    skip_if: Option<&WgpuStorage>,
) -> Result<()> {
    require_f32(param, "adam_step")?;
    let (bias_correction1, bias_correction2) = step.bias_corrections();
    let p = AdamParams {
        numel: to_u32(param.len(), "parameter count")?,
        decoupled: step.decoupled as u32,
        lr: step.lr,
        beta1: step.beta1,
        beta2: step.beta2,
        eps: step.eps,
        weight_decay: step.weight_decay,
        bias_correction1,
        bias_correction2,
        step: step.step,
        pad: [0; 2],
    };
    // Whole vec4s when the length allows (the buffers are whole tensors, from offset 0).
    let (kernel, invocations) = if param.len().is_multiple_of(4) {
        (Kernel::OptimAdamStepVec4, param.len() / 4)
    } else {
        (Kernel::OptimAdamStep, param.len())
    };
    ctx.dispatch(
        kernel,
        gate_constant(skip_if),
        bytemuck::bytes_of(&p),
        &[
            grad.binding(),
            skip_if.unwrap_or(grad).binding(),
            param.binding(),
            m.binding(),
            v.binding(),
        ],
        grid(invocations.div_ceil(256)),
    )
}

/// The optimiser kernels' GATED constant: set when a loss scaler's flags may skip the step
/// (without one, the gradient is bound in the flags' place and never read).
fn gate_constant(skip_if: Option<&WgpuStorage>) -> Specialisation {
    Specialisation(vec![("GATED", skip_if.is_some() as u32)])
}

/// Mirrors `SgdParams` in optim.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SgdParams {
    numel: u32,
    nesterov: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    pad: [u32; 3],
}

pub(crate) fn sgd_step(
    ctx: &Arc<Context>,
    param: &WgpuStorage,
    grad: &WgpuStorage,
    velocity: Option<&WgpuStorage>,
    step: &SgdStep,
    skip_if: Option<&WgpuStorage>,
) -> Result<()> {
    require_f32(param, "sgd_step")?;
    let p = SgdParams {
        numel: to_u32(param.len(), "parameter count")?,
        nesterov: step.nesterov as u32,
        lr: step.lr,
        momentum: step.momentum,
        weight_decay: step.weight_decay,
        pad: [0; 3],
    };
    let workgroups = grid(param.len().div_ceil(256));
    let gate = skip_if.unwrap_or(grad).binding();
    match velocity {
        None => ctx.dispatch(
            Kernel::OptimSgdStep,
            gate_constant(skip_if),
            bytemuck::bytes_of(&p),
            &[grad.binding(), gate, param.binding()],
            workgroups,
        ),
        Some(velocity) => ctx.dispatch(
            Kernel::OptimSgdMomentumStep,
            gate_constant(skip_if),
            bytemuck::bytes_of(&p),
            &[grad.binding(), gate, param.binding(), velocity.binding()],
            workgroups,
        ),
    }
}

/// Mirrors `AdaptiveParams` in optim.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AdaptiveParams {
    numel: u32,
    lr: f32,
    eps: f32,
    weight_decay: f32,
    decay: f32,
    gain: f32,
    pad: [u32; 2],
}

pub(crate) fn adaptive_step(
    ctx: &Arc<Context>,
    param: &WgpuStorage,
    grad: &WgpuStorage,
    accumulator: &WgpuStorage,
    step: &AdaptiveStep,
    skip_if: Option<&WgpuStorage>,
) -> Result<()> {
    require_f32(param, "adaptive_step")?;
    let p = AdaptiveParams {
        numel: to_u32(param.len(), "parameter count")?,
        lr: step.lr,
        eps: step.eps,
        weight_decay: step.weight_decay,
        decay: step.decay,
        gain: step.gain,
        pad: [0; 2],
    };
    ctx.dispatch(
        Kernel::OptimAdaptiveStep,
        gate_constant(skip_if),
        bytemuck::bytes_of(&p),
        &[
            grad.binding(),
            skip_if.unwrap_or(grad).binding(),
            param.binding(),
            accumulator.binding(),
        ],
        grid(param.len().div_ceil(256)),
    )
}

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
