//! GPU vs CPU, the softmax_xent family: softmax and log-softmax, and the fused softmax
//! cross-entropy against labels and soft targets, forward and backward.

mod common;
use common::*;
use kiln::prelude::*;

fn labels(seed: u64, rows: usize, classes: usize) -> Vec<u32> {
    random_vec(seed, rows, 0.0, classes as f32)
        .into_iter()
        .map(|v| (v as u32).min(classes as u32 - 1))
        .collect()
}

fn label_pair(l: &[u32], gpu: &WgpuBackend) -> (Tensor<WgpuBackend>, Tensor<CpuBackend>) {
    (
        Tensor::from_slice(l, [l.len()], gpu).unwrap(),
        Tensor::from_slice(l, [l.len()], &cpu()).unwrap(),
    )
}

/// Rows of probabilities (positive, summing to 1).
fn soft_targets(seed: u64, rows: usize, cols: usize) -> Vec<f32> {
    let raw = random_vec(seed, rows * cols, 0.01, 1.0);
    raw.chunks(cols)
        .flat_map(|r| {
            let s: f32 = r.iter().sum();
            r.iter().map(move |v| v / s).collect::<Vec<_>>()
        })
        .collect()
}

/// Up to 64 columns the kernels take one invocation per row (the `_narrow` forms, 64 rows per
/// workgroup), beyond it a workgroup per row: both sides of the switch, and several workgroups
/// of narrow rows.
const ROW_SHAPES: [(usize, usize); 8] = [
    (1, 1),
    (3, 10),
    (17, 33),
    (127, 3),
    (130, 64),
    (5, 65),
    (33, 257),
    (4, 1000),
];

#[test]
fn softmax_and_log_softmax_match() {
    let Some(gpu) = gpu() else { return };
    for (i, &(r, c)) in ROW_SHAPES.iter().enumerate() {
        let x = random_vec(SEEDS[i % 3], r * c, -5.0, 5.0);
        let (g, cc) = pair(&x, &[r, c], &gpu);
        let tol = precision::softmax(c, 10.0);
        assert_tensors_close(
            &format!("softmax {r}×{c}"),
            &g.softmax().unwrap(),
            &cc.softmax().unwrap(),
            tol,
        );
        assert_tensors_close(
            &format!("log_softmax {r}×{c}"),
            &g.log_softmax().unwrap(),
            &cc.log_softmax().unwrap(),
            tol,
        );
    }
}

#[test]
fn softmax_is_stable_at_plus_minus_80() {
    let Some(gpu) = gpu() else { return };
    let x = [80.0f32, -80.0, 0.0, 80.0, 80.0, 80.0, -80.0, -80.0, -80.0];
    let (g, c) = pair(&x, &[3, 3], &gpu);
    let s = values(g.softmax().unwrap().to_host().unwrap());
    assert!(s.iter().all(|v| v.is_finite()), "{s:?}");
    let tol = precision::softmax(3, 160.0);
    assert_tensors_close(
        "softmax ±80",
        &g.softmax().unwrap(),
        &c.softmax().unwrap(),
        tol,
    );
    assert_tensors_close(
        "log_softmax ±80",
        &g.log_softmax().unwrap(),
        &c.log_softmax().unwrap(),
        tol,
    );
    let l = [1u32, 0, 2];
    let (gl, cl) = label_pair(&l, &gpu);
    assert_tensors_close(
        "xent ±80",
        &g.softmax_xent(&gl).unwrap(),
        &c.softmax_xent(&cl).unwrap(),
        tol,
    );
}

#[test]
fn cross_entropy_with_labels_forward_and_backward() {
    let Some(gpu) = gpu() else { return };
    for (i, &(r, c)) in ROW_SHAPES.iter().enumerate() {
        let x = random_vec(SEEDS[i % 3] + 1, r * c, -4.0, 4.0);
        let l = labels(i as u64, r, c);
        let g_rows = random_vec(i as u64 + 50, r, 0.0, 1.0);
        let (gx, cx) = pair(&x, &[r, c], &gpu);
        let (gl, cl) = label_pair(&l, &gpu);
        let (gg, cg) = pair(&g_rows, &[r], &gpu);
        let tol = precision::softmax(c, 8.0);
        assert_tensors_close(
            &format!("xent {r}×{c}"),
            &gx.softmax_xent(&gl).unwrap(),
            &cx.softmax_xent(&cl).unwrap(),
            tol,
        );
        assert_tensors_close(
            &format!("xent' {r}×{c}"),
            &gx.softmax_xent_backward(&gl, &gg).unwrap(),
            &cx.softmax_xent_backward(&cl, &cg).unwrap(),
            tol,
        );
    }
}

#[test]
fn a_label_out_of_range_gives_that_row_nan_on_the_gpu() {
    // Documented behaviour: the kernels cannot fail, so the row's loss and gradient are NaN
    // (the loop's loss check names it); the other rows are unaffected. Both kernel forms.
    let Some(gpu) = gpu() else { return };
    for cols in [10, 100] {
        let x = random_vec(5, 3 * cols, -2.0, 2.0);
        let g = Tensor::from_slice(&x, [3, cols], &gpu).unwrap();
        let l = Tensor::from_slice(&[1u32, cols as u32, 0], [3], &gpu).unwrap();
        let loss = g.softmax_xent(&l).unwrap().to_vec::<f32>().unwrap();
        assert!(
            loss[1].is_nan() && loss[0].is_finite() && loss[2].is_finite(),
            "{loss:?}"
        );
        let ones = Tensor::from_slice(&[1.0f32; 3], [3], &gpu).unwrap();
        let grad = g
            .softmax_xent_backward(&l, &ones)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert!(
            grad[cols..2 * cols].iter().all(|v| v.is_nan()),
            "cols {cols}"
        );
        assert!(grad[..cols]
            .iter()
            .chain(&grad[2 * cols..])
            .all(|v| v.is_finite()));
    }
}

#[test]
fn cross_entropy_with_soft_targets_forward_and_backward() {
    let Some(gpu) = gpu() else { return };
    for (i, &(r, c)) in ROW_SHAPES.iter().enumerate() {
        let x = random_vec(SEEDS[i % 3] + 2, r * c, -4.0, 4.0);
        let t = soft_targets(i as u64, r, c);
        let g_rows = vec![1.0 / r as f32; r];
        let (gx, cx) = pair(&x, &[r, c], &gpu);
        let (gt, ct) = pair(&t, &[r, c], &gpu);
        let (gg, cg) = pair(&g_rows, &[r], &gpu);
        let tol = precision::softmax(c, 8.0);
        assert_tensors_close(
            &format!("soft xent {r}×{c}"),
            &gx.softmax_xent(&gt).unwrap(),
            &cx.softmax_xent(&ct).unwrap(),
            tol,
        );
        assert_tensors_close(
            &format!("soft xent' {r}×{c}"),
            &gx.softmax_xent_backward(&gt, &gg).unwrap(),
            &cx.softmax_xent_backward(&ct, &cg).unwrap(),
            tol,
        );
    }
}

#[test]
fn fused_cross_entropy_equals_composed_log_softmax() {
    // Fused vs composed on the GPU: −log_softmax(x)[label] picked with a one-hot product.
    let Some(gpu) = gpu() else { return };
    let (r, c) = (33, 10);
    let x = random_vec(11, r * c, -3.0, 3.0);
    let l = labels(12, r, c);
    let onehot: Vec<f32> = l
        .iter()
        .flat_map(|&k| (0..c).map(move |j| (j == k as usize) as u8 as f32))
        .collect();
    let gx = Tensor::from_slice(&x, [r, c], &gpu).unwrap();
    let gl = Tensor::from_slice(&l, [r], &gpu).unwrap();
    let goh = Tensor::from_slice(&onehot, [r, c], &gpu).unwrap();
    let composed = (-(gx.log_softmax().unwrap() * &goh).unwrap().sum(1).unwrap()).unwrap();
    let fused = gx.softmax_xent(&gl).unwrap();
    assert_close(
        "fused vs composed",
        &values(fused.to_host().unwrap()),
        &values(composed.to_host().unwrap()),
        // Both sides on the GPU: the fused kernel's error and the composed ops' (log-softmax,
        // then a product and a 10-term row sum).
        precision::softmax(c, 6.0)
            .plus(precision::softmax(c, 6.0))
            .plus(precision::sum(c + 1, 6.0)),
    );
}
