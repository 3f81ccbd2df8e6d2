//! Backward of the fused softmax cross-entropy, (softmax · Σt − t) · g in one kernel, and of
//! row softmax / log-softmax from their outputs.

use super::InputGrads;
use kiln_tensor::{Backend, Result, Tensor};

pub(crate) fn softmax_xent<B: Backend>(
    logits: &Tensor<B>,
    targets: &Tensor<B>,
    grad: &Tensor<B>,
) -> Result<InputGrads<B>> {
    Ok(vec![Some(
        logits.softmax_xent_backward(targets, &grad.contiguous()?)?,
    )])
}

/// softmax: dx = y · (g − Σ g·y); log-softmax: dx = g − softmax(x) · Σ g, sums per row.
pub(crate) fn softmax<B: Backend>(
    log: bool,
    output: &Tensor<B>,
    grad: &Tensor<B>,
) -> Result<InputGrads<B>> {
    let rows = output.dims()[0];
    let row_sum = |t: &Tensor<B>| -> Result<Tensor<B>> { t.sum(1)?.reshape([rows, 1]) };
    let dx = if log {
        (grad - &(output.exp()? * &row_sum(grad)?)?)?
    } else {
        (output * &(grad - &row_sum(&(grad * output)?)?)?)?
    };
    Ok(vec![Some(dx)])
}
