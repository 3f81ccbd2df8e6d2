//! Backward of reductions: the gradient of a sum spreads the output gradient over the reduced
//! axis (a broadcast view, no copy); a mean also divides by the axis length.

use super::InputGrads;
use kiln_tensor::{Backend, Result, Tensor};

pub(crate) fn sum<B: Backend>(
    input: &Tensor<B>,
    axis: usize,
    grad: &Tensor<B>,
    mean: bool,
) -> Result<InputGrads<B>> {
    let mut kept = input.dims().to_vec();
    kept[axis] = 1;
    let mut g = grad.reshape(kept)?.broadcast_to(input.shape().clone())?;
    if mean {
        g = (g / input.dims()[axis] as f32)?;
    }
    Ok(vec![Some(g)])
}

pub(crate) fn sum_all<B: Backend>(input: &Tensor<B>, grad: &Tensor<B>) -> Result<InputGrads<B>> {
    let ones = vec![1; input.rank()];
    Ok(vec![Some(
        grad.reshape(ones)?.broadcast_to(input.shape().clone())?,
    )])
}

/// Max/min: the gradient flows to the elements equal to the result, split evenly among ties.
pub(crate) fn extreme<B: Backend>(
    input: &Tensor<B>,
    axis: usize,
    output: &Tensor<B>,
    grad: &Tensor<B>,
) -> Result<InputGrads<B>> {
    let mut kept = input.dims().to_vec();
    kept[axis] = 1;
    let spread = |t: &Tensor<B>| -> Result<Tensor<B>> {
        t.reshape(kept.clone())?.broadcast_to(input.shape().clone())
    };
    let hits = input.eq(&spread(output)?)?;
    let ties = hits.sum(axis as isize)?;
    let share = (grad / &ties)?;
    Ok(vec![Some((hits * &spread(&share)?)?)])
}
