//! 2-D convolution on the CPU (conv.wgsl's family), f32 and f64: the reference the GPU's
//! implicit-GEMM kernels are checked against. Each image is unfolded (im2col) into a
//! [C·KH·KW, OH·OW] matrix and multiplied by the [O, C·KH·KW] weights with the `gemm` crate;
//! images run in parallel, one product each. A 1×1 convolution with stride 1 and no padding
//! multiplies the image itself.

use crate::real::{unary_eval, Real};
use crate::unsupported;
use kiln_tensor::{Conv2dShape, HostData, KilnError, Result, UnaryOp};
use rayon::prelude::*;

/// C (m × n, row stride `c_rs`) = A · B, or C += A · B with `accumulate`; A and B read through
/// (row, column) strides, so transposed operands are never copied. Single-threaded: callers
/// parallelise over images.
#[allow(clippy::too_many_arguments)]
fn gemm<T: Real>(
    (m, n, k): (usize, usize, usize),
    c: &mut [T],
    a: &[T],
    (a_rs, a_cs): (isize, isize),
    b: &[T],
    (b_rs, b_cs): (isize, isize),
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
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Whether the unfolded image is the image itself (1×1 kernel, stride 1, no padding).
fn is_pointwise(s: &Conv2dShape) -> bool {
    s.kernel_h == 1 && s.kernel_w == 1 && s.stride == 1 && s.padding == 0
}

/// The input pixel (row, column) kernel tap (kh, kw) of output pixel (oh, ow) reads, if it is
/// inside the image (outside is the zero padding).
fn source(s: &Conv2dShape, oh: usize, ow: usize, kh: usize, kw: usize) -> Option<(usize, usize)> {
    let ih = (oh * s.stride + kh * s.dilation).checked_sub(s.padding)?;
    let iw = (ow * s.stride + kw * s.dilation).checked_sub(s.padding)?;
    (ih < s.height && iw < s.width).then_some((ih, iw))
}

/// One image [C, H, W] unfolded to [C·KH·KW, OH·OW]: row (c, kh, kw), column (oh, ow).
fn im2col<T: Real>(s: &Conv2dShape, image: &[T], cols: &mut [T]) {
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let mut row = 0;
    for c in 0..s.in_channels {
        let plane = &image[c * s.height * s.width..(c + 1) * s.height * s.width];
        for kh in 0..s.kernel_h {
            for kw in 0..s.kernel_w {
                let out = &mut cols[row * oh_n * ow_n..(row + 1) * oh_n * ow_n];
                for oh in 0..oh_n {
                    for ow in 0..ow_n {
                        out[oh * ow_n + ow] = match source(s, oh, ow, kh, kw) {
                            Some((ih, iw)) => plane[ih * s.width + iw],
                            None => T::ZERO,
                        };
                    }
                }
                row += 1;
            }
        }
    }
}

/// The adjoint of `im2col`: each column entry added back to the pixel it was read from.
fn col2im<T: Real>(s: &Conv2dShape, cols: &[T], image: &mut [T]) {
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let mut row = 0;
    for c in 0..s.in_channels {
        let plane = &mut image[c * s.height * s.width..(c + 1) * s.height * s.width];
        for kh in 0..s.kernel_h {
            for kw in 0..s.kernel_w {
                let col = &cols[row * oh_n * ow_n..(row + 1) * oh_n * ow_n];
                for oh in 0..oh_n {
                    for ow in 0..ow_n {
                        if let Some((ih, iw)) = source(s, oh, ow, kh, kw) {
                            plane[ih * s.width + iw] =
                                plane[ih * s.width + iw] + col[oh * ow_n + ow];
                        }
                    }
                }
                row += 1;
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
    let (ckk, pixels) = (s.patch_len(), s.out_height() * s.out_width());
    let image_len = s.in_channels * s.height * s.width;
    let mut y = vec![T::ZERO; s.batch * s.out_channels * pixels];
    y.par_chunks_mut(s.out_channels * pixels.max(1))
        .enumerate()
        .for_each(|(n, out)| {
            let image = &x[n * image_len..(n + 1) * image_len];
            let mut unfolded = Vec::new();
            let cols: &[T] = if is_pointwise(s) {
                image
            } else {
                unfolded.resize(ckk * pixels, T::ZERO);
                im2col(s, image, &mut unfolded);
                &unfolded
            };
            // y_n [O, OH·OW] = W [O, CKK] · cols [CKK, OH·OW].
            let dims = (s.out_channels, pixels, ckk);
            let w_strides = (ckk as isize, 1);
            gemm(dims, out, w, w_strides, cols, (pixels as isize, 1), false);
            if bias.is_some() || activation.is_some() {
                for (o, row) in out.chunks_mut(pixels.max(1)).enumerate() {
                    let b = bias.map_or(T::ZERO, |b| b[o]);
                    for v in row {
                        let z = *v + b;
                        *v = activation.map_or(z, |op| unary_eval(op, z));
                    }
                }
            }
        });
    y
}

fn backward_input_typed<T: Real>(s: &Conv2dShape, dy: &[T], w: &[T]) -> Vec<T> {
    let (ckk, pixels) = (s.patch_len(), s.out_height() * s.out_width());
    let image_len = s.in_channels * s.height * s.width;
    let mut dx = vec![T::ZERO; s.batch * image_len];
    dx.par_chunks_mut(image_len.max(1))
        .enumerate()
        .for_each(|(n, image)| {
            let dy_n = &dy[n * s.out_channels * pixels..(n + 1) * s.out_channels * pixels];
            // dcols [CKK, OH·OW] = Wᵀ [CKK, O] · dy_n [O, OH·OW].
            let dims = (ckk, pixels, s.out_channels);
            let w_transposed = (1, ckk as isize);
            if is_pointwise(s) {
                gemm(
                    dims,
                    image,
                    w,
                    w_transposed,
                    dy_n,
                    (pixels as isize, 1),
                    false,
                );
            } else {
                let mut dcols = vec![T::ZERO; ckk * pixels];
                gemm(
                    dims,
                    &mut dcols,
                    w,
                    w_transposed,
                    dy_n,
                    (pixels as isize, 1),
                    false,
                );
                col2im(s, &dcols, image);
            }
        });
    dx
}

fn backward_weight_typed<T: Real>(s: &Conv2dShape, x: &[T], dy: &[T]) -> Vec<T> {
    let (ckk, pixels) = (s.patch_len(), s.out_height() * s.out_width());
    let image_len = s.in_channels * s.height * s.width;
    let size = s.out_channels * ckk;
    // Per-thread partial sums over images, then their sum.
    (0..s.batch)
        .into_par_iter()
        .fold(
            || (vec![T::ZERO; size], Vec::new()),
            |(mut dw, mut unfolded), n| {
                let image = &x[n * image_len..(n + 1) * image_len];
                let cols: &[T] = if is_pointwise(s) {
                    image
                } else {
                    unfolded.resize(ckk * pixels, T::ZERO);
                    im2col(s, image, &mut unfolded);
                    &unfolded
                };
                let dy_n = &dy[n * s.out_channels * pixels..(n + 1) * s.out_channels * pixels];
                // dW [O, CKK] += dy_n [O, OH·OW] · colsᵀ [OH·OW, CKK].
                let dims = (s.out_channels, ckk, pixels);
                gemm(
                    dims,
                    &mut dw,
                    dy_n,
                    (pixels as isize, 1),
                    cols,
                    (1, pixels as isize),
                    true,
                );
                (dw, unfolded)
            },
        )
        .map(|(dw, _)| dw)
        .reduce(
            || vec![T::ZERO; size],
            |a, b| a.iter().zip(&b).map(|(&u, &v)| u + v).collect(),
        )
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
