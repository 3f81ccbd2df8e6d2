//! GPU vs CPU, the optim family: the fused Adam/AdamW, SGD and AdaGrad/RMSProp steps, gated
//! and not, and their refusals.

mod common;
use common::*;
use kiln::prelude::*;

#[test]
fn fused_adam_and_adamw_steps_match_over_several_steps() {
    let Some(gpu) = gpu() else { return };
    // 1000 and 4096 run the vec4 kernel, 1, 257 and 70 001 the scalar one.
    for (decoupled, n) in [
        (false, 1),
        (false, 1000),
        (true, 257),
        (true, 4096),
        (false, 70_001),
    ] {
        let w = random_vec(21, n, -1.0, 1.0);
        let (gw, cw) = pair(&w, &[n], &gpu);
        let zeros = vec![0.0f32; n];
        let (gm, cm) = pair(&zeros, &[n], &gpu);
        let (gv, cv) = pair(&zeros, &[n], &gpu);
        for step in 1..=5u32 {
            let grad = random_vec(100 + step as u64, n, -1.0, 1.0);
            let (gg, cg) = pair(&grad, &[n], &gpu);
            let s = AdamStep {
                lr: 1e-2,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.1,
                decoupled,
                step,
            };
            gw.adam_step(&gg, &gm, &gv, &s).unwrap();
            cw.adam_step(&cg, &cm, &cv, &s).unwrap();
        }
        let tol = precision::optimizer_steps(5);
        assert_tensors_close(&format!("adam param decoupled={decoupled}"), &gw, &cw, tol);
        assert_tensors_close("adam m", &gm, &cm, tol);
        assert_tensors_close("adam v", &gv, &cv, tol);
    }
}

#[test]
fn fused_sgd_steps_match_with_and_without_momentum() {
    let Some(gpu) = gpu() else { return };
    for (momentum, nesterov) in [(0.0, false), (0.9, false), (0.8, true)] {
        for n in [1, 33, 1000, 70_001] {
            let w = random_vec(31, n, -1.0, 1.0);
            let (gw, cw) = pair(&w, &[n], &gpu);
            let zeros = vec![0.0f32; n];
            let (gvel, cvel) = pair(&zeros, &[n], &gpu);
            let s = SgdStep {
                lr: 0.05,
                momentum,
                nesterov,
                weight_decay: 0.01,
            };
            for step in 1..=5u64 {
                let grad = random_vec(200 + step, n, -1.0, 1.0);
                let (gg, cg) = pair(&grad, &[n], &gpu);
                let (gv, cv) = if momentum == 0.0 {
                    (None, None)
                } else {
                    (Some(&gvel), Some(&cvel))
                };
                gw.sgd_step(&gg, gv, &s).unwrap();
                cw.sgd_step(&cg, cv, &s).unwrap();
            }
            let what = format!("sgd momentum={momentum} nesterov={nesterov} n={n}");
            let tol = precision::optimizer_steps(5);
            assert_tensors_close(&what, &gw, &cw, tol);
            assert_tensors_close(&format!("{what} velocity"), &gvel, &cvel, tol);
        }
    }
}

#[test]
fn fused_adagrad_and_rmsprop_steps_match() {
    let Some(gpu) = gpu() else { return };
    for (decay, gain) in [(1.0, 1.0), (0.9, 0.1)] {
        for n in [1, 257, 70_001] {
            let w = random_vec(41, n, -1.0, 1.0);
            let (gw, cw) = pair(&w, &[n], &gpu);
            let zeros = vec![0.0f32; n];
            let (gs, cs) = pair(&zeros, &[n], &gpu);
            let s = AdaptiveStep {
                lr: 0.01,
                eps: 1e-8,
                weight_decay: 0.01,
                decay,
                gain,
            };
            for step in 1..=5u64 {
                let grad = random_vec(300 + step, n, -1.0, 1.0);
                let (gg, cg) = pair(&grad, &[n], &gpu);
                gw.adaptive_step(&gg, &gs, &s).unwrap();
                cw.adaptive_step(&cg, &cs, &s).unwrap();
            }
            let what = format!("adaptive decay={decay} n={n}");
            let tol = precision::optimizer_steps(5);
            assert_tensors_close(&what, &gw, &cw, tol);
            assert_tensors_close(&format!("{what} accumulator"), &gs, &cs, tol);
        }
    }
}

#[test]
fn in_place_steps_reject_views_and_missing_velocity() {
    let c = cpu();
    let w = Tensor::zeros([4, 4], DType::F32, &c).unwrap();
    let g = Tensor::ones([4, 4], DType::F32, &c).unwrap();
    let s = SgdStep {
        lr: 0.1,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
    };
    let err = w.sgd_step(&g, None, &s).unwrap_err().to_string();
    assert!(err.contains("velocity"), "{err}");
    let view = w.t().unwrap();
    let v = Tensor::zeros([4, 4], DType::F32, &c).unwrap();
    let err = view.sgd_step(&g, Some(&v), &s).unwrap_err().to_string();
    assert!(err.contains("contiguous"), "{err}");
    let wrong = Tensor::zeros([4, 3], DType::F32, &c).unwrap();
    let err = w.sgd_step(&g, Some(&wrong), &s).unwrap_err().to_string();
    assert!(err.contains("velocity"), "{err}");
    let err = w
        .adaptive_step(
            &g,
            &g,
            &AdaptiveStep {
                lr: 0.1,
                eps: 1e-8,
                weight_decay: 0.0,
                decay: 1.0,
                gain: 1.0,
            },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("distinct"), "{err}");
}

#[test]
fn gated_adam_counts_only_the_steps_taken_like_the_cpu() {
    // After a loss scaler skipped 3 of 40 steps, Adam's bias corrections use t = 37: computed on
    // the device (β^t by repeated squaring) and on the CPU (in f64).
    let Some(gpu) = gpu() else { return };
    let n = 1000;
    let (gw, cw) = pair(&random_vec(61, n, -1.0, 1.0), &[n], &gpu);
    let (gg, cg) = pair(&random_vec(62, n, -1.0, 1.0), &[n], &gpu);
    let (gm, cm) = pair(&random_vec(63, n, -0.1, 0.1), &[n], &gpu);
    let (gv, cv) = pair(&random_vec(64, n, 0.005, 0.01), &[n], &gpu);
    let flags = [0u32, 3, 0];
    let gflags = Tensor::from_slice(&flags, [3], &gpu).unwrap();
    let cflags = Tensor::from_slice(&flags, [3], &cpu()).unwrap();
    let s = AdamStep {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: true,
        step: 40,
    };
    gw.adam_step_gated(&gg, &gm, &gv, &s, Some(&gflags))
        .unwrap();
    cw.adam_step_gated(&cg, &cm, &cv, &s, Some(&cflags))
        .unwrap();
    // v ≥ 0.005 keeps |m̂/√v̂| < 1: every term of the update is below 1, as the table assumes.
    let tol = precision::optimizer_steps(1);
    assert_tensors_close("gated adam param", &gw, &cw, tol);
    assert_tensors_close("gated adam m", &gm, &cm, tol);
    assert_tensors_close("gated adam v", &gv, &cv, tol);
}
