//! Backward of the random family: dropout multiplies the gradient by its mask.

use super::InputGrads;
use kiln_tensor::{Backend, Result, Tensor};

pub(crate) fn dropout<B: Backend>(mask: &Tensor<B>, grad: &Tensor<B>) -> Result<InputGrads<B>> {
    Ok(vec![Some((grad * mask)?)])
}
