//! GPU vs CPU, the activation family: the unary ops' derivatives (also at extreme inputs) and
//! PReLU with its gradients.

mod common;
use common::*;
use kiln::prelude::*;

#[test]
fn unary_backward_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    for op in UnaryOp::ALL {
        let (low, high) = input_range(op);
        // 1000 runs the vec4 kernel.
        for &n in &[1usize, 33, 1000] {
            let x = random_vec(n as u64, n, low, high);
            let dy = random_vec(n as u64 + 1, n, -1.0, 1.0);
            let (gx, cx) = pair(&x, &[n], &gpu);
            let (gdy, cdy) = pair(&dy, &[n], &gpu);
            let g = gx.unary_backward(op, &gdy).unwrap();
            let c = cx.unary_backward(op, &cdy).unwrap();
            assert_tensors_close(
                &format!("{op:?}' n={n}"),
                &g,
                &c,
                precision::unary_derivative(op, 4.0),
            );
        }
    }
}

#[test]
fn activations_are_finite_and_match_at_extreme_inputs() {
    let Some(gpu) = gpu() else { return };
    let data = [-100.0f32, -80.0, -20.0, -1e-7, 0.0, 1e-7, 20.0, 80.0, 100.0];
    let (g, c) = pair(&data, &[data.len()], &gpu);
    for op in [
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Softplus,
        UnaryOp::Elu { alpha: 1.0 },
        UnaryOp::Relu,
        UnaryOp::HardTanh,
    ] {
        let gv = values(g.unary(op).unwrap().to_host().unwrap());
        assert!(
            gv.iter().all(|v| v.is_finite()),
            "{op:?} gave a non-finite value: {gv:?}"
        );
        assert_tensors_close(
            &format!("{op:?} extremes"),
            &g.unary(op).unwrap(),
            &c.unary(op).unwrap(),
            precision::unary(op, 100.0),
        );
        let ones = Tensor::ones([data.len()], DType::F32, &gpu).unwrap();
        let d = values(g.unary_backward(op, &ones).unwrap().to_host().unwrap());
        assert!(
            d.iter().all(|v| v.is_finite()),
            "{op:?}' gave a non-finite value: {d:?}"
        );
    }
}

#[test]
fn prelu_and_its_gradients_match() {
    let Some(gpu) = gpu() else { return };
    for &(n, ch, inner) in &[
        (1usize, 1usize, 1usize),
        (17, 33, 1),
        (3, 5, 7),
        (257, 3, 1),
    ] {
        let shape: Vec<usize> = if inner == 1 {
            vec![n, ch]
        } else {
            vec![n, ch, inner]
        };
        let numel = n * ch * inner;
        let x = random_vec(numel as u64, numel, -2.0, 2.0);
        let alpha = random_vec(ch as u64 + 9, ch, 0.0, 0.5);
        let dy = random_vec(numel as u64 + 2, numel, -1.0, 1.0);
        let (gx, cx) = pair(&x, &shape, &gpu);
        let (ga, ca) = pair(&alpha, &[ch], &gpu);
        let (gdy, cdy) = pair(&dy, &shape, &gpu);
        assert_tensors_close(
            "prelu",
            &gx.prelu(&ga).unwrap(),
            &cx.prelu(&ca).unwrap(),
            ROUNDED,
        );
        let (gdx, gda) = gx.prelu_backward(&ga, &gdy).unwrap();
        let (cdx, cda) = cx.prelu_backward(&ca, &cdy).unwrap();
        assert_tensors_close("prelu dx", &gdx, &cdx, ROUNDED);
        // dα[c] = Σ x·dy over n·inner terms of |x·dy| ≤ 2, each product rounded once more.
        let terms = n * inner;
        let dalpha = precision::sum(precision::row_sum_depth(terms) + 1, 2.0 * terms as f64);
        assert_tensors_close("prelu dalpha", &gda, &cda, dalpha);
    }
}
