//! Backward of views: reshape, transpose, broadcast. Broadcast's rule (sum over the stretched
//! dimensions) is shared by every op that broadcasts its inputs.

use super::InputGrads;
use kiln_tensor::{Backend, Result, Shape, Tensor};

pub(crate) fn reshape<B: Backend>(input: &Tensor<B>, grad: &Tensor<B>) -> Result<InputGrads<B>> {
    Ok(vec![Some(grad.reshape(input.shape().clone())?)])
}

pub(crate) fn transpose<B: Backend>(a: usize, b: usize, grad: &Tensor<B>) -> Result<InputGrads<B>> {
    Ok(vec![Some(grad.transpose(a as isize, b as isize)?)])
}

pub(crate) fn broadcast_to<B: Backend>(
    input: &Tensor<B>,
    grad: &Tensor<B>,
) -> Result<InputGrads<B>> {
    Ok(vec![Some(sum_to_shape(grad, input.shape())?)])
}

/// Sums `grad` (of a broadcast shape) back to `shape`: over the leading dimensions `shape`
/// lacks, and over the dimensions where `shape` has 1.
pub(crate) fn sum_to_shape<B: Backend>(grad: &Tensor<B>, shape: &Shape) -> Result<Tensor<B>> {
    if grad.shape() == shape {
        return Ok(grad.clone());
    }
    let mut g = grad.clone();
    while g.rank() > shape.rank() {
        g = g.sum(0)?;
    }
    for (axis, &dim) in shape.dims().iter().enumerate() {
        if dim == 1 && g.dims()[axis] != 1 {
            let mut kept = g.dims().to_vec();
            kept[axis] = 1;
            g = g.sum(axis as isize)?.reshape(kept)?;
        }
    }
    g.reshape(shape.clone())
}
