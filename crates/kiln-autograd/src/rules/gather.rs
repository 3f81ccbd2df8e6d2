//! Backward of the gather family: row gathers scatter their gradient back to the rows.

use super::InputGrads;
use kiln_tensor::{Backend, DType, Result, Tensor};

/// Gather's backward scatters the rows back, adding rows picked more than once:
/// d_src = onehot(indices)ᵀ · grad, with the one-hot [count, rows] built on the device from the
/// indices and a row-number vector. Costs count · rows · cols multiply-adds: fine for
/// minibatches of parameters, a dedicated scatter-add kernel is the upgrade for embeddings.
pub(crate) fn gather_rows<B: Backend>(
    src: &Tensor<B>,
    indices: &Tensor<B>,
    grad: &Tensor<B>,
) -> Result<InputGrads<B>> {
    let rows = src.dims()[0];
    let row_numbers: Vec<f32> = (0..rows).map(|r| r as f32).collect();
    let row_numbers = Tensor::from_vec(row_numbers, [1, rows], src.backend())?.cast(src.dtype())?;
    let picked = indices
        .cast(DType::F32)?
        .cast(src.dtype())?
        .reshape([indices.numel(), 1])?;
    let onehot = picked.eq(&row_numbers)?;
    Ok(vec![Some(onehot.t()?.matmul(&grad.contiguous()?)?)])
}
