//! Host side of optim.wgsl: the fused optimiser steps (Adam/AdamW, SGD with momentum or
//! Nesterov, AdaGrad/RMSProp), each updating its tensors in place.

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
use crate::ops::{AdamStep, AdaptiveStep, SgdStep};
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

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

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![
        param_layout!(
            AdamParams,
            ShaderFile::Optim,
            "AdamParams",
            [
                numel,
                decoupled,
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
                bias_correction1,
                bias_correction2,
                step
            ]
        ),
        param_layout!(
            SgdParams,
            ShaderFile::Optim,
            "SgdParams",
            [numel, nesterov, lr, momentum, weight_decay]
        ),
        param_layout!(
            AdaptiveParams,
            ShaderFile::Optim,
            "AdaptiveParams",
            [numel, lr, eps, weight_decay, decay, gain]
        ),
    ]
}
