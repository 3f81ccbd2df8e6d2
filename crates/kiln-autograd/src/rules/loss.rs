//! Backward of the fused softmax cross-entropy: one fused kernel, (softmax · Σt − t) · g.

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
