//! 2-D max and average pooling on the CPU (pool.wgsl's family), f32 and f64. The backward
//! passes are gathers, as on the GPU: each input pixel sums the gradient of the windows that
//! cover it (in window order), so both backends add the same terms in the same order.

use crate::unsupported;
use kiln_tensor::{HostData, KilnError, Pool2dShape, Result};
use rayon::prelude::*;

use crate::real::Real;

/// The input pixels (row, column) of window (oh, ow), in scan order, padding left out.
fn window(s: &Pool2dShape, oh: usize, ow: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    (0..s.kernel).flat_map(move |kh| {
        (0..s.kernel).filter_map(move |kw| {
            let ih = (oh * s.stride + kh).checked_sub(s.padding)?;
            let iw = (ow * s.stride + kw).checked_sub(s.padding)?;
            (ih < s.height && iw < s.width).then_some((ih, iw))
        })
    })
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
                    let mut best: Option<(T, usize)> = None;
                    for (ih, iw) in window(s, oh, ow) {
                        let v = plane[ih * s.width + iw];
                        if best.is_none_or(|(b, _)| v > b) {
                            best = Some((v, ih * s.width + iw));
                        }
                    }
                    let (v, i) = best.expect("every window covers a pixel");
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
                    let sum = window(s, oh, ow)
                        .fold(T::ZERO, |acc, (ih, iw)| acc + plane[ih * s.width + iw]);
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
