//! Regularisation: penalties added to the loss (L1, L2, elastic net), and updates applied to
//! gradients or weights between backward and the optimiser step (clipping by global norm or by
//! value, max-norm per unit). None of them reads anything back: the global norm stays on the
//! device and scales the gradients there.

use crate::error::check_range;
use crate::module::Parameter;
use kiln_autograd::Var;
use kiln_tensor::{Backend, BinaryOp, Result, Tensor, UnaryOp};

fn total<B: Backend>(
    params: &[Parameter<B>],
    f: impl Fn(&Var<B>) -> Result<Var<B>>,
) -> Result<Option<Var<B>>> {
    let mut sum: Option<Var<B>> = None;
    for p in params {
        let term = f(&p.var())?;
        sum = Some(match sum {
            Some(s) => s.add(&term)?,
            None => term,
        });
    }
    Ok(sum)
}

/// λ/2 · Σ w² over the parameters (its gradient is λ·w, the classic weight decay).
pub fn l2_penalty<B: Backend>(params: &[Parameter<B>], lambda: f32) -> Result<Option<Var<B>>> {
    check_range(
        "l2_penalty",
        "lambda",
        lambda as f64,
        lambda >= 0.0,
        "[0, ∞)",
    )?;
    total(params, |w| {
        w.unary(UnaryOp::Square)?
            .sum_all()?
            .binary_scalar(BinaryOp::Mul, lambda as f64 / 2.0)
    })
}

/// λ · Σ |w|.
pub fn l1_penalty<B: Backend>(params: &[Parameter<B>], lambda: f32) -> Result<Option<Var<B>>> {
    check_range(
        "l1_penalty",
        "lambda",
        lambda as f64,
        lambda >= 0.0,
        "[0, ∞)",
    )?;
    total(params, |w| {
        w.unary(UnaryOp::Abs)?
            .sum_all()?
            .binary_scalar(BinaryOp::Mul, lambda as f64)
    })
}

/// Elastic net: λ1 · Σ |w| + λ2/2 · Σ w².
pub fn elastic_net_penalty<B: Backend>(
    params: &[Parameter<B>],
    l1: f32,
    l2: f32,
) -> Result<Option<Var<B>>> {
    match (l1_penalty(params, l1)?, l2_penalty(params, l2)?) {
        (Some(a), Some(b)) => Ok(Some(a.add(&b)?)),
        (a, b) => Ok(a.or(b)),
    }
}

/// Scales every gradient by min(1, max_norm / ‖g‖) where ‖g‖ is the global L2 norm over all
/// parameters; returns that norm as a one-element tensor (read it at log intervals only).
pub fn clip_grad_norm<B: Backend>(
    params: &[Parameter<B>],
    max_norm: f32,
) -> Result<Option<Tensor<B>>> {
    check_range(
        "clip_grad_norm",
        "max_norm",
        max_norm as f64,
        max_norm > 0.0,
        "(0, ∞)",
    )?;
    let grads: Vec<(Parameter<B>, Tensor<B>)> = params
        .iter()
        .filter_map(|p| p.grad().map(|g| (p.clone(), g)))
        .collect();
    let mut squares: Option<Tensor<B>> = None;
    for (_, g) in &grads {
        let s = g.square()?.sum_all()?;
        squares = Some(match squares {
            Some(total) => (total + &s)?,
            None => s,
        });
    }
    let Some(squares) = squares else {
        return Ok(None);
    };
    let norm = squares.sqrt()?;
    // scale = min(1, max_norm / (norm + 1e-6)), computed on the device.
    let scale = Tensor::scalar_binary(max_norm as f64, BinaryOp::Div, &(&norm + 1e-6)?)?
        .binary_scalar(BinaryOp::Min, 1.0)?;
    for (p, g) in grads {
        p.set_grad((g * &scale)?);
    }
    Ok(Some(norm))
}

/// Clamps every gradient element to [−clip, clip].
pub fn clip_grad_value<B: Backend>(params: &[Parameter<B>], clip: f32) -> Result<()> {
    check_range("clip_grad_value", "clip", clip as f64, clip > 0.0, "(0, ∞)")?;
    for p in params {
        if let Some(g) = p.grad() {
            p.set_grad(
                g.binary_scalar(BinaryOp::Max, -clip as f64)?
                    .binary_scalar(BinaryOp::Min, clip as f64)?,
            );
        }
    }
    Ok(())
}

/// Max-norm constraint: rescales each unit's incoming weights (a column of a [in, out] weight)
/// to L2 norm at most `max_norm`. Apply after the optimiser step.
pub fn apply_max_norm<B: Backend>(weight: &Parameter<B>, max_norm: f32) -> Result<()> {
    check_range(
        "apply_max_norm",
        "max_norm",
        max_norm as f64,
        max_norm > 0.0,
        "(0, ∞)",
    )?;
    let w = weight.value();
    let norms = w.square()?.sum(0)?.sqrt()?;
    let scale = Tensor::scalar_binary(max_norm as f64, BinaryOp::Div, &(norms + 1e-12)?)?
        .binary_scalar(BinaryOp::Min, 1.0)?;
    weight.set((w * &scale)?);
    Ok(())
}
