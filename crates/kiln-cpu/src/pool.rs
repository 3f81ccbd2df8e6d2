//! 2-D max and average pooling on the CPU (pool.wgsl's family), f32 and f64. The backward
//! passes are gathers, as on the GPU: each input pixel sums the gradient of the windows that
//! cover it (in window order), so both backends add the same terms in the same order.

use crate::unsupported;
use kiln_tensor::{HostData, KilnError, Pool2dShape, Result};
use rayon::prelude::*;

use crate::real::Real;

/// The input rows (or columns) window `o` covers along a side of `len`, padding left out.
fn span(s: &Pool2dShape, o: usize, len: usize) -> std::ops::Range<usize> {
    let start = (o * s.stride).saturating_sub(s.padding);
    let end = (o * s.stride + s.kernel).saturating_sub(s.padding).min(len);
    start..end.max(start)
}

/// The output rows (or columns) whose windows cover input row `i` of a side of `len` outputs.
fn covering(s: &Pool2dShape, i: usize, len: usize) -> std::ops::Range<usize> {
    let first = (i + s.padding + 1)
        .saturating_sub(s.kernel)
        .div_ceil(s.stride);
    let last = ((i + s.padding) / s.stride + 1).min(len);
    first..last.max(first)
}

fn max_typed<T: Real>(s: &Pool2dShape, x: &[T]) -> (Vec<T>, Vec<u32>) {
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let plane_in = s.height * s.width;
    let plane_out = oh_n * ow_n;
    let mut y = vec![T::ZERO; s.batch * s.channels * plane_out];
    let mut idx = vec![0u32; y.len()];
    y.par_chunks_mut(plane_out.max(1))
        .zip(idx.par_chunks_mut(plane_out.max(1)))
        .enumerate()
        .for_each(|(p, (y, idx))| {
            let plane = &x[p * plane_in..(p + 1) * plane_in];
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    // The first maximum in scan order (ties go to the earliest tap).
                    let (rows, cols) = (span(s, oh, s.height), span(s, ow, s.width));
                    let mut best = (plane[rows.start * s.width + cols.start], 0);
                    best.1 = rows.start * s.width + cols.start;
                    for ih in rows {
                        for iw in cols.clone() {
                            let v = plane[ih * s.width + iw];
                            if v > best.0 {
                                best = (v, ih * s.width + iw);
                            }
                        }
                    }
                    let (v, i) = best;
                    y[oh * ow_n + ow] = v;
                    idx[oh * ow_n + ow] = i as u32;
                }
            }
        });
    (y, idx)
}

fn max_backward_typed<T: Real>(s: &Pool2dShape, dy: &[T], idx: &[u32]) -> Vec<T> {
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let plane_in = s.height * s.width;
    let plane_out = oh_n * ow_n;
    let mut dx = vec![T::ZERO; s.batch * s.channels * plane_in];
    dx.par_chunks_mut(plane_in.max(1))
        .enumerate()
        .for_each(|(p, dx)| {
            let (dy, idx) = (
                &dy[p * plane_out..(p + 1) * plane_out],
                &idx[p * plane_out..(p + 1) * plane_out],
            );
            for ih in 0..s.height {
                for iw in 0..s.width {
                    let me = (ih * s.width + iw) as u32;
                    let mut g = T::ZERO;
                    for oh in covering(s, ih, oh_n) {
                        for ow in covering(s, iw, ow_n) {
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
    let mut y = vec![T::ZERO; s.batch * s.channels * plane_out];
    y.par_chunks_mut(plane_out.max(1))
        .enumerate()
        .for_each(|(p, y)| {
            let plane = &x[p * plane_in..(p + 1) * plane_in];
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    let (rows, cols) = (span(s, oh, s.height), span(s, ow, s.width));
                    let mut sum = T::ZERO;
                    for ih in rows {
                        for iw in cols.clone() {
                            sum = sum + plane[ih * s.width + iw];
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
    let mut dx = vec![T::ZERO; s.batch * s.channels * plane_in];
    dx.par_chunks_mut(plane_in.max(1))
        .enumerate()
        .for_each(|(p, dx)| {
            let dy = &dy[p * plane_out..(p + 1) * plane_out];
            for ih in 0..s.height {
                for iw in 0..s.width {
                    let mut g = T::ZERO;
                    for oh in covering(s, ih, oh_n) {
                        for ow in covering(s, iw, ow_n) {
                            g = g + dy[oh * ow_n + ow];
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
