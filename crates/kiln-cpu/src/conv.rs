//! 2-D convolution on the CPU (conv.wgsl's family), f32 and f64: the reference the GPU's
//! kernels are checked against. Work is split by image, in parallel: each image is unfolded
//! (im2col) into a [C·KH·KW, OH·OW] block small enough to stay in cache, and multiplied with
//! the `gemm` crate on its thread. Forward: y_n = W · cols_n, written straight into y's NCHW
//! planes (the bias prefilled). Input gradient: dcols_n = Wᵀ · dy_n, folded back (col2im).
//! Weight gradient: dW = Σ_n dy_n · cols_nᵀ over fixed groups of images, the groups' partial
//! sums added in order, so results do not depend on the thread count. With channel groups,
//! each group is its own product: its C / groups input channels unfolded, its O / groups rows
//! of W and of y.

use crate::real::{unary_eval, Real};
use crate::unsupported;
use kiln_tensor::{Conv2dShape, HostData, KilnError, Result, UnaryOp};
use rayon::prelude::*;

/// A matrix operand: its elements and (row, column) strides.
type Operand<'a, T> = (&'a [T], (isize, isize));

/// C (m × n, row-major) = A · B, or C += A · B with `accumulate`, on the calling thread; A
/// and B read through strides, so transposed operands are never copied.
fn gemm<T: Real>(
    (m, n, k): (usize, usize, usize),
    c: &mut [T],
    (a, a_strides): Operand<'_, T>,
    (b, b_strides): Operand<'_, T>,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(c.len() >= m * n);
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
            gemm::Parallelism::None,
        );
    }
}

/// Elements of unfolded patches a weight-gradient group holds (about 1 MiB of f32).
const GROUP_BUDGET: usize = 1 << 18;

/// Images per weight-gradient group: a fixed function of the shape.
fn images_per_group(s: &Conv2dShape) -> usize {
    let per_image = s.patch_len() * s.out_height() * s.out_width();
    (GROUP_BUDGET / per_image.max(1)).clamp(1, s.batch.max(1))
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

/// Images [n0, n0 + count) of x, channels [c0, c0 + C / groups), unfolded to
/// [(C / groups)·KH·KW, count·OH·OW]: row (c − c0, kh, kw), column (image, oh, ow).
fn im2col<T: Real>(
    s: &Conv2dShape,
    x: &[T],
    (n0, count): (usize, usize),
    c0: usize,
    cols: &mut [T],
) {
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let pixels = oh_n * ow_n;
    let (plane, image_len) = (s.height * s.width, s.in_channels * s.height * s.width);
    let taps = s.kernel_h * s.kernel_w;
    for (row, out) in cols.chunks_mut((count * pixels).max(1)).enumerate() {
        let (c, kh, kw) = (row / taps, (row % taps) / s.kernel_w, row % s.kernel_w);
        let (lo, hi) = inside(ow_n, kw, s, s.width);
        for n in 0..count {
            let src = &x[(n0 + n) * image_len + (c0 + c) * plane..][..plane];
            let dst = &mut out[n * pixels..(n + 1) * pixels];
            for (oh, line) in dst.chunks_mut(ow_n.max(1)).enumerate() {
                let Some(ih) = source(oh, kh, s, s.height) else {
                    line.fill(T::ZERO);
                    continue;
                };
                let row = &src[ih * s.width..(ih + 1) * s.width];
                line[..lo].fill(T::ZERO);
                line[hi..].fill(T::ZERO);
                let first = lo * s.stride + kw * s.dilation - s.padding;
                if s.stride == 1 {
                    line[lo..hi].copy_from_slice(&row[first..first + hi - lo]);
                } else {
                    for (j, v) in line[lo..hi].iter_mut().enumerate() {
                        *v = row[first + j * s.stride];
                    }
                }
            }
        }
    }
}

/// The adjoint of `im2col` for one image: its [(C / groups)·KH·KW, OH·OW] columns of channels
/// [c0, c0 + C / groups) added back to the pixels they read.
fn col2im<T: Real>(s: &Conv2dShape, cols: &[T], c0: usize, image: &mut [T]) {
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let pixels = oh_n * ow_n;
    let plane = s.height * s.width;
    let taps = s.kernel_h * s.kernel_w;
    for row in 0..s.patch_len() {
        let (c, kh, kw) = (row / taps, (row % taps) / s.kernel_w, row % s.kernel_w);
        let col = &cols[row * pixels..][..pixels];
        let dst = &mut image[(c0 + c) * plane..(c0 + c + 1) * plane];
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

fn forward_typed<T: Real>(
    s: &Conv2dShape,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    activation: Option<UnaryOp>,
) -> Vec<T> {
    let (ckk, pixels, o) = (s.patch_len(), s.out_height() * s.out_width(), s.group_out());
    let mut y = vec![T::ZERO; s.batch * s.out_channels * pixels];
    y.par_chunks_mut((s.out_channels * pixels).max(1))
        .enumerate()
        .for_each_init(
            || vec![T::ZERO; ckk * pixels],
            |cols, (n, y_n)| {
                if let Some(b) = bias {
                    for (plane, &b) in y_n.chunks_mut(pixels.max(1)).zip(b) {
                        plane.fill(b);
                    }
                }
                for g in 0..s.groups {
                    im2col(s, x, (n, 1), g * s.group_in(), cols);
                    // y_n's group rows [O/g, P] (+)= W_g [O/g, CKK] · cols [CKK, P].
                    gemm(
                        (o, pixels, ckk),
                        &mut y_n[g * o * pixels..],
                        (&w[g * o * ckk..], (ckk as isize, 1)),
                        (cols, (pixels as isize, 1)),
                        bias.is_some(),
                    );
                }
                if let Some(op) = activation {
                    y_n.iter_mut().for_each(|v| *v = unary_eval(op, *v));
                }
            },
        );
    y
}

fn backward_input_typed<T: Real>(s: &Conv2dShape, dy: &[T], w: &[T]) -> Vec<T> {
    let (ckk, pixels, o) = (s.patch_len(), s.out_height() * s.out_width(), s.group_out());
    let image_len = s.in_channels * s.height * s.width;
    let dy_len = s.out_channels * pixels;
    let mut dx = vec![T::ZERO; s.batch * image_len];
    dx.par_chunks_mut(image_len.max(1))
        .enumerate()
        .for_each_init(
            || vec![T::ZERO; ckk * pixels],
            |dcols, (n, dx_n)| {
                for g in 0..s.groups {
                    // dcols [CKK, P] = W_gᵀ [CKK, O/g] · dy_n's group rows [O/g, P].
                    gemm(
                        (ckk, pixels, o),
                        dcols,
                        (&w[g * o * ckk..], (1, ckk as isize)),
                        (&dy[n * dy_len + g * o * pixels..], (pixels as isize, 1)),
                        false,
                    );
                    col2im(s, dcols, g * s.group_in(), dx_n);
                }
            },
        );
    dx
}

fn backward_weight_typed<T: Real>(s: &Conv2dShape, x: &[T], dy: &[T]) -> Vec<T> {
    let (ckk, pixels, o) = (s.patch_len(), s.out_height() * s.out_width(), s.group_out());
    let dy_len = s.out_channels * pixels;
    let group = images_per_group(s);
    let partials: Vec<Vec<T>> = (0..s.batch.div_ceil(group))
        .into_par_iter()
        .map_init(
            || vec![T::ZERO; ckk * group * pixels],
            |cols, g| {
                let n0 = g * group;
                let count = group.min(s.batch - n0);
                let width = count * pixels;
                let mut dw = vec![T::ZERO; s.out_channels * ckk];
                for c in 0..s.groups {
                    im2col(
                        s,
                        x,
                        (n0, count),
                        c * s.group_in(),
                        &mut cols[..ckk * width],
                    );
                    // dW_c [O/g, CKK] = Σ over the images of dy_n's channel-group rows
                    // [O/g, P] · cols_nᵀ [P, CKK].
                    for n in 0..count {
                        gemm(
                            (o, ckk, pixels),
                            &mut dw[c * o * ckk..],
                            (
                                &dy[(n0 + n) * dy_len + c * o * pixels..],
                                (pixels as isize, 1),
                            ),
                            (&cols[n * pixels..], (1, width as isize)),
                            n > 0,
                        );
                    }
                }
                dw
            },
        )
        .collect();
    let mut dw = vec![T::ZERO; s.out_channels * ckk];
    for partial in partials {
        dw.iter_mut().zip(partial).for_each(|(a, b)| *a = *a + b);
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

/// y = act(conv(x, w) + bias), x [N, C, H, W], w [O, C / groups, KH, KW], bias [O],
/// y [N, O, OH, OW].
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

/// dw [O, C / groups, KH, KW] from x and dy, summed over the batch.
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
