//! The doctor's checks of the image kernels (batch norm over channels, convolution, pooling,
//! augmentation): their inputs, at awkward sizes, and the outputs compared with the CPU's.
//! The list of checks and the comparison are in `doctor.rs`.

use crate::doctor::uniform;
use kiln_tensor::precision::{self, Tolerance};
use kiln_tensor::{Backend, Conv2dOptions, DType, ImageShape, Result, Tensor, UnaryOp, Warp};

/// Statistics, backward reductions, forward maps and dx of batch norm over [127, 33]
/// features and [6, 5, 7, 9] and [5, 3, 4, 6] images (the last through the vec4 kernels).
pub(crate) fn batch_norm_outputs<B: Backend>(b: &B) -> Result<Vec<Tensor<B>>> {
    let mut out = Vec::new();
    for dims in [vec![127, 33], vec![6, 5, 7, 9], vec![5, 3, 4, 6]] {
        let x = uniform(&dims, -2.0, 3.0, 21, b)?;
        let dy = uniform(&dims, -1.0, 1.0, 22, b)?;
        let (gamma, beta) = (
            Tensor::full([dims[1]], 1.0, DType::F32, b)?,
            Tensor::zeros([dims[1]], DType::F32, b)?,
        );
        let (mean, var) = x.batch_norm_stats()?;
        let (sum_dy, sum_dy_xhat) = x.batch_norm_backward_reduce(&dy, (&mean, &var), 1e-5)?;
        let y = x.batch_norm_forward((&mean, &var), (&gamma, &beta), 1e-5)?;
        let sums = (&sum_dy, &sum_dy_xhat);
        let dx = x.batch_norm_backward_input(&dy, (&mean, &var, &gamma), sums, 1e-5)?;
        out.extend([mean, var, sum_dy, sum_dy_xhat, y, dx]);
    }
    Ok(out)
}

/// A 3×3 convolution (stride 2, padding 1, bias, ReLU) of [3, 5, 9, 7] images, its input
/// and weight gradients, a 1×1 convolution (the plain matmul's route), and a depthwise 3×3
/// with two outputs per channel (padding 1, bias, ReLU; the grouped kernels) and its
/// gradients.
pub(crate) fn conv_outputs<B: Backend>(b: &B) -> Result<Vec<Tensor<B>>> {
    let x = uniform(&[3, 5, 9, 7], -1.0, 1.0, 40, b)?;
    let w = uniform(&[6, 5, 3, 3], -1.0, 1.0, 41, b)?;
    let bias = uniform(&[6], -1.0, 1.0, 42, b)?;
    let options = Conv2dOptions {
        stride: 2,
        padding: 1,
        dilation: 1,
        groups: 1,
    };
    let s = x.conv2d_shape(&w, options)?;
    let y = x.conv2d(&w, Some(&bias), Some(UnaryOp::Relu), options)?;
    let dy = uniform(y.dims(), -1.0, 1.0, 43, b)?;
    let pointwise = uniform(&[4, 5, 1, 1], -1.0, 1.0, 44, b)?;
    let xg = uniform(&[3, 4, 9, 7], -1.0, 1.0, 47, b)?;
    let wg = uniform(&[8, 1, 3, 3], -1.0, 1.0, 48, b)?;
    let bg = uniform(&[8], -1.0, 1.0, 49, b)?;
    let depthwise = Conv2dOptions {
        padding: 1,
        groups: 4,
        ..Conv2dOptions::default()
    };
    let sg = xg.conv2d_shape(&wg, depthwise)?;
    let yg = xg.conv2d(&wg, Some(&bg), Some(UnaryOp::Relu), depthwise)?;
    let dyg = uniform(yg.dims(), -1.0, 1.0, 50, b)?;
    Ok(vec![
        y,
        dy.conv2d_backward_input(&w, &s)?,
        x.conv2d_backward_weight(&dy, &s)?,
        x.conv2d(&pointwise, None, None, Conv2dOptions::default())?,
        yg,
        dyg.conv2d_backward_input(&wg, &sg)?,
        xg.conv2d_backward_weight(&dyg, &sg)?,
    ])
}

/// Max pooling (values, arg-max indices, gradient) and average pooling (values, gradient),
/// window 3, stride 2, padding 1, of [3, 5, 9, 7] images.
pub(crate) fn pool_outputs<B: Backend>(b: &B) -> Result<Vec<Tensor<B>>> {
    let x = uniform(&[3, 5, 9, 7], -1.0, 1.0, 45, b)?;
    let s = x.pool2d_shape(3, 2, 1)?;
    let (m, indices) = x.max_pool2d(3, 2, 1)?;
    let dy = uniform(m.dims(), -1.0, 1.0, 46, b)?;
    Ok(vec![
        m,
        indices.cast(DType::F32)?,
        dy.max_pool2d_backward(&indices, &s)?,
        x.avg_pool2d(3, 2, 1)?,
        dy.avg_pool2d_backward(&s)?,
    ])
}

/// An affine warp (bilinear, reflected), colour jitter and CutMix boxes on five 3×13×11
/// images.
pub(crate) fn augment_outputs<B: Backend>(b: &B) -> Result<Vec<Tensor<B>>> {
    let image = ImageShape {
        channels: 3,
        height: 13,
        width: 11,
    };
    let x = uniform(&[5, image.features()], 0.0, 1.0, 33, b)?;
    // Rotations by a few degrees with a shift, per image.
    let matrices: Vec<f32> = (0..5)
        .flat_map(|i| {
            let (s, c) = (0.1 * i as f32).sin_cos();
            [c, -s, 1.5 - i as f32, s, c, 0.5 * i as f32]
        })
        .collect();
    let matrices = Tensor::from_vec(matrices, [5, 6], b)?;
    let factors = uniform(&[5, 3], 0.6, 1.4, 34, b)?;
    let boxes: Vec<u32> = (0..5u32).flat_map(|i| [(i + 2) % 5, 1, 2, 7, 9]).collect();
    let boxes = Tensor::from_vec(boxes, [5, 5], b)?;
    let warp = Warp {
        bilinear: true,
        reflect: true,
    };
    Ok(vec![
        x.warp_images(image, &matrices, warp)?,
        x.jitter_images(image, &factors)?,
        x.cutmix_images(image, &boxes)?,
    ])
}

/// Batch-norm statistics and backward reductions of [rows, 33] inputs in [−2, 3] with dy in
/// [−1, 1], each backend from its own statistics. mean: a column sum of |x| ≤ 3 over `rows`;
/// var: squares of |x − mean| ≤ 5 after a subtraction; Σ dy: terms ≤ 1; Σ dy·x̂: terms
/// |x̂| ≤ 5/σ ≈ 3.5 after ten roundings each, plus the statistics' own differences: the mean's
/// through Σ dy / σ (σ ≈ 1.44), the variance's through Σ dy·x̂ · δv / 2v (v ≈ 2.08).
pub(crate) fn batch_norm_tolerances(rows: usize) -> Vec<Tolerance> {
    let depth = precision::column_sum_depth(rows);
    let r = rows as f64;
    let mean = precision::sum(depth, 3.0);
    let var = precision::sum(depth + 2, 25.0);
    let sum_dy_xhat = precision::sum(depth + 10, 3.5 * r).plus(Tolerance::new(
        "",
        r / 1.44 * mean.abs + 3.5 * r * var.abs / (2.0 * 2.08),
        0.0,
    ));
    vec![mean, var, precision::sum(depth, r), sum_dy_xhat]
}
