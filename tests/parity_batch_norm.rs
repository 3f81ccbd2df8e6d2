//! GPU vs CPU, the batch_norm family: per-channel statistics, the forward map, the backward
//! reductions and dx, on [N, C] features and [N, C, H, W] images at awkward sizes.

mod common;
use common::*;
use kiln::prelude::*;

/// Shapes: features (inner 1) and images (inner H·W), channels 1 to 257.
const SHAPES: &[&[usize]] = &[
    &[1, 1],
    &[3, 17],
    &[256, 33],
    &[17, 257],
    &[1000, 3],
    &[1, 1, 1, 1],
    &[2, 3, 5, 7],
    &[33, 5, 3, 3],
    &[4, 33, 13, 11],
    &[1, 2, 31, 33],
    // A multiple of 4 elements per channel and sample: the maps' vec4 kernels.
    &[3, 5, 4, 6],
    &[2, 7, 8, 8],
];

#[test]
fn batch_norm_family_matches_including_constant_channels() {
    let Some(gpu) = gpu() else { return };
    for &dims in SHAPES {
        let (c, inner) = (dims[1], dims[2..].iter().product::<usize>());
        let numel: usize = dims.iter().product();
        let count = numel / c;
        let mut x = random_vec(numel as u64, numel, -2.0, 2.0);
        // Channel 0 is constant and large: a stable variance gives exactly 0 there.
        for (i, v) in x.iter_mut().enumerate() {
            if (i / inner) % c == 0 {
                *v = 1000.5;
            }
        }
        let (gx, cx) = pair(&x, dims, &gpu);
        let (gm, gv) = gx.batch_norm_stats().unwrap();
        let (cm, cv) = cx.batch_norm_stats().unwrap();
        // Channel sums of `count` terms (|x| ≤ 1000.5 in channel 0, ≤ 2 elsewhere), divided
        // by the count; the variance sums squares of |x − mean| ≤ 4 after a subtraction and a
        // multiply.
        let depth = precision::batch_norm_sum_depth(count, inner);
        let mean_tol = precision::sum(depth, 1000.5);
        let var_tol = precision::sum(depth + 2, 16.0);
        assert_tensors_close(&format!("bn mean {dims:?}"), &gm, &cm, mean_tol);
        assert_tensors_close(&format!("bn var {dims:?}"), &gv, &cv, var_tol);
        // Two passes, not E[x²] − E[x]² (which would leave ~0.1 here): the constant channel's
        // variance is the square of the mean's own error, at most a few ULP of 1000.5.
        let constant_var = gv.to_vec::<f32>().unwrap()[0] as f64;
        assert!(
            constant_var <= (4.0 * ULP * 1000.5f64).powi(2),
            "constant channel variance {constant_var}"
        );

        // The rest take the same per-channel tensors on both sides (the CPU's statistics of
        // fresh x with no constant channel), so they compare each kernel alone.
        let x = random_vec(numel as u64 + 1, numel, -2.0, 2.0);
        let (gx, cx) = pair(&x, dims, &gpu);
        let (cm, cv) = cx.batch_norm_stats().unwrap();
        let to_gpu =
            |t: &Tensor<CpuBackend>| Tensor::from_host(&t.to_host().unwrap(), [c], &gpu).unwrap();
        let (cgamma, cbeta) = (
            Tensor::from_vec(random_vec(7, c, 0.5, 1.5), [c], &CpuBackend).unwrap(),
            Tensor::from_vec(random_vec(8, c, -1.0, 1.0), [c], &CpuBackend).unwrap(),
        );
        let (ggamma, gbeta) = (to_gpu(&cgamma), to_gpu(&cbeta));
        let (gm, gv) = (to_gpu(&cm), to_gpu(&cv));

        // y = (x − mean) · (γ / sqrt(var + eps)) + β: |x − mean| ≤ 4 (0 in the constant
        // channel), the scale ≤ 1.5 / sqrt(var + eps) carries sqrt and division roundings.
        let min_var = cv
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .fold(f64::INFINITY, |m, &v| m.min(v as f64))
            .min(1.0);
        let scale = 1.5 / (min_var + 1e-5).sqrt();
        let y_tol = precision::batch_norm_map(4.0 * scale + 1.0);
        let gy = gx.batch_norm_forward((&gm, &gv), (&ggamma, &gbeta), 1e-5);
        let cy = cx.batch_norm_forward((&cm, &cv), (&cgamma, &cbeta), 1e-5);
        assert_tensors_close(&format!("bn y {dims:?}"), &gy.unwrap(), &cy.unwrap(), y_tol);

        // Σ dy, and Σ dy·x̂ whose terms are a subtraction, a sqrt, a division and two
        // products each (≤ 10 ULP), with |x̂| ≤ 4/σ.
        let dy = random_vec(numel as u64 + 3, numel, -1.0, 1.0);
        let (gdy, cdy) = pair(&dy, dims, &gpu);
        let (ga, gb) = gx
            .batch_norm_backward_reduce(&gdy, (&gm, &gv), 1e-5)
            .unwrap();
        let (ca, cb) = cx
            .batch_norm_backward_reduce(&cdy, (&cm, &cv), 1e-5)
            .unwrap();
        let n = count as f64;
        let xhat_max = 4.0 / (min_var + 1e-5).sqrt();
        assert_tensors_close(
            &format!("bn Σdy {dims:?}"),
            &ga,
            &ca,
            precision::sum(depth, n),
        );
        assert_tensors_close(
            &format!("bn Σdy·x̂ {dims:?}"),
            &gb,
            &cb,
            precision::sum(depth + 10, xhat_max * n),
        );

        // dx = γ·inv_std·(dy − Σdy/n − x̂·Σ(dy·x̂)/n) from the CPU's sums on both sides: each
        // term a handful of roundings on values ≤ 1 + 1 + x̂max², scaled by γ·inv_std.
        let (sa, sb) = (to_gpu(&ca), to_gpu(&cb));
        let gdx = gx
            .batch_norm_backward_input(&gdy, (&gm, &gv, &ggamma), (&sa, &sb), 1e-5)
            .unwrap();
        let cdx = cx
            .batch_norm_backward_input(&cdy, (&cm, &cv, &cgamma), (&ca, &cb), 1e-5)
            .unwrap();
        let dx_tol = precision::batch_norm_map(scale * (2.0 + xhat_max * xhat_max));
        assert_tensors_close(&format!("bn dx {dims:?}"), &gdx, &cdx, dx_tol);
    }
}
