//! Backward of batch normalisation (batch statistics), from the two fused reductions:
//! dx = inv_std · (dy − Σdy / N − x̂ · Σ(dy·x̂) / N), with x̂ = (x − mean) · inv_std.

use super::InputGrads;
use kiln_tensor::{Backend, Result, Tensor};

pub(crate) fn batch_norm<B: Backend>(
    x: &Tensor<B>,
    mean: &Tensor<B>,
    var: &Tensor<B>,
    eps: f32,
    grad: &Tensor<B>,
) -> Result<InputGrads<B>> {
    let n = x.dims()[0] as f32;
    let grad = grad.contiguous()?;
    let (sum_dy, sum_dy_xhat) = x.batch_norm_backward_reduce(&grad, mean, var, eps)?;
    let inv_std = (var + eps)?.sqrt()?.recip()?;
    let x_hat = ((x - mean)? * &inv_std)?;
    let centred = ((&grad - &(sum_dy / n)?)? - &(x_hat * &(sum_dy_xhat / n)?)?)?;
    Ok(vec![Some((centred * &inv_std)?)])
}
