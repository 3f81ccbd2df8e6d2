//! Backward of the pool family: max pooling sends each window's gradient to the arg-max it
//! recorded (ties went to one element, the same on both backends); average pooling spreads it
//! evenly over the window.

use super::InputGrads;
use kiln_tensor::{Backend, Pool2dShape, Result, Tensor};

pub(crate) fn max_pool2d<B: Backend>(
    shape: &Pool2dShape,
    indices: &Tensor<B>,
    grad: &Tensor<B>,
) -> Result<InputGrads<B>> {
    Ok(vec![Some(grad.max_pool2d_backward(indices, shape)?)])
}

pub(crate) fn avg_pool2d<B: Backend>(
    shape: &Pool2dShape,
    grad: &Tensor<B>,
) -> Result<InputGrads<B>> {
    Ok(vec![Some(grad.avg_pool2d_backward(shape)?)])
}
