//! Backward of batch normalisation, per channel: dβ = Σ dy and dγ = Σ dy · x̂ (the two fused
//! reductions); with the batch's statistics dx = γ · inv_std · (dy − Σdy / n − x̂ · Σ(dy·x̂) / n)
//! in one pass, with constant (running) statistics dx = dy · γ · inv_std.

use super::InputGrads;
use kiln_tensor::{Backend, Result, Tensor};

pub(crate) fn batch_norm<B: Backend>(
    inputs: &[&Tensor<B>],
    (mean, var): (&Tensor<B>, &Tensor<B>),
    eps: f32,
    batch_stats: bool,
    grad: &Tensor<B>,
) -> Result<InputGrads<B>> {
    let (x, gamma) = (inputs[0], inputs[1]);
    let grad = grad.contiguous()?;
    let (sum_dy, sum_dy_xhat) = x.batch_norm_backward_reduce(&grad, (mean, var), eps)?;
    let dx = if batch_stats {
        x.batch_norm_backward_input(&grad, (mean, var, gamma), (&sum_dy, &sum_dy_xhat), eps)?
    } else {
        // [C] → [C, 1, …] so that it broadcasts along axis 1 of x.
        let mut channel_view = vec![gamma.numel()];
        channel_view.resize(x.rank() - 1, 1);
        let scale = (gamma / &(var + eps)?.sqrt()?)?.reshape(channel_view)?;
        (&grad * &scale)?
    };
    Ok(vec![Some(dx), Some(sum_dy_xhat), Some(sum_dy)])
}
