//! Backward of elementwise ops: binary with broadcasting, the scalar forms, and select.

use super::shape::sum_to_shape;
use super::InputGrads;
use kiln_tensor::{Backend, BinaryOp, Result, Tensor};

/// d(a op b)/da and d(a op b)/db, as tensors of the output's shape.
fn partials<B: Backend>(
    op: BinaryOp,
    a: &Tensor<B>,
    b: &Tensor<B>,
    out: &Tensor<B>,
    grad: &Tensor<B>,
    needs: &[bool],
) -> Result<[Option<Tensor<B>>; 2]> {
    let need = |i: usize, f: &dyn Fn() -> Result<Tensor<B>>| -> Result<Option<Tensor<B>>> {
        if needs[i] {
            f().map(Some)
        } else {
            Ok(None)
        }
    };
    Ok(match op {
        BinaryOp::Add => [Some(grad.clone()), Some(grad.clone())],
        BinaryOp::Sub => [Some(grad.clone()), Some((-grad)?)],
        BinaryOp::Mul => [need(0, &|| grad * b)?, need(1, &|| grad * a)?],
        // d(a/b)/db = −a/b² = −out/b.
        BinaryOp::Div => [
            need(0, &|| grad / b)?,
            need(1, &|| {
                let ratio: Tensor<B> = ((grad * out)? / b)?;
                -ratio
            })?,
        ],
        // The gradient goes to the larger (smaller) input; ties go to a, as in the forward pick.
        BinaryOp::Max => {
            let a_wins = a.ge(b)?;
            [Some((grad * &a_wins)?), Some((grad * (1.0 - &a_wins)?)?)]
        }
        BinaryOp::Min => {
            let a_wins = a.le(b)?;
            [Some((grad * &a_wins)?), Some((grad * (1.0 - &a_wins)?)?)]
        }
        // d(a^b)/da = b·a^(b−1) = b·out/a; d(a^b)/db = out·ln a.
        BinaryOp::Pow => [
            Some(((grad * b)? * (out / a)?)?),
            Some(((grad * out)? * a.log()?)?),
        ],
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            [None, None]
        }
    })
}

pub(crate) fn binary<B: Backend>(
    op: BinaryOp,
    a: &Tensor<B>,
    b: &Tensor<B>,
    out: &Tensor<B>,
    grad: &Tensor<B>,
    needs: &[bool],
) -> Result<InputGrads<B>> {
    let [ga, gb] = partials(op, a, b, out, grad, needs)?;
    Ok(vec![
        ga.map(|g| sum_to_shape(&g, a.shape())).transpose()?,
        gb.map(|g| sum_to_shape(&g, b.shape())).transpose()?,
    ])
}

pub(crate) fn binary_scalar<B: Backend>(
    op: BinaryOp,
    scalar: f64,
    scalar_on_left: bool,
    x: &Tensor<B>,
    out: &Tensor<B>,
    grad: &Tensor<B>,
) -> Result<InputGrads<B>> {
    let s = scalar as f32;
    let g = match (op, scalar_on_left) {
        (BinaryOp::Add, _) => Some(grad.clone()),
        (BinaryOp::Sub, false) => Some(grad.clone()),
        (BinaryOp::Sub, true) => Some((-grad)?),
        (BinaryOp::Mul, _) => Some((grad * s)?),
        (BinaryOp::Div, false) => Some((grad / s)?),
        // d(s/x)/dx = −s/x² = −out/x.
        (BinaryOp::Div, true) => Some((-((grad * out)? / x)?)?),
        (BinaryOp::Pow, false) => Some(((grad * s)? * x.powf(scalar - 1.0)?)?),
        // d(s^x)/dx = s^x · ln s.
        (BinaryOp::Pow, true) => Some(((grad * out)? * (s.ln()))?),
        (BinaryOp::Max, _) => Some((grad * &x.binary_scalar(BinaryOp::Ge, scalar)?)?),
        (BinaryOp::Min, _) => Some((grad * &x.binary_scalar(BinaryOp::Le, scalar)?)?),
        (
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge,
            _,
        ) => None,
    };
    Ok(vec![g])
}

/// select: the gradient goes to whichever branch was taken; the condition gets none.
pub(crate) fn select<B: Backend>(
    cond: &Tensor<B>,
    on_true: &Tensor<B>,
    on_false: &Tensor<B>,
    grad: &Tensor<B>,
) -> Result<InputGrads<B>> {
    let taken = cond.binary_scalar(BinaryOp::Ne, 0.0)?;
    let to_true = (grad * &taken)?;
    let to_false = (grad - &to_true)?;
    Ok(vec![
        None,
        Some(sum_to_shape(&to_true, on_true.shape())?),
        Some(sum_to_shape(&to_false, on_false.shape())?),
    ])
}
