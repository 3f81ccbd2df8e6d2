//! Host side of batch_norm.wgsl: the per-column statistics of a batch and the two
//! reductions of the backward pass.

use super::context::Context;
use super::elementwise::to_u32;
use super::pipeline_cache::Specialisation;
use super::row_params;
use super::shaders::Kernel;
use super::storage::{require_f32, WgpuStorage};
use crate::backend::Rows;
use crate::error::Result;
use crate::DType;
use std::sync::Arc;

pub(crate) fn batch_norm_stats(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    shape: Rows,
) -> Result<(WgpuStorage, WgpuStorage)> {
    require_f32(x, "batch_norm_stats")?;
    let p = row_params(shape, 0.0)?;
    let mean = WgpuStorage::output(ctx, shape.cols, DType::F32, "batch_norm_stats")?;
    let var = WgpuStorage::output(ctx, shape.cols, DType::F32, "batch_norm_stats")?;
    let groups = shape.cols.div_ceil(64);
    ctx.dispatch(
        Kernel::BatchNormStats,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[x.binding(), mean.binding(), var.binding()],
        [to_u32(groups, "column blocks")?, 1, 1],
    )?;
    Ok((mean, var))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_backward_reduce(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    dy: &WgpuStorage,
    mean: &WgpuStorage,
    var: &WgpuStorage,
    shape: Rows,
    eps: f32,
) -> Result<(WgpuStorage, WgpuStorage)> {
    require_f32(x, "batch_norm_backward_reduce")?;
    let p = row_params(shape, eps)?;
    let sum_dy = WgpuStorage::output(ctx, shape.cols, DType::F32, "batch_norm_backward_reduce")?;
    let sum_dy_xhat =
        WgpuStorage::output(ctx, shape.cols, DType::F32, "batch_norm_backward_reduce")?;
    let groups = shape.cols.div_ceil(64);
    ctx.dispatch(
        Kernel::BatchNormBackwardReduce,
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
