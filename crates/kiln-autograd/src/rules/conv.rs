//! Backward of the conv family: dx is the transposed convolution of dz with w, dw the
//! correlation of x with dz, dbias the sum of dz over the batch and the pixels; dz is the
//! gradient through the fused activation (read from the output where its derivative allows,
//! else from the recomputed pre-activation).

use super::matmul::derivative_readable_from_output;
use super::InputGrads;
use kiln_tensor::{Backend, Conv2dShape, Result, Tensor, UnaryOp};

pub(crate) fn conv2d<B: Backend>(
    shape: &Conv2dShape,
    activation: Option<UnaryOp>,
    inputs: &[&Tensor<B>],
    output: &Tensor<B>,
    grad: &Tensor<B>,
    needs: &[bool],
) -> Result<InputGrads<B>> {
    let (x, w, bias) = (inputs[0], inputs[1], inputs.get(2).copied());
    let dz = match activation {
        Some(op) if derivative_readable_from_output(op) => {
            output.unary_backward(op, &grad.contiguous()?)?
        }
        Some(op) => x
            .conv2d(w, bias, None, shape.options())?
            .unary_backward(op, &grad.contiguous()?)?,
        None => grad.contiguous()?,
    };
    let mut grads = vec![
        needs[0]
            .then(|| dz.conv2d_backward_input(w, shape))
            .transpose()?,
        needs[1]
            .then(|| x.conv2d_backward_weight(&dz, shape))
            .transpose()?,
    ];
    if bias.is_some() {
        let per_channel = || -> Result<Tensor<B>> {
            let (n, o) = (shape.batch, shape.out_channels);
            dz.reshape([n, o, shape.out_height() * shape.out_width()])?
                .sum(2)?
                .sum(0)
        };
        grads.push(needs[2].then(per_channel).transpose()?);
    }
    Ok(grads)
}
