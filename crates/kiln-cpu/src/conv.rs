//! 2-D convolution on the CPU (conv.wgsl's family), f32 and f64: the reference the GPU's
//! implicit-GEMM kernels are checked against. Each image is unfolded (im2col) into a
//! [C·KH·KW, OH·OW] block of one matrix for a chunk of images (in parallel over its rows), and
//! the chunk is multiplied by the [O, C·KH·KW] weights in one multithreaded product of the
//! `gemm` crate; the backward passes are the two other products of the same matrices.

use crate::real::{unary_eval, Real};
use crate::unsupported;
use kiln_tensor::{Conv2dShape, HostData, KilnError, Result, UnaryOp};
use rayon::prelude::*;

/// C (m × n, row-major) = A · B, or C += A · B with `accumulate`; A and B read through (row,
/// column) strides, so transposed operands are never copied. Multithreaded for large products.
fn gemm<T: Real>(
    (m, n, k): (usize, usize, usize),
    c: &mut [T],
    (a, a_strides): (&[T], (isize, isize)),
    (b, b_strides): (&[T], (isize, isize)),
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(c.len() >= m * n);
    let parallelism = if m * n * k >= 64 * 64 * 64 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the strides describe an m×k matrix inside `a`, a k×n one inside `b` and the
    // m×n `c` (asserted above; the callers size `a` and `b` from the same shape), and `c`
    // aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_strides.1,
            a_strides.0,
            b.as_ptr(),
            b_strides.1,
            b_strides.0,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Images per chunk: the unfolded chunk holds at most this many elements.
const COLS_BUDGET: usize = 1 << 24;

fn images_per_chunk(s: &Conv2dShape) -> usize {
    let per_image = s.patch_len() * s.out_height() * s.out_width();
    (COLS_BUDGET / per_image.max(1)).clamp(1, s.batch.max(1))
}

/// Input row (or column) of output row `o` at tap `t`, if inside the image.
fn source(o: usize, t: usize, s: &Conv2dShape, len: usize) -> Option<usize> {
    let i = (o * s.stride + t * s.dilation).checked_sub(s.padding)?;
    (i < len).then_some(i)
}

/// The outputs [lo, hi) along a side of `out_len` whose tap `t` lands inside the `len` input
/// pixels (the others read the zero padding); input o·stride + t·dilation − padding.
fn inside(out_len: usize, t: usize, s: &Conv2dShape, len: usize) -> (usize, usize) {
    let shift = t * s.dilation;
    let lo = s.padding.saturating_sub(shift).div_ceil(s.stride);
    let hi = match (len + s.padding).checked_sub(shift + 1) {
        Some(last) => (last / s.stride + 1).min(out_len),
        None => 0,
    };
    (lo.min(hi), hi)
}

/// Images [n0, n0 + count) of x unfolded to [C·KH·KW, count·OH·OW]: row (c, kh, kw), column
/// (image, oh, ow). Rows fill in parallel.
fn im2col<T: Real>(s: &Conv2dShape, x: &[T], n0: usize, count: usize, cols: &mut [T]) {
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let pixels = oh_n * ow_n;
    let (plane, image_len) = (s.height * s.width, s.in_channels * s.height * s.width);
    let taps = s.kernel_h * s.kernel_w;
    cols.par_chunks_mut((count * pixels).max(1))
        .enumerate()
        .for_each(|(row, out)| {
            let (c, kh, kw) = (row / taps, (row % taps) / s.kernel_w, row % s.kernel_w);
            for n in 0..count {
                let src = &x[(n0 + n) * image_len + c * plane..][..plane];
                let dst = &mut out[n * pixels..(n + 1) * pixels];
                for oh in 0..oh_n {
                    let line = &mut dst[oh * ow_n..(oh + 1) * ow_n];
                    match source(oh, kh, s, s.height) {
                        None => line.fill(T::ZERO),
                        Some(ih) => {
                            let row = &src[ih * s.width..(ih + 1) * s.width];
                            let (lo, hi) = inside(ow_n, kw, s, s.width);
                            line[..lo].fill(T::ZERO);
                            line[hi..].fill(T::ZERO);
                            let first = lo * s.stride + kw * s.dilation - s.padding;
                            for (j, v) in line[lo..hi].iter_mut().enumerate() {
                                *v = row[first + j * s.stride];
                            }
                        }
                    }
                }
            }
        });
}

/// The adjoint of `im2col` for one image: its columns added back to the pixels they read.
fn col2im<T: Real>(s: &Conv2dShape, cols: &[T], stride: usize, n: usize, image: &mut [T]) {
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let pixels = oh_n * ow_n;
    let plane = s.height * s.width;
    let taps = s.kernel_h * s.kernel_w;
    for row in 0..s.patch_len() {
        let (c, kh, kw) = (row / taps, (row % taps) / s.kernel_w, row % s.kernel_w);
        let col = &cols[row * stride + n * pixels..][..pixels];
        let dst = &mut image[c * plane..(c + 1) * plane];
        let (lo, hi) = inside(ow_n, kw, s, s.width);
        for oh in 0..oh_n {
            let Some(ih) = source(oh, kh, s, s.height) else {
                continue;
            };
            let first = ih * s.width + lo * s.stride + kw * s.dilation - s.padding;
            for (j, &g) in col[oh * ow_n + lo..oh * ow_n + hi].iter().enumerate() {
                let at = first + j * s.stride;
                dst[at] = dst[at] + g;
            }
        }
    }
}

/// [count, O, P] (images of channel planes) ↔ [O, count · P] (channel rows), in parallel.
fn channels_first<T: Real>(src: &[T], (count, o, p): (usize, usize, usize), dst: &mut [T]) {
    dst.par_chunks_mut((count * p).max(1))
        .enumerate()
        .for_each(|(ch, row)| {
            for n in 0..count {
                row[n * p..(n + 1) * p].copy_from_slice(&src[(n * o + ch) * p..][..p]);
            }
        });
}

fn forward_typed<T: Real>(
    s: &Conv2dShape,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    activation: Option<UnaryOp>,
) -> Vec<T> {
    let (ckk, pixels, o) = (
        s.patch_len(),
        s.out_height() * s.out_width(),
        s.out_channels,
    );
    let mut y = vec![T::ZERO; s.batch * o * pixels];
    let chunk = images_per_chunk(s);
    let mut cols = vec![T::ZERO; ckk * chunk * pixels];
    let mut product = vec![T::ZERO; o * chunk * pixels];
    for n0 in (0..s.batch).step_by(chunk) {
        let count = chunk.min(s.batch - n0);
        let width = count * pixels;
        im2col(s, x, n0, count, &mut cols[..ckk * width]);
        // [O, count·P] = W [O, CKK] · cols [CKK, count·P].
        gemm(
            (o, width, ckk),
            &mut product[..o * width],
            (w, (ckk as isize, 1)),
            (&cols[..ckk * width], (width as isize, 1)),
            false,
        );
        // Back to [count, O, P], with the epilogue.
        y[n0 * o * pixels..(n0 + count) * o * pixels]
            .par_chunks_mut(pixels.max(1))
            .enumerate()
            .for_each(|(i, plane)| {
                let (n, ch) = (i / o, i % o);
                let b = bias.map_or(T::ZERO, |b| b[ch]);
                let src = &product[ch * width + n * pixels..][..pixels];
                for (v, &z) in plane.iter_mut().zip(src) {
                    let z = z + b;
                    *v = activation.map_or(z, |op| unary_eval(op, z));
                }
            });
    }
    y
}

fn backward_input_typed<T: Real>(s: &Conv2dShape, dy: &[T], w: &[T]) -> Vec<T> {
    let (ckk, pixels, o) = (
        s.patch_len(),
        s.out_height() * s.out_width(),
        s.out_channels,
    );
    let image_len = s.in_channels * s.height * s.width;
    let mut dx = vec![T::ZERO; s.batch * image_len];
    let chunk = images_per_chunk(s);
    let mut rows = vec![T::ZERO; o * chunk * pixels];
    let mut dcols = vec![T::ZERO; ckk * chunk * pixels];
    for n0 in (0..s.batch).step_by(chunk) {
        let count = chunk.min(s.batch - n0);
        let width = count * pixels;
        let dy_chunk = &dy[n0 * o * pixels..(n0 + count) * o * pixels];
        channels_first(dy_chunk, (count, o, pixels), &mut rows[..o * width]);
        // dcols [CKK, count·P] = Wᵀ [CKK, O] · dy [O, count·P].
        gemm(
            (ckk, width, o),
            &mut dcols[..ckk * width],
            (w, (1, ckk as isize)),
            (&rows[..o * width], (width as isize, 1)),
            false,
        );
        dx[n0 * image_len..(n0 + count) * image_len]
            .par_chunks_mut(image_len.max(1))
            .enumerate()
            .for_each(|(n, image)| col2im(s, &dcols, width, n, image));
    }
    dx
}

fn backward_weight_typed<T: Real>(s: &Conv2dShape, x: &[T], dy: &[T]) -> Vec<T> {
    let (ckk, pixels, o) = (
        s.patch_len(),
        s.out_height() * s.out_width(),
        s.out_channels,
    );
    let mut dw = vec![T::ZERO; o * ckk];
    let chunk = images_per_chunk(s);
    let mut rows = vec![T::ZERO; o * chunk * pixels];
    let mut cols = vec![T::ZERO; ckk * chunk * pixels];
    for n0 in (0..s.batch).step_by(chunk) {
        let count = chunk.min(s.batch - n0);
        let width = count * pixels;
        let dy_chunk = &dy[n0 * o * pixels..(n0 + count) * o * pixels];
        channels_first(dy_chunk, (count, o, pixels), &mut rows[..o * width]);
        im2col(s, x, n0, count, &mut cols[..ckk * width]);
        // dW [O, CKK] += dy [O, count·P] · colsᵀ [count·P, CKK].
        gemm(
            (o, ckk, width),
            &mut dw,
            (&rows[..o * width], (width as isize, 1)),
            (&cols[..ckk * width], (1, width as isize)),
            n0 > 0,
        );
    }
    dw
}
fn check(op: &'static str, name: &str, data: &HostData, need: usize) -> Result<()> {
    if data.len() != need {
        return Err(KilnError::invalid(
            op,
            format!(
                "{name} holds {} elements, the shape needs {need}",
                data.len()
            ),
        ));
    }
    Ok(())
}

/// y = act(conv(x, w) + bias), x [N, C, H, W], w [O, C, KH, KW], bias [O], y [N, O, OH, OW].
pub fn conv2d(
    x: &HostData,
    w: &HostData,
    bias: Option<&HostData>,
    activation: Option<UnaryOp>,
    s: &Conv2dShape,
) -> Result<HostData> {
    let op = "conv2d";
    check(op, "x", x, s.input_len())?;
    check(op, "w", w, s.weight_len())?;
    if let Some(b) = bias {
        check(op, "bias", b, s.out_channels)?;
    }
    Ok(match (x, w, bias) {
        (HostData::F32(x), HostData::F32(w), None) => {
            HostData::F32(forward_typed(s, x, w, None, activation))
        }
        (HostData::F32(x), HostData::F32(w), Some(HostData::F32(b))) => {
            HostData::F32(forward_typed(s, x, w, Some(b), activation))
        }
        (HostData::F64(x), HostData::F64(w), None) => {
            HostData::F64(forward_typed(s, x, w, None, activation))
        }
        (HostData::F64(x), HostData::F64(w), Some(HostData::F64(b))) => {
            HostData::F64(forward_typed(s, x, w, Some(b), activation))
        }
        _ => return Err(unsupported(op, x.dtype())),
    })
}

/// dx [N, C, H, W] from dy [N, O, OH, OW] and w: the transposed convolution.
pub fn conv2d_backward_input(dy: &HostData, w: &HostData, s: &Conv2dShape) -> Result<HostData> {
    let op = "conv2d_backward_input";
    check(op, "dy", dy, s.output_len())?;
    check(op, "w", w, s.weight_len())?;
    Ok(match (dy, w) {
        (HostData::F32(dy), HostData::F32(w)) => HostData::F32(backward_input_typed(s, dy, w)),
        (HostData::F64(dy), HostData::F64(w)) => HostData::F64(backward_input_typed(s, dy, w)),
        _ => return Err(unsupported(op, dy.dtype())),
    })
}

/// dw [O, C, KH, KW] from x and dy, summed over the batch.
pub fn conv2d_backward_weight(x: &HostData, dy: &HostData, s: &Conv2dShape) -> Result<HostData> {
    let op = "conv2d_backward_weight";
    check(op, "x", x, s.input_len())?;
    check(op, "dy", dy, s.output_len())?;
    Ok(match (x, dy) {
        (HostData::F32(x), HostData::F32(dy)) => HostData::F32(backward_weight_typed(s, x, dy)),
        (HostData::F64(x), HostData::F64(dy)) => HostData::F64(backward_weight_typed(s, x, dy)),
        _ => return Err(unsupported(op, x.dtype())),
    })
}
