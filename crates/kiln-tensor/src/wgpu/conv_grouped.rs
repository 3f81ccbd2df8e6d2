//! Host side of conv.wgsl's grouped kernels: convolutions with channel groups (groups > 1,
//! depthwise included), forward and both backward passes, computed directly (see the shader's
//! header). conv.rs routes every convolution with more than one group here.

use super::context::Context;
use super::conv::{params, ConvParams};
use super::elementwise::to_u32;
use super::grid;
use super::pipeline_cache::Specialisation;
use super::shaders::Kernel;
use super::storage::WgpuStorage;
use crate::error::Result;
use crate::ops::{Conv2dShape, UnaryOp};
use crate::DType;
use std::sync::Arc;

/// The parameters the grouped kernels read: the geometry, the batch and the activation's
/// parameter (the GEMM fields stay 0).
fn grouped_params(s: &Conv2dShape, alpha: f32) -> Result<ConvParams> {
    let mut p = params(s, (0, 0, 0), 0)?;
    p.alpha = alpha;
    Ok(p)
}

/// y = act(conv(x, w) + bias): one invocation per output element.
pub(super) fn conv2d(
    ctx: &Arc<Context>,
    (x, w, bias): (&WgpuStorage, &WgpuStorage, Option<&WgpuStorage>),
    activation: Option<UnaryOp>,
    s: &Conv2dShape,
) -> Result<WgpuStorage> {
    let p = grouped_params(s, activation.map_or(0.0, |op| op.param()))?;
    let y = WgpuStorage::output(ctx, s.output_len(), DType::F32, "conv2d")?;
    let constants = Specialisation(vec![
        ("HAS_BIAS", bias.is_some() as u32),
        ("ACTIVATION", activation.map_or(0, |op| op.code())),
    ]);
    ctx.dispatch(
        Kernel::ConvGroupedForward,
        constants,
        bytemuck::bytes_of(&p),
        // Without a bias, w is bound in its place: the kernel never reads it.
        &[
            x.binding(),
            w.binding(),
            bias.unwrap_or(w).binding(),
            y.binding(),
        ],
        grid(s.output_len().div_ceil(256)),
    )?;
    Ok(y)
}

/// dx: one invocation per input element, gathering the outputs that read it.
pub(super) fn conv2d_backward_input(
    ctx: &Arc<Context>,
    dy: &WgpuStorage,
    w: &WgpuStorage,
    s: &Conv2dShape,
) -> Result<WgpuStorage> {
    let p = grouped_params(s, 0.0)?;
    let dx = WgpuStorage::output(ctx, s.input_len(), DType::F32, "conv2d_backward_input")?;
    ctx.dispatch(
        Kernel::ConvGroupedBackwardInput,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[dy.binding(), w.binding(), dx.binding()],
        grid(s.input_len().div_ceil(256)),
    )?;
    Ok(dx)
}

/// dw: one workgroup per weight element, reducing over the batch and the output pixels.
pub(super) fn conv2d_backward_weight(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    dy: &WgpuStorage,
    s: &Conv2dShape,
) -> Result<WgpuStorage> {
    let p = grouped_params(s, 0.0)?;
    to_u32(s.batch * s.out_height() * s.out_width(), "output pixels")?;
    let dw = WgpuStorage::output(ctx, s.weight_len(), DType::F32, "conv2d_backward_weight")?;
    ctx.dispatch(
        Kernel::ConvGroupedBackwardWeight,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[dy.binding(), x.binding(), dw.binding()],
        grid(s.weight_len()),
    )?;
    Ok(dw)
}
