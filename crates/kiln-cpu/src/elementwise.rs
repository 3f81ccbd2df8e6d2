//! Elementwise ops on the CPU: strided reads, contiguous outputs, rayon above a size threshold.

use crate::memory::written;
use crate::real::{binary_eval, relu, unary_eval, Real};
use crate::{float_dispatch, PARALLEL_THRESHOLD};
use kiln_tensor::{BinaryOp, HostData, KilnError, Layout, Result, UnaryOp};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Fills `out[i] = f(i)` for every i, in parallel chunks when large.
pub(crate) fn fill_indexed<T: Send>(out: &mut [T], f: impl Fn(usize) -> T + Sync) {
    if out.len() >= PARALLEL_THRESHOLD {
        out.par_chunks_mut(4096).enumerate().for_each(|(c, chunk)| {
            for (j, o) in chunk.iter_mut().enumerate() {
                *o = f(c * 4096 + j);
            }
        });
    } else {
        for (i, o) in out.iter_mut().enumerate() {
            *o = f(i);
        }
    }
}

/// Reads element i of a strided view: `offset + i` when contiguous, else through the strides.
pub(crate) fn reader<'a, T: Copy + Sync>(
    data: &'a [T],
    layout: &'a Layout,
) -> impl Fn(usize) -> T + Sync + 'a {
    let contiguous = layout.is_contiguous();
    let offset = layout.offset();
    move |i| {
        if contiguous {
            data[offset + i]
        } else {
            data[layout.storage_index(i)]
        }
    }
}

/// `out[i] = f(a[i], b[i])` over contiguous slices of one length, in parallel chunks when
/// large, into an output that is not zero-filled first; the loop body has no index
/// arithmetic, so it vectorises.
fn zip_contiguous<T: Real>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    let b = &b[..a.len()];
    // SAFETY: chunk k's slices of a and b are exactly as long as the chunk (the slicing
    // panics otherwise), so the zip writes every element of it.
    unsafe {
        written(a.len(), CHUNK, |k, o| {
            let at = k * CHUNK..k * CHUNK + o.len();
            for ((o, &a), &b) in o.iter_mut().zip(&a[at.clone()]).zip(&b[at]) {
                o.write(f(a, b));
            }
        })
    }
}

const CHUNK: usize = 1 << 14;

fn contiguous_slice<'a, T>(data: &'a [T], layout: &Layout) -> Option<&'a [T]> {
    layout
        .is_contiguous()
        .then(|| &data[layout.offset()..layout.offset() + layout.numel()])
}

fn map1<T: Real>(x: &[T], layout: &Layout, f: impl Fn(T) -> T + Sync) -> Vec<T> {
    if let Some(x) = contiguous_slice(x, layout) {
        return zip_contiguous(x, x, |a, _| f(a));
    }
    let read = reader(x, layout);
    let mut out = vec![T::ZERO; layout.numel()];
    fill_indexed(&mut out, |i| f(read(i)));
    out
}

/// How a broadcast operand supplies each row of the last dimension: its own row of a
/// contiguous matrix, or the same row vector for every row (leading strides 0).
fn row_source<'a, T>(data: &'a [T], layout: &Layout) -> Option<(&'a [T], bool)> {
    let dims = layout.shape().dims();
    let n = *dims.last()?;
    if let Some(all) = contiguous_slice(data, layout) {
        return Some((all, true));
    }
    let strides = layout.strides();
    let (lead, last) = strides.split_at(strides.len() - 1);
    (last[0] == 1 && lead.iter().all(|&s| s == 0))
        .then(|| &data[layout.offset()..layout.offset() + n])
        .map(|row| (row, false))
}

/// `f` over two same-shape operands where each is contiguous or a row vector broadcast down
/// the rows (x − mean, x · γ + β): row by row, with no index arithmetic in the inner loop.
fn map2_rows<T: Real>(
    (a, a_rows): (&[T], bool),
    (b, b_rows): (&[T], bool),
    n: usize,
    numel: usize,
    f: impl Fn(T, T) -> T + Sync,
) -> Vec<T> {
    let row = |r: usize, o: &mut [MaybeUninit<T>]| {
        let ar = if a_rows {
            &a[r * n..(r + 1) * n]
        } else {
            &a[..n]
        };
        let br = if b_rows {
            &b[r * n..(r + 1) * n]
        } else {
            &b[..n]
        };
        for ((o, &a), &b) in o.iter_mut().zip(ar).zip(br) {
            o.write(f(a, b));
        }
    };
    // Tasks of whole rows, about CHUNK elements each.
    let rows_per_task = (CHUNK / n).max(1);
    // SAFETY: numel is a whole number of rows of n, so every chunk is whole rows, and each
    // row's operands are slices of exactly n elements (the slicing panics otherwise): the zip
    // writes every element.
    unsafe {
        written(numel, n * rows_per_task, |t, o| {
            for (i, o) in o.chunks_mut(n).enumerate() {
                row(t * rows_per_task + i, o);
            }
        })
    }
}

pub(crate) fn map2<T: Real>(
    a: &[T],
    al: &Layout,
    b: &[T],
    bl: &Layout,
    f: impl Fn(T, T) -> T + Sync,
) -> Vec<T> {
    let n = al.shape().dims().last().copied().unwrap_or(0);
    if n > 0 && al.shape() == bl.shape() {
        if let (Some(sa), Some(sb)) = (row_source(a, al), row_source(b, bl)) {
            return map2_rows(sa, sb, n, al.numel(), f);
        }
    }
    let (ra, rb) = (reader(a, al), reader(b, bl));
    let mut out = vec![T::ZERO; al.numel()];
    fill_indexed(&mut out, |i| f(ra(i), rb(i)));
    out
}

pub(crate) fn same_dtype(op: &'static str, a: &HostData, b: &HostData) -> Result<()> {
    if a.dtype() == b.dtype() {
        Ok(())
    } else {
        Err(KilnError::DTypeMismatch {
            op,
            lhs: a.dtype(),
            rhs: b.dtype(),
        })
    }
}

pub fn unary(op: UnaryOp, x: &HostData, layout: &Layout) -> Result<HostData> {
    // ReLU gets a loop of its own, with no call per element, so that it vectorises.
    Ok(match op {
        UnaryOp::Relu => float_dispatch!(x, op.name(), |v| map1(v, layout, relu)),
        _ => float_dispatch!(x, op.name(), |v| map1(v, layout, |a| unary_eval(op, a))),
    })
}

pub fn binary(
    op: BinaryOp,
    a: &HostData,
    al: &Layout,
    b: &HostData,
    bl: &Layout,
) -> Result<HostData> {
    /// The four arithmetic ops get loops of their own (no dispatch on `op` per element, so
    /// they vectorise); the rest go through `binary_eval`.
    fn go<T: Real>(op: BinaryOp, a: &[T], al: &Layout, b: &[T], bl: &Layout) -> Vec<T> {
        match op {
            BinaryOp::Add => map2(a, al, b, bl, |x, y| x + y),
            BinaryOp::Sub => map2(a, al, b, bl, |x, y| x - y),
            BinaryOp::Mul => map2(a, al, b, bl, |x, y| x * y),
            BinaryOp::Div => map2(a, al, b, bl, |x, y| x / y),
            _ => map2(a, al, b, bl, |x, y| binary_eval(op, x, y)),
        }
    }
    same_dtype(op.name(), a, b)?;
    Ok(match (a, b) {
        (HostData::F32(a), HostData::F32(b)) => HostData::F32(go(op, a, al, b, bl)),
        (HostData::F64(a), HostData::F64(b)) => HostData::F64(go(op, a, al, b, bl)),
        _ => return Err(crate::unsupported(op.name(), a.dtype())),
    })
}

pub fn binary_scalar(
    op: BinaryOp,
    x: &HostData,
    layout: &Layout,
    scalar: f64,
    scalar_on_left: bool,
) -> Result<HostData> {
    fn go<T: Real>(op: BinaryOp, x: &[T], layout: &Layout, s: T, left: bool) -> Vec<T> {
        map1(x, layout, |v| {
            if left {
                binary_eval(op, s, v)
            } else {
                binary_eval(op, v, s)
            }
        })
    }
    Ok(match x {
        HostData::F32(v) => HostData::F32(go(op, v, layout, scalar as f32, scalar_on_left)),
        HostData::F64(v) => HostData::F64(go(op, v, layout, scalar, scalar_on_left)),
        other => return Err(crate::unsupported(op.name(), other.dtype())),
    })
}

pub fn select(
    c: (&HostData, &Layout),
    t: (&HostData, &Layout),
    f: (&HostData, &Layout),
) -> Result<HostData> {
    fn go<T: Real>(c: &[T], cl: &Layout, t: &[T], tl: &Layout, f: &[T], fl: &Layout) -> Vec<T> {
        let (rc, rt, rf) = (reader(c, cl), reader(t, tl), reader(f, fl));
        let mut out = vec![T::ZERO; cl.numel()];
        fill_indexed(&mut out, |i| if rc(i) != T::ZERO { rt(i) } else { rf(i) });
        out
    }
    same_dtype("select", c.0, t.0)?;
    same_dtype("select", t.0, f.0)?;
    Ok(match (c.0, t.0, f.0) {
        (HostData::F32(c0), HostData::F32(t0), HostData::F32(f0)) => {
            HostData::F32(go(c0, c.1, t0, t.1, f0, f.1))
        }
        (HostData::F64(c0), HostData::F64(t0), HostData::F64(f0)) => {
            HostData::F64(go(c0, c.1, t0, t.1, f0, f.1))
        }
        _ => return Err(crate::unsupported("select", c.0.dtype())),
    })
}
