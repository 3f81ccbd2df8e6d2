//! Softmax, log-softmax and softmax cross-entropy on the CPU (softmax_xent.wgsl's family).
//! Row reductions accumulate in f64.

use crate::real::Real;
use crate::PARALLEL_THRESHOLD;
use kiln_tensor::{HostData, KilnError, Result, Rows};
use rayon::prelude::*;

/// Applies `f(row index, row)` to each output row, in parallel when large.
fn for_each_row<T: Send>(out: &mut [T], cols: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if cols == 0 {
        return;
    }
    if out.len() >= PARALLEL_THRESHOLD {
        out.par_chunks_mut(cols)
            .enumerate()
            .for_each(|(r, row)| f(r, row));
    } else {
        out.chunks_mut(cols)
            .enumerate()
            .for_each(|(r, row)| f(r, row));
    }
}

/// (max, Σ exp(x − max)) of a row, the sum in f64.
fn row_stats<T: Real>(row: &[T]) -> (f64, f64) {
    let max = row
        .iter()
        .fold(f64::NEG_INFINITY, |m, &x| m.max(x.to_f64()));
    let sum = row.iter().map(|&x| (x.to_f64() - max).exp()).sum();
    (max, sum)
}

fn softmax_typed<T: Real>(x: &[T], shape: Rows, log: bool) -> Vec<T> {
    let mut out = vec![T::ZERO; x.len()];
    for_each_row(&mut out, shape.cols, |r, row| {
        let input = &x[r * shape.cols..(r + 1) * shape.cols];
        let (max, sum) = row_stats(input);
        for (o, &v) in row.iter_mut().zip(input) {
            let shifted = v.to_f64() - max;
            *o = T::from_f64(if log {
                shifted - sum.ln()
            } else {
                shifted.exp() / sum
            });
        }
    });
    out
}

pub fn softmax(x: &HostData, shape: Rows, log: bool) -> Result<HostData> {
    Ok(crate::float_dispatch!(x, "softmax", |v| softmax_typed(
        v, shape, log
    )))
}

/// The target probability row r gives class j: one-hot for labels, else the soft row.
enum TargetRows<'a, T> {
    Labels(&'a [u32]),
    Soft(&'a [T]),
}

fn check_labels(labels: &[u32], cols: usize) -> Result<()> {
    match labels.iter().enumerate().find(|(_, &l)| l as usize >= cols) {
        Some((row, &l)) => Err(KilnError::InvalidArgument {
            op: "softmax_xent",
            message: format!("label {l} in row {row} is out of range for {cols} classes"),
        }),
        None => Ok(()),
    }
}

fn xent_rows<T: Real>(x: &[T], shape: Rows, t: &TargetRows<'_, T>) -> Vec<T> {
    let mut out = vec![T::ZERO; shape.rows];
    let rows: Vec<f64> = (0..shape.rows)
        .map(|r| {
            let row = &x[r * shape.cols..(r + 1) * shape.cols];
            let (max, sum) = row_stats(row);
            let lse = sum.ln() + max;
            match t {
                TargetRows::Labels(l) => lse - row[l[r] as usize].to_f64(),
                TargetRows::Soft(s) => row
                    .iter()
                    .zip(&s[r * shape.cols..])
                    .map(|(&v, &p)| p.to_f64() * (lse - v.to_f64()))
                    .sum(),
            }
        })
        .collect();
    for (o, v) in out.iter_mut().zip(rows) {
        *o = T::from_f64(v);
    }
    out
}

fn xent_backward_rows<T: Real>(x: &[T], shape: Rows, t: &TargetRows<'_, T>, g: &[T]) -> Vec<T> {
    let mut out = vec![T::ZERO; x.len()];
    for_each_row(&mut out, shape.cols, |r, row| {
        let input = &x[r * shape.cols..(r + 1) * shape.cols];
        let (max, sum) = row_stats(input);
        let t_sum = match t {
            TargetRows::Labels(_) => 1.0,
            TargetRows::Soft(s) => s[r * shape.cols..(r + 1) * shape.cols]
                .iter()
                .map(|v| v.to_f64())
                .sum(),
        };
        for (j, o) in row.iter_mut().enumerate() {
            let target = match t {
                TargetRows::Labels(l) => (l[r] as usize == j) as u8 as f64,
                TargetRows::Soft(s) => s[r * shape.cols + j].to_f64(),
            };
            let p = (input[j].to_f64() - max).exp() / sum;
            *o = T::from_f64((p * t_sum - target) * g[r].to_f64());
        }
    });
    out
}

fn with_targets<R>(
    logits: &HostData,
    shape: Rows,
    targets: &HostData,
    soft: bool,
    f32_fn: impl FnOnce(&[f32], TargetRows<'_, f32>) -> R,
    f64_fn: impl FnOnce(&[f64], TargetRows<'_, f64>) -> R,
) -> Result<R> {
    if !soft {
        let HostData::U32(labels) = targets else {
            return Err(KilnError::InvalidArgument {
                op: "softmax_xent",
                message: format!("labels must be u32, got {}", targets.dtype()),
            });
        };
        check_labels(labels, shape.cols)?;
        return match logits {
            HostData::F32(x) => Ok(f32_fn(x, TargetRows::Labels(labels))),
            HostData::F64(x) => Ok(f64_fn(x, TargetRows::Labels(labels))),
            other => Err(crate::unsupported("softmax_xent", other.dtype())),
        };
    }
    match (logits, targets) {
        (HostData::F32(x), HostData::F32(t)) => Ok(f32_fn(x, TargetRows::Soft(t))),
        (HostData::F64(x), HostData::F64(t)) => Ok(f64_fn(x, TargetRows::Soft(t))),
        _ => Err(KilnError::DTypeMismatch {
            op: "softmax_xent",
            lhs: logits.dtype(),
            rhs: targets.dtype(),
        }),
    }
}

pub fn softmax_xent(
    logits: &HostData,
    shape: Rows,
    targets: &HostData,
    soft: bool,
) -> Result<HostData> {
    with_targets(
        logits,
        shape,
        targets,
        soft,
        |x, t| HostData::F32(xent_rows(x, shape, &t)),
        |x, t| HostData::F64(xent_rows(x, shape, &t)),
    )
}

pub fn softmax_xent_backward(
    logits: &HostData,
    shape: Rows,
    targets: &HostData,
    soft: bool,
    grad_rows: &HostData,
) -> Result<HostData> {
    match (logits, grad_rows) {
        (HostData::F32(_), HostData::F32(_)) | (HostData::F64(_), HostData::F64(_)) => {}
        _ => {
            return Err(KilnError::DTypeMismatch {
                op: "softmax_xent_backward",
                lhs: logits.dtype(),
                rhs: grad_rows.dtype(),
            })
        }
    }
    with_targets(
        logits,
        shape,
        targets,
        soft,
        |x, t| match grad_rows {
            HostData::F32(g) => HostData::F32(xent_backward_rows(x, shape, &t, g)),
            _ => unreachable!("checked above"),
        },
        |x, t| match grad_rows {
            HostData::F64(g) => HostData::F64(xent_backward_rows(x, shape, &t, g)),
            _ => unreachable!("checked above"),
        },
    )
}
