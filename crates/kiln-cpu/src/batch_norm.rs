//! The batch-norm reductions on the CPU (batch_norm.wgsl's family): per-column statistics
//! and the two sums of the backward pass, in f64.

use crate::real::Real;
use kiln_tensor::{HostData, KilnError, Result, Rows};

/// Per-column mean and biased variance, two-pass in f64.
fn stats_typed<T: Real>(x: &[T], shape: Rows) -> (Vec<T>, Vec<T>) {
    let mut mean = vec![0.0f64; shape.cols];
    for row in x.chunks(shape.cols.max(1)).take(shape.rows) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v.to_f64();
        }
    }
    mean.iter_mut().for_each(|m| *m /= shape.rows as f64);
    let mut var = vec![0.0f64; shape.cols];
    for row in x.chunks(shape.cols.max(1)).take(shape.rows) {
        for ((s, &v), &m) in var.iter_mut().zip(row).zip(&mean) {
            let d = v.to_f64() - m;
            *s += d * d;
        }
    }
    var.iter_mut().for_each(|s| *s /= shape.rows as f64);
    (
        mean.into_iter().map(T::from_f64).collect(),
        var.into_iter().map(T::from_f64).collect(),
    )
}

pub fn batch_norm_stats(x: &HostData, shape: Rows) -> Result<(HostData, HostData)> {
    Ok(match x {
        HostData::F32(v) => {
            let (m, s) = stats_typed(v, shape);
            (HostData::F32(m), HostData::F32(s))
        }
        HostData::F64(v) => {
            let (m, s) = stats_typed(v, shape);
            (HostData::F64(m), HostData::F64(s))
        }
        other => return Err(crate::unsupported("batch_norm_stats", other.dtype())),
    })
}

fn backward_reduce_typed<T: Real>(
    x: &[T],
    dy: &[T],
    mean: &[T],
    var: &[T],
    shape: Rows,
    eps: f64,
) -> (Vec<T>, Vec<T>) {
    let mut sum_dy = vec![0.0f64; shape.cols];
    let mut sum_dy_xhat = vec![0.0f64; shape.cols];
    let inv_std: Vec<f64> = var
        .iter()
        .map(|v| 1.0 / (v.to_f64() + eps).sqrt())
        .collect();
    for r in 0..shape.rows {
        for c in 0..shape.cols {
            let i = r * shape.cols + c;
            let d = dy[i].to_f64();
            sum_dy[c] += d;
            sum_dy_xhat[c] += d * (x[i].to_f64() - mean[c].to_f64()) * inv_std[c];
        }
    }
    (
        sum_dy.into_iter().map(T::from_f64).collect(),
        sum_dy_xhat.into_iter().map(T::from_f64).collect(),
    )
}

pub fn batch_norm_backward_reduce(
    x: &HostData,
    dy: &HostData,
    mean: &HostData,
    var: &HostData,
    shape: Rows,
    eps: f32,
) -> Result<(HostData, HostData)> {
    Ok(match (x, dy, mean, var) {
        (HostData::F32(x), HostData::F32(dy), HostData::F32(m), HostData::F32(v)) => {
            let (a, b) = backward_reduce_typed(x, dy, m, v, shape, eps as f64);
            (HostData::F32(a), HostData::F32(b))
        }
        (HostData::F64(x), HostData::F64(dy), HostData::F64(m), HostData::F64(v)) => {
            let (a, b) = backward_reduce_typed(x, dy, m, v, shape, eps as f64);
            (HostData::F64(a), HostData::F64(b))
        }
        _ => {
            return Err(KilnError::DTypeMismatch {
                op: "batch_norm_backward_reduce",
                lhs: x.dtype(),
                rhs: dy.dtype(),
            })
        }
    })
}
