//! GPU vs CPU, the batch_norm family: per-column statistics and the backward reductions.

mod common;
use common::*;
use kiln::prelude::*;

#[test]
fn batch_norm_statistics_match_including_constant_columns() {
    let Some(gpu) = gpu() else { return };
    for &(r, c) in &[(1usize, 1usize), (3, 17), (256, 33), (17, 257), (1000, 3)] {
        let mut x = random_vec((r * c) as u64, r * c, -2.0, 2.0);
        // Column 0 is constant and large: a stable variance gives exactly 0 there.
        for row in 0..r {
            x[row * c] = 1000.5;
        }
        let (gx, cx) = pair(&x, &[r, c], &gpu);
        let (gm, gv) = gx.batch_norm_stats().unwrap();
        let (cm, cv) = cx.batch_norm_stats().unwrap();
        // Column sums of r terms (|x| ≤ 1000.5 in column 0, ≤ 2 elsewhere), divided by r; the
        // variance sums r squares of |x − mean| ≤ 4 after a subtraction and a multiply.
        let depth = precision::column_sum_depth(r);
        let mean_tol = precision::sum(depth, 1000.5);
        let var_tol = precision::sum(depth + 2, 16.0);
        assert_tensors_close(&format!("bn mean {r}×{c}"), &gm, &cm, mean_tol);
        assert_tensors_close(&format!("bn var {r}×{c}"), &gv, &cv, var_tol);
        // Two passes, not E[x²] − E[x]² (which would leave ~0.1 here): the constant column's
        // variance is the square of the mean's own error, at most a few ULP of 1000.5.
        let constant_var = gv.to_vec::<f32>().unwrap()[0] as f64;
        assert!(
            constant_var <= (4.0 * ULP * 1000.5f64).powi(2),
            "constant column variance {constant_var}"
        );

        // The backward reductions take the same statistics on both sides (the CPU's), so
        // they compare the kernel alone: Σ dy, and Σ dy·x̂ whose terms are a subtraction, a
        // sqrt, a division and two products each (≤ 10 ULP), with |x̂| ≤ 2/σ < 2.
        let dy = random_vec((r * c) as u64 + 3, r * c, -1.0, 1.0);
        let (gdy, cdy) = pair(&dy, &[r, c], &gpu);
        let to_gpu =
            |t: &Tensor<CpuBackend>| Tensor::from_host(&t.to_host().unwrap(), [c], &gpu).unwrap();
        let (ga, gb) = gx
            .batch_norm_backward_reduce(&gdy, &to_gpu(&cm), &to_gpu(&cv), 1e-5)
            .unwrap();
        let (ca, cb) = cx.batch_norm_backward_reduce(&cdy, &cm, &cv, 1e-5).unwrap();
        let rows = r as f64;
        assert_tensors_close(
            &format!("bn Σdy {r}×{c}"),
            &ga,
            &ca,
            precision::sum(depth, rows),
        );
        assert_tensors_close(
            &format!("bn Σdy·x̂ {r}×{c}"),
            &gb,
            &cb,
            precision::sum(depth + 10, 2.0 * rows),
        );
    }
}
