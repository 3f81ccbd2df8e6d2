//! Backward of matmul: dA = dC·Bᵀ and dB = Aᵀ·dC, read through transpose flags for 2-D operands
//! (the transposed views are never copied), and of the fused bias + activation layer.

use super::shape::sum_to_shape;
use super::InputGrads;
use kiln_tensor::{Backend, Result, Tensor, UnaryOp};

pub(crate) fn matmul<B: Backend>(
    a: &Tensor<B>,
    b: &Tensor<B>,
    grad: &Tensor<B>,
    needs: &[bool],
) -> Result<InputGrads<B>> {
    let grad = grad.contiguous()?;
    let da = if needs[0] {
        Some(grad.matmul(&b.t()?)?)
    } else {
        None
    };
    // A matrix broadcast over a batch gets the batch's gradients summed.
    let db = if needs[1] {
        Some(sum_to_shape(&a.t()?.matmul(&grad)?, b.shape())?)
    } else {
        None
    };
    Ok(vec![da, db])
}

/// The fused layer: the activation's derivative needs the pre-activation z = a·b + bias, which
/// the fused forward never stored, so backward recomputes it with the same kernel (one extra
/// product) and then applies the matmul and bias rules.
/// Activations whose derivative at z equals the same derivative evaluated at act(z): it
/// depends only on which side of the kinks z lies, and act preserves that (ReLU, leaky ReLU
/// with a positive slope, hard tanh).
pub(crate) fn derivative_readable_from_output(op: UnaryOp) -> bool {
    match op {
        UnaryOp::Relu | UnaryOp::HardTanh => true,
        UnaryOp::LeakyRelu { alpha } => alpha > 0.0,
        _ => false,
    }
}

pub(crate) fn matmul_bias_act<B: Backend>(
    activation: Option<UnaryOp>,
    inputs: &[&Tensor<B>],
    output: &Tensor<B>,
    grad: &Tensor<B>,
    needs: &[bool],
) -> Result<InputGrads<B>> {
    let (a, b, bias) = (inputs[0], inputs[1], inputs[2]);
    let dz = match activation {
        // No second matmul: the saved output tells the derivative.
        Some(op) if derivative_readable_from_output(op) => {
            output.unary_backward(op, &grad.contiguous()?)?
        }
        // Other activations recompute the pre-activation z = a·b + bias.
        Some(op) => a
            .matmul_bias_act_to(b, Some(bias), None, output.dtype())?
            .unary_backward(op, &grad.contiguous()?)?,
        None => grad.contiguous()?,
    };
    // Mixed precision: dz is f32 like the result; the operand gradients are products of f16
    // tensors (dz rounded once, which loss scaling keeps clear of underflow).
    let mut grads = matmul(a, b, &dz.cast(a.dtype())?, needs)?;
    grads.push(if needs[2] { Some(dz.sum(0)?) } else { None });
    Ok(grads)
}
