//! Backward of the activation family: unary ops through `unary_backward`, and PReLU.

use super::InputGrads;
use kiln_tensor::{Backend, Result, Tensor, UnaryOp};

pub(crate) fn unary<B: Backend>(
    op: UnaryOp,
    x: &Tensor<B>,
    grad: &Tensor<B>,
) -> Result<InputGrads<B>> {
    Ok(vec![Some(x.unary_backward(op, &grad.contiguous()?)?)])
}

pub(crate) fn prelu<B: Backend>(
    x: &Tensor<B>,
    alpha: &Tensor<B>,
    grad: &Tensor<B>,
) -> Result<InputGrads<B>> {
    let (dx, dalpha) = x.prelu_backward(alpha, grad)?;
    Ok(vec![Some(dx), Some(dalpha)])
}
