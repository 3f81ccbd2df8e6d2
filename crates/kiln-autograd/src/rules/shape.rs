//! Backward of views: reshape, transpose, broadcast. Broadcast's rule (sum over the stretched
//! dimensions) is shared by every op that broadcasts its inputs.

use super::InputGrads;
use kiln_tensor::{Backend, Result, Shape, Tensor};

/// narrow: the gradient lands in the kept range, zeros elsewhere. With the narrowed dimension
/// moved first and the rest flattened, that is Pᵀ · grad for the [len, size] 0/1 matrix P with
/// P[i, start + i] = 1 (uploaded; size · len values).
pub(crate) fn narrow<B: Backend>(
    input: &Tensor<B>,
    dim: usize,
    start: usize,
    grad: &Tensor<B>,
) -> Result<InputGrads<B>> {
    let size = input.dims()[dim];
    let len = grad.dims()[dim];
    let moved = grad.transpose(0, dim as isize)?.contiguous()?;
    let rest: Vec<usize> = moved.dims()[1..].to_vec();
    let flat = moved.reshape([len, rest.iter().product()])?;
    let mut picks = vec![0.0f32; len * size];
    for i in 0..len {
        picks[i * size + start + i] = 1.0;
    }
    let p = Tensor::from_vec(picks, [len, size], input.backend())?.cast(input.dtype())?;
    let full = p.t()?.matmul(&flat)?;
    let mut full_dims = vec![size];
    full_dims.extend(rest);
    Ok(vec![Some(
        full.reshape(full_dims)?.transpose(0, dim as isize)?,
    )])
}

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
