//! Batch normalisation on the CPU (batch_norm.wgsl's family): x viewed as [outer, channels,
//! inner], per-channel statistics and backward sums accumulated in f64, and the one-pass
//! forward and input-gradient maps. Reductions run in parallel over channels, the maps over
//! the outer index (each task a [channels, inner] block).

use crate::memory::written;
use crate::real::Real;
use crate::PARALLEL_THRESHOLD;
use kiln_tensor::{BatchNormShape, HostData, KilnError, Result};
use rayon::prelude::*;

/// Σ f(element) of channel c, in f64: `f` gets the flat index and the element's run offset.
fn channel_sum(s: BatchNormShape, c: usize, mut f: impl FnMut(usize) -> f64) -> f64 {
    let mut total = 0.0;
    for o in 0..s.outer {
        let start = (o * s.channels + c) * s.inner;
        for i in start..start + s.inner {
            total += f(i);
        }
    }
    total
}

/// `per_channel(c)` for every channel, in parallel when x is large.
fn channels<R: Send>(s: BatchNormShape, per_channel: impl Fn(usize) -> R + Sync) -> Vec<R> {
    if s.numel() >= PARALLEL_THRESHOLD {
        (0..s.channels).into_par_iter().map(&per_channel).collect()
    } else {
        (0..s.channels).map(per_channel).collect()
    }
}

/// out[i] = f(x[i], dy[i], coef(channel of i)) over every element, in parallel blocks of one
/// outer index; within a block the loops run along a channel's run of `inner` elements
/// (images, the channel's coefficients held in registers) or along the row of channels
/// (features, inner 1), so both vectorise.
fn map_channels<T: Real>(
    s: BatchNormShape,
    (x, dy): (&[T], &[T]),
    coef: impl Fn(usize) -> [T; 4] + Sync,
    f: impl Fn(T, T, [T; 4]) -> T + Sync,
) -> Vec<T> {
    let (block, inner) = ((s.channels * s.inner).max(1), s.inner.max(1));
    // SAFETY: numel is a whole number of blocks (outer × channels × inner), each block's x
    // and dy are slices of exactly its length and each channel's run of exactly `inner`
    // (the slicing panics otherwise), so the zips write every element.
    unsafe {
        written(s.numel(), block, |o, chunk| {
            let (x, dy) = (&x[o * block..][..block], &dy[o * block..][..block]);
            if inner == 1 {
                for (c, ((y, &x), &dy)) in chunk.iter_mut().zip(x).zip(dy).enumerate() {
                    y.write(f(x, dy, coef(c)));
                }
                return;
            }
            for (c, run) in chunk.chunks_mut(inner).enumerate() {
                let (at, k) = (c * inner..(c + 1) * inner, coef(c));
                for ((y, &x), &dy) in run.iter_mut().zip(&x[at.clone()]).zip(&dy[at]) {
                    y.write(f(x, dy, k));
                }
            }
        })
    }
}

/// Per-channel mean and biased variance, two-pass in f64.
fn stats_typed<T: Real>(x: &[T], s: BatchNormShape) -> (Vec<T>, Vec<T>) {
    let n = s.count().max(1) as f64;
    let pairs = channels(s, |c| {
        let mean = channel_sum(s, c, |i| x[i].to_f64()) / n;
        let var = channel_sum(s, c, |i| (x[i].to_f64() - mean).powi(2)) / n;
        (T::from_f64(mean), T::from_f64(var))
    });
    pairs.into_iter().unzip()
}

fn inv_std<T: Real>(var: &[T], eps: f64) -> Vec<f64> {
    var.iter()
        .map(|v| 1.0 / (v.to_f64() + eps).sqrt())
        .collect()
}

fn forward_typed<T: Real>(
    x: &[T],
    (mean, var, gamma, beta): (&[T], &[T], &[T], &[T]),
    s: BatchNormShape,
    eps: f64,
) -> Vec<T> {
    let scale: Vec<T> = inv_std(var, eps)
        .iter()
        .zip(gamma)
        .map(|(&k, &g)| T::from_f64(k) * g)
        .collect();
    map_channels(
        s,
        (x, x),
        |c| [mean[c], scale[c], beta[c], T::ZERO],
        |x, _, [m, k, b, _]| (x - m) * k + b,
    )
}

fn backward_reduce_typed<T: Real>(
    x: &[T],
    dy: &[T],
    (mean, var): (&[T], &[T]),
    s: BatchNormShape,
    eps: f64,
) -> (Vec<T>, Vec<T>) {
    let inv_std = inv_std(var, eps);
    let pairs = channels(s, |c| {
        let m = mean[c].to_f64();
        let sum_dy = channel_sum(s, c, |i| dy[i].to_f64());
        let sum_dy_xhat = channel_sum(s, c, |i| dy[i].to_f64() * (x[i].to_f64() - m));
        (T::from_f64(sum_dy), T::from_f64(sum_dy_xhat * inv_std[c]))
    });
    pairs.into_iter().unzip()
}

/// dx = γ·inv_std·(dy − Σdy/n − x̂·Σ(dy·x̂)/n) = k·(dy − a − (x − mean)·b) per channel, with
/// k = γ·inv_std, a = Σdy/n and b = inv_std·Σ(dy·x̂)/n.
fn backward_input_typed<T: Real>(
    x: &[T],
    dy: &[T],
    (mean, var, gamma): (&[T], &[T], &[T]),
    (sum_dy, sum_dy_xhat): (&[T], &[T]),
    s: BatchNormShape,
    eps: f64,
) -> Vec<T> {
    let n = s.count().max(1) as f64;
    let inv_std = inv_std(var, eps);
    let per_channel = |f: &dyn Fn(usize) -> f64| -> Vec<T> {
        (0..s.channels).map(|c| T::from_f64(f(c))).collect()
    };
    let k = per_channel(&|c| gamma[c].to_f64() * inv_std[c]);
    let a = per_channel(&|c| sum_dy[c].to_f64() / n);
    let b = per_channel(&|c| inv_std[c] * sum_dy_xhat[c].to_f64() / n);
    map_channels(
        s,
        (x, dy),
        |c| [k[c], a[c], b[c], mean[c]],
        |x, dy, [k, a, b, m]| k * (dy - a - (x - m) * b),
    )
}

fn mismatch(op: &'static str, a: &HostData, b: &HostData) -> KilnError {
    KilnError::DTypeMismatch {
        op,
        lhs: a.dtype(),
        rhs: b.dtype(),
    }
}

pub fn batch_norm_stats(x: &HostData, shape: BatchNormShape) -> Result<(HostData, HostData)> {
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

pub fn batch_norm_forward(
    x: &HostData,
    [mean, var, gamma, beta]: [&HostData; 4],
    shape: BatchNormShape,
    eps: f32,
) -> Result<HostData> {
    let eps = eps as f64;
    Ok(match (x, mean, var, gamma, beta) {
        (
            HostData::F32(x),
            HostData::F32(m),
            HostData::F32(v),
            HostData::F32(g),
            HostData::F32(b),
        ) => HostData::F32(forward_typed(x, (m, v, g, b), shape, eps)),
        (
            HostData::F64(x),
            HostData::F64(m),
            HostData::F64(v),
            HostData::F64(g),
            HostData::F64(b),
        ) => HostData::F64(forward_typed(x, (m, v, g, b), shape, eps)),
        _ => return Err(mismatch("batch_norm_forward", x, gamma)),
    })
}

pub fn batch_norm_backward_reduce(
    x: &HostData,
    dy: &HostData,
    [mean, var]: [&HostData; 2],
    shape: BatchNormShape,
    eps: f32,
) -> Result<(HostData, HostData)> {
    let eps = eps as f64;
    Ok(match (x, dy, mean, var) {
        (HostData::F32(x), HostData::F32(dy), HostData::F32(m), HostData::F32(v)) => {
            let (a, b) = backward_reduce_typed(x, dy, (m, v), shape, eps);
            (HostData::F32(a), HostData::F32(b))
        }
        (HostData::F64(x), HostData::F64(dy), HostData::F64(m), HostData::F64(v)) => {
            let (a, b) = backward_reduce_typed(x, dy, (m, v), shape, eps);
            (HostData::F64(a), HostData::F64(b))
        }
        _ => return Err(mismatch("batch_norm_backward_reduce", x, dy)),
    })
}

pub fn batch_norm_backward_input(
    x: &HostData,
    dy: &HostData,
    [mean, var, gamma]: [&HostData; 3],
    [sum_dy, sum_dy_xhat]: [&HostData; 2],
    shape: BatchNormShape,
    eps: f32,
) -> Result<HostData> {
    use HostData::{F32, F64};
    let eps = eps as f64;
    Ok(match (x, dy, mean, var, gamma, sum_dy, sum_dy_xhat) {
        (F32(x), F32(dy), F32(m), F32(v), F32(g), F32(a), F32(b)) => {
            F32(backward_input_typed(x, dy, (m, v, g), (a, b), shape, eps))
        }
        (F64(x), F64(dy), F64(m), F64(v), F64(g), F64(a), F64(b)) => {
            F64(backward_input_typed(x, dy, (m, v, g), (a, b), shape, eps))
        }
        _ => return Err(mismatch("batch_norm_backward_input", x, dy)),
    })
}
