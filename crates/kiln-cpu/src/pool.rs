//! 2-D max and average pooling on the CPU (pool.wgsl's family), f32 and f64. The backward
//! passes are gathers, as on the GPU: each input pixel sums the gradient of the windows that
//! cover it (in window order), so both backends add the same terms in the same order.

use crate::unsupported;
use kiln_tensor::{HostData, KilnError, Pool2dShape, Result};
use rayon::prelude::*;
use std::ops::Range;

use crate::real::Real;

/// The input rows (or columns) window `o` covers along a side of `len`, padding left out.
fn span(s: &Pool2dShape, o: usize, len: usize) -> Range<usize> {
    let start = (o * s.stride).saturating_sub(s.padding);
    let end = (o * s.stride + s.kernel).saturating_sub(s.padding).min(len);
    start..end.max(start)
}

/// The output rows (or columns) whose windows cover input row `i` of a side of `len` outputs.
fn covering(s: &Pool2dShape, i: usize, len: usize) -> Range<usize> {
    let first = (i + s.padding + 1)
        .saturating_sub(s.kernel)
        .div_ceil(s.stride);
    let last = ((i + s.padding) / s.stride + 1).min(len);
    first..last.max(first)
}

/// `f(o)` for every o < n: the spans (or coverings) of a side, computed once per call.
fn table(n: usize, f: impl Fn(usize) -> Range<usize>) -> Vec<Range<usize>> {
    (0..n).map(f).collect()
}

fn max_typed<T: Real>(s: &Pool2dShape, x: &[T]) -> (Vec<T>, Vec<u32>) {
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let plane_in = s.height * s.width;
    let plane_out = oh_n * ow_n;
    let rows = table(oh_n, |o| span(s, o, s.height));
    let cols = table(ow_n, |o| span(s, o, s.width));
    let mut y = vec![T::ZERO; s.batch * s.channels * plane_out];
    let mut idx = vec![0u32; y.len()];
    y.par_chunks_mut(plane_out.max(1))
        .zip(idx.par_chunks_mut(plane_out.max(1)))
        .enumerate()
        .for_each(|(p, (y, idx))| {
            let plane = &x[p * plane_in..(p + 1) * plane_in];
            if (s.kernel, s.stride, s.padding) == (2, 2, 0) {
                return max_2x2(plane, s.width, (y, idx));
            }
            for (oh, r) in rows.iter().enumerate() {
                for (ow, c) in cols.iter().enumerate() {
                    // The first maximum in scan order (ties go to the earliest tap).
                    let mut at = r.start * s.width + c.start;
                    let mut best = plane[at];
                    for ih in r.clone() {
                        let line = &plane[ih * s.width + c.start..ih * s.width + c.end];
                        for (j, &v) in line.iter().enumerate() {
                            if v > best {
                                (best, at) = (v, ih * s.width + c.start + j);
                            }
                        }
                    }
                    y[oh * ow_n + ow] = best;
                    idx[oh * ow_n + ow] = at as u32;
                }
            }
        });
    (y, idx)
}

/// The common 2×2, stride 2, unpadded window of one plane, straight-line: the same first
/// maximum in scan order as the general loop.
fn max_2x2<T: Real>(plane: &[T], width: usize, (y, idx): (&mut [T], &mut [u32])) {
    let ow_n = width / 2;
    for (oh, (y, idx)) in y
        .chunks_mut(ow_n.max(1))
        .zip(idx.chunks_mut(ow_n.max(1)))
        .enumerate()
    {
        let top = 2 * oh * width;
        for (ow, (y, idx)) in y.iter_mut().zip(idx.iter_mut()).enumerate() {
            let i = top + 2 * ow;
            let (mut best, mut at) = (plane[i], i);
            // Selects rather than branches: the comparisons follow the data.
            for j in [i + 1, i + width, i + width + 1] {
                let take = plane[j] > best;
                best = if take { plane[j] } else { best };
                at = if take { j } else { at };
            }
            (*y, *idx) = (best, at as u32);
        }
    }
}

fn max_backward_typed<T: Real>(s: &Pool2dShape, dy: &[T], idx: &[u32]) -> Vec<T> {
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let plane_in = s.height * s.width;
    let plane_out = oh_n * ow_n;
    let mut dx = vec![T::ZERO; s.batch * s.channels * plane_in];
    let ih_cover = table(s.height, |i| covering(s, i, oh_n));
    let iw_cover = table(s.width, |i| covering(s, i, ow_n));
    dx.par_chunks_mut(plane_in.max(1))
        .enumerate()
        .for_each(|(p, dx)| {
            let (dy, idx) = (
                &dy[p * plane_out..(p + 1) * plane_out],
                &idx[p * plane_out..(p + 1) * plane_out],
            );
            if s.stride >= s.kernel {
                // Windows do not overlap: each pixel gets at most one term, so scattering adds
                // the same terms as the gather below.
                for (&g, &i) in dy.iter().zip(idx) {
                    dx[i as usize] = dx[i as usize] + g;
                }
                return;
            }
            for (ih, rows) in ih_cover.iter().enumerate() {
                for (iw, cols) in iw_cover.iter().enumerate() {
                    let me = (ih * s.width + iw) as u32;
                    let mut g = T::ZERO;
                    for oh in rows.clone() {
                        for ow in cols.clone() {
                            if idx[oh * ow_n + ow] == me {
                                g = g + dy[oh * ow_n + ow];
                            }
                        }
                    }
                    dx[ih * s.width + iw] = g;
                }
            }
        });
    dx
}

fn avg_typed<T: Real>(s: &Pool2dShape, x: &[T]) -> Vec<T> {
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let plane_in = s.height * s.width;
    let plane_out = oh_n * ow_n;
    let area = T::from_f64((s.kernel * s.kernel) as f64);
    let rows = table(oh_n, |o| span(s, o, s.height));
    let cols = table(ow_n, |o| span(s, o, s.width));
    let mut y = vec![T::ZERO; s.batch * s.channels * plane_out];
    y.par_chunks_mut(plane_out.max(1))
        .enumerate()
        .for_each(|(p, y)| {
            let plane = &x[p * plane_in..(p + 1) * plane_in];
            for (oh, r) in rows.iter().enumerate() {
                for (ow, c) in cols.iter().enumerate() {
                    let mut sum = T::ZERO;
                    for ih in r.clone() {
                        for &v in &plane[ih * s.width + c.start..ih * s.width + c.end] {
                            sum = sum + v;
                        }
                    }
                    // Padding counts as zeros (PyTorch's count_include_pad).
                    y[oh * ow_n + ow] = sum / area;
                }
            }
        });
    y
}

fn avg_backward_typed<T: Real>(s: &Pool2dShape, dy: &[T]) -> Vec<T> {
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let plane_in = s.height * s.width;
    let plane_out = oh_n * ow_n;
    let area = T::from_f64((s.kernel * s.kernel) as f64);
    let ih_cover = table(s.height, |i| covering(s, i, oh_n));
    let iw_cover = table(s.width, |i| covering(s, i, ow_n));
    let mut dx = vec![T::ZERO; s.batch * s.channels * plane_in];
    dx.par_chunks_mut(plane_in.max(1))
        .enumerate()
        .for_each(|(p, dx)| {
            let dy = &dy[p * plane_out..(p + 1) * plane_out];
            for (ih, rows) in ih_cover.iter().enumerate() {
                for (iw, cols) in iw_cover.iter().enumerate() {
                    let mut g = T::ZERO;
                    for oh in rows.clone() {
                        for &d in &dy[oh * ow_n + cols.start..oh * ow_n + cols.end] {
                            g = g + d;
                        }
                    }
                    dx[ih * s.width + iw] = g / area;
                }
            }
        });
    dx
}

fn check(op: &'static str, name: &str, len: usize, need: usize) -> Result<()> {
    if len != need {
        return Err(KilnError::invalid(
            op,
            format!("{name} holds {len} elements, the shape needs {need}"),
        ));
    }
    Ok(())
}

/// Max pooling of x [N, C, H, W]: (y [N, C, OH, OW], the arg-max of each window as a u32
/// index into its input plane).
pub fn max_pool2d(x: &HostData, s: &Pool2dShape) -> Result<(HostData, HostData)> {
    check("max_pool2d", "x", x.len(), s.input_len())?;
    Ok(match x {
        HostData::F32(x) => {
            let (y, i) = max_typed(s, x);
            (HostData::F32(y), HostData::U32(i))
        }
        HostData::F64(x) => {
            let (y, i) = max_typed(s, x);
            (HostData::F64(y), HostData::U32(i))
        }
        other => return Err(unsupported("max_pool2d", other.dtype())),
    })
}

/// dx of max pooling: each window's gradient goes to its arg-max.
pub fn max_pool2d_backward(dy: &HostData, indices: &HostData, s: &Pool2dShape) -> Result<HostData> {
    let op = "max_pool2d_backward";
    check(op, "dy", dy.len(), s.output_len())?;
    check(op, "indices", indices.len(), s.output_len())?;
    let HostData::U32(idx) = indices else {
        return Err(unsupported(op, indices.dtype()));
    };
    Ok(match dy {
        HostData::F32(dy) => HostData::F32(max_backward_typed(s, dy, idx)),
        HostData::F64(dy) => HostData::F64(max_backward_typed(s, dy, idx)),
        other => return Err(unsupported(op, other.dtype())),
    })
}

/// Average pooling of x [N, C, H, W] (zero padding counted in the average).
pub fn avg_pool2d(x: &HostData, s: &Pool2dShape) -> Result<HostData> {
    check("avg_pool2d", "x", x.len(), s.input_len())?;
    Ok(match x {
        HostData::F32(x) => HostData::F32(avg_typed(s, x)),
        HostData::F64(x) => HostData::F64(avg_typed(s, x)),
        other => return Err(unsupported("avg_pool2d", other.dtype())),
    })
}

/// dx of average pooling: each window's gradient spread evenly over its k² taps.
pub fn avg_pool2d_backward(dy: &HostData, s: &Pool2dShape) -> Result<HostData> {
    check("avg_pool2d_backward", "dy", dy.len(), s.output_len())?;
    Ok(match dy {
        HostData::F32(dy) => HostData::F32(avg_backward_typed(s, dy)),
        HostData::F64(dy) => HostData::F64(avg_backward_typed(s, dy)),
        other => return Err(unsupported("avg_pool2d_backward", other.dtype())),
    })
}
