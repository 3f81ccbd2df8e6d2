//! Host side of softmax_xent.wgsl: row softmax, log-softmax, and softmax cross-entropy
//! against labels or target probabilities, forward and backward.

use super::context::Context;
use super::grid;
use super::pipeline_cache::Specialisation;
use super::row_params;
use super::shaders::Kernel;
use super::storage::{require_f32, WgpuStorage};
use crate::backend::Rows;
use crate::error::Result;
use crate::ops::XentTargets;
use crate::DType;
use std::sync::Arc;

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
