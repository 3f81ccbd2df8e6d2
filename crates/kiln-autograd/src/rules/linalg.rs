//! Backward of matmul: dA = dC·Bᵀ and dB = Aᵀ·dC, read through transpose flags (the transposed
//! views are never copied).

use super::InputGrads;
use kiln_tensor::{Backend, Result, Tensor};

pub(crate) fn matmul<B: Backend>(
    a: &Tensor<B>,
    b: &Tensor<B>,
    grad: &Tensor<B>,
) -> Result<InputGrads<B>> {
    let grad = grad.contiguous()?;
    let da = grad.matmul(&b.t()?)?;
    let db = a.t()?.matmul(&grad)?;
    Ok(vec![Some(da), Some(db)])
}
