//! Layers, initialisers and optimisers: hand-computed optimiser steps, initialiser statistics,
//! an MLP overfitting a tiny set, GPU-vs-CPU training parity, and construction errors.

mod common;
use common::*;
use kiln::nn::init::Fan;
use kiln::prelude::*;

/// One scalar parameter driven by a fixed gradient sequence; returns its values.
fn run_scalar<O: Optimizer<CpuBackend>>(mut opt: O, grads: &[f32]) -> Vec<f32> {
    let c = cpu();
    let p = Parameter::new("w", Tensor::from_vec(vec![1.0f32], [1], &c).unwrap());
    let mut out = Vec::new();
    for &g in grads {
        // d(g·w)/dw = g: a loss whose gradient is exactly g.
        let gv = Var::constant(Tensor::from_vec(vec![g], [1], &c).unwrap());
        p.zero_grad();
        p.var()
            .mul(&gv)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        opt.step(std::slice::from_ref(&p)).unwrap();
        out.push(p.value().to_vec::<f32>().unwrap()[0]);
    }
    out
}

const GRADS: [f32; 4] = [0.5, -0.25, 1.0, 0.125];

fn close(actual: &[f32], expected: &[f64]) {
    for (a, e) in actual.iter().zip(expected) {
        assert!((*a as f64 - e).abs() < 1e-6, "{actual:?} vs {expected:?}");
    }
}

#[test]
fn sgd_momentum_and_nesterov_match_hand_computed_steps() {
    // PyTorch's SGD: v ← μv + g (v = g at the first step); w ← w − lr·v, or w − lr·(g + μv).
    let (lr, mu) = (0.1f64, 0.9f64);
    let (mut w_plain, mut w_mom, mut w_nest, mut v_mom, mut v_nest) =
        (1.0f64, 1.0f64, 1.0f64, 0.0f64, 0.0f64);
    let (mut plain, mut mom, mut nest) = (vec![], vec![], vec![]);
    for (i, &g) in GRADS.iter().enumerate() {
        let g = g as f64;
        w_plain -= lr * g;
        v_mom = if i == 0 { g } else { mu * v_mom + g };
        w_mom -= lr * v_mom;
        v_nest = if i == 0 { g } else { mu * v_nest + g };
        w_nest -= lr * (g + mu * v_nest);
        plain.push(w_plain);
        mom.push(w_mom);
        nest.push(w_nest);
    }
    // Spelled out for the first two momentum steps: w1 = 1 − 0.1·0.5 = 0.95;
    // v2 = 0.9·0.5 − 0.25 = 0.2, w2 = 0.95 − 0.02 = 0.93.
    assert!((mom[0] - 0.95).abs() < 1e-12 && (mom[1] - 0.93).abs() < 1e-12);
    close(&run_scalar(Sgd::new(0.1).unwrap(), &GRADS), &plain);
    close(
        &run_scalar(Sgd::new(0.1).unwrap().momentum(0.9).unwrap(), &GRADS),
        &mom,
    );
    close(
        &run_scalar(Sgd::new(0.1).unwrap().nesterov(0.9).unwrap(), &GRADS),
        &nest,
    );
}

#[test]
fn adam_and_adamw_match_hand_computed_steps() {
    let (lr, b1, b2, eps, wd) = (
        0.01f64,
        0.9f32 as f64,
        0.999f32 as f64,
        1e-8f32 as f64,
        0.1f32 as f64,
    );
    for decoupled in [false, true] {
        let (mut w, mut m, mut v) = (1.0f64, 0.0f64, 0.0f64);
        let mut expected = vec![];
        for (t, &g) in GRADS.iter().enumerate() {
            let mut g = g as f64;
            if decoupled {
                w *= 1.0 - lr * wd;
            } else {
                g += wd * w;
            }
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let t = (t + 1) as i32;
            w -= lr * (m / (1.0 - b1.powi(t))) / ((v / (1.0 - b2.powi(t))).sqrt() + eps);
            expected.push(w);
        }
        let opt = if decoupled {
            Adam::adamw(0.01, 0.1).unwrap()
        } else {
            Adam::new(0.01).unwrap().weight_decay(0.1).unwrap()
        };
        close(&run_scalar(opt, &GRADS), &expected);
    }
}

#[test]
fn initialisers_have_the_stated_statistics_and_are_seeded() {
    let c = cpu();
    let (fan_in, fan_out) = (400usize, 300usize);
    let stats = |t: &Tensor<CpuBackend>| {
        let v = t.to_vec::<f64>().unwrap();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        (mean, std, max)
    };
    let n = (fan_in * fan_out) as f64;
    let he = Init::HeNormal(Fan::In)
        .tensor([fan_in, fan_out], fan_in, fan_out, 1, &c)
        .unwrap();
    let (mean, std, _) = stats(&he);
    let target = (2.0 / fan_in as f64).sqrt();
    // Sample std of n normals has relative standard error 1/√(2n) ≈ 0.0013; allow 5×.
    assert!(
        mean.abs() < 5.0 * target / n.sqrt() && (std / target - 1.0).abs() < 0.007,
        "He normal: mean {mean}, std {std} vs {target}"
    );
    let xu = Init::XavierUniform
        .tensor([fan_in, fan_out], fan_in, fan_out, 2, &c)
        .unwrap();
    let (_, std, max) = stats(&xu);
    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
    assert!(
        max <= a && (std / (a / 3f64.sqrt()) - 1.0).abs() < 0.01,
        "Xavier uniform: std {std}, bound {a}"
    );
    // The other initialisers, each against its stated spread: (init, std, uniform bound).
    // fan_in ≠ fan_out, so a fan mix-up shows.
    let normal = |std: f64| (std, None);
    let uniform = |a: f64| (a / 3f64.sqrt(), Some(a));
    let sum = (fan_in + fan_out) as f64;
    for (seed, (init, (std, bound))) in [
        (Init::XavierNormal, normal((2.0 / sum).sqrt())),
        (
            Init::HeNormal(Fan::Out),
            normal((2.0 / fan_out as f64).sqrt()),
        ),
        (
            Init::HeUniform(Fan::In),
            uniform((6.0 / fan_in as f64).sqrt()),
        ),
        (
            Init::HeUniform(Fan::Out),
            uniform((6.0 / fan_out as f64).sqrt()),
        ),
        (Init::Normal { std: 0.01 }, normal(0.01)),
    ]
    .into_iter()
    .enumerate()
    {
        let t = init
            .tensor([fan_in, fan_out], fan_in, fan_out, 10 + seed as u64, &c)
            .unwrap();
        let (mean, got, max) = stats(&t);
        // Relative standard error of a sample std: 1/√(2n) for normals (0.0013), less for
        // uniforms; allow 5×.
        assert!(
            mean.abs() < 5.0 * std / n.sqrt() && (got / std - 1.0).abs() < 0.007,
            "{init:?}: mean {mean}, std {got} vs {std}"
        );
        if let Some(a) = bound {
            assert!(max <= a, "{init:?}: |w| up to {max} beyond {a}");
        }
    }
    let again = Init::HeNormal(Fan::In)
        .tensor([fan_in, fan_out], fan_in, fan_out, 1, &c)
        .unwrap();
    assert_eq!(
        he.to_vec::<f32>().unwrap(),
        again.to_vec::<f32>().unwrap(),
        "same seed, same weights"
    );
    assert!(!Init::Constant(0.5).breaks_symmetry());
}

/// Trains `model` on (x, labels) with Adam; returns the losses.
fn train<B: Backend>(
    model: &Sequential<B>,
    x: &Tensor<B>,
    labels: &Tensor<B>,
    steps: usize,
    lr: f32,
) -> Vec<f64> {
    let mut opt = Adam::new(lr).unwrap();
    let params = model.parameters();
    let mut losses = Vec::new();
    for _ in 0..steps {
        model.zero_grad();
        let loss = model
            .forward(&Var::constant(x.clone()))
            .unwrap()
            .softmax_xent(labels)
            .unwrap()
            .mean_all()
            .unwrap();
        loss.backward().unwrap();
        opt.step(&params).unwrap();
        losses.push(loss.value().item().unwrap());
    }
    losses
}

#[test]
fn an_mlp_overfits_twenty_samples() {
    let c = cpu();
    let x = Tensor::rand_normal([20, 12], 0.0, 1.0, RngState { seed: 5, offset: 0 }, &c).unwrap();
    let labels = Tensor::from_vec((0..20u32).map(|i| i % 4).collect::<Vec<_>>(), [20], &c).unwrap();
    let model = Mlp::new(&[12, 32, 32, 4]).seed(3).build(&c).unwrap();
    let losses = train(&model, &x, &labels, 300, 0.01);
    assert!(
        (losses[0] - 4f64.ln()).abs() < 0.7,
        "initial loss {} should be near ln 4",
        losses[0]
    );
    assert!(
        *losses.last().unwrap() < 0.01,
        "final loss {}",
        losses.last().unwrap()
    );
}

#[test]
fn twenty_training_steps_match_on_gpu_and_cpu() {
    let Some(gpu) = gpu() else { return };
    let c = cpu();
    let rng = RngState { seed: 9, offset: 0 };
    let labels: Vec<u32> = (0..16u32).map(|i| i % 3).collect();
    let xg = Tensor::rand_normal([16, 10], 0.0, 1.0, rng, &gpu).unwrap();
    let xc = Tensor::from_host(&xg.to_host().unwrap(), [16, 10], &c).unwrap();
    let mg = Mlp::new(&[10, 24, 3]).seed(4).build(&gpu).unwrap();
    let mc = Mlp::new(&[10, 24, 3]).seed(4).build(&c).unwrap();
    let lg = train(
        &mg,
        &xg,
        &Tensor::from_slice(&labels, [16], &gpu).unwrap(),
        20,
        0.01,
    );
    let lc = train(
        &mc,
        &xc,
        &Tensor::from_slice(&labels, [16], &c).unwrap(),
        20,
        0.01,
    );
    assert_close("losses over 20 steps", &lg, &lc, TRAINING_GPU_VS_CPU);
    for (pg, pc) in mg.parameters().iter().zip(mc.parameters()) {
        assert_close(
            pg.name(),
            &values(pg.value().to_host().unwrap()),
            &values(pc.value().to_host().unwrap()),
            TRAINING_GPU_VS_CPU,
        );
    }
}

#[test]
fn bad_hyperparameters_are_errors_naming_the_parameter() {
    let c = cpu();
    let err = Sgd::<CpuBackend>::new(-0.1).err().unwrap().to_string();
    assert!(
        err.contains("learning rate") && err.contains("-0.1") && err.contains("(0, ∞)"),
        "{err}"
    );
    let err = Adam::<CpuBackend>::new(0.1)
        .unwrap()
        .betas(1.0, 0.999)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("beta1") && err.contains("[0, 1)"), "{err}");
    let err = Sgd::<CpuBackend>::new(0.1)
        .unwrap()
        .momentum(1.5)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("momentum"), "{err}");
    let err = Linear::new("fc", 0, 3, Init::XavierUniform, None, 1, &c)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("fc width") && err.contains("0→3"), "{err}");
    let err = Mlp::new(&[5]).build(&c).err().unwrap().to_string();
    assert!(err.contains("widths"), "{err}");
}

#[test]
fn mlp_builder_places_batch_norm_and_dropout_and_switches_modes() {
    let c = cpu();
    let mut model = Mlp::new(&[6, 16, 16, 3])
        .batch_norm(true)
        .dropout(0.5)
        .seed(2)
        .build(&c)
        .unwrap();
    // Per hidden layer: linear, batch norm, activation, dropout; then the output layer.
    assert_eq!(model.len(), 9);
    let names: Vec<String> = model
        .parameters()
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    assert!(
        names.contains(&"layer0.bn.gamma".to_string())
            && names.contains(&"layer2.weight".to_string()),
        "{names:?}"
    );
    let x = Var::constant(
        Tensor::rand_normal([8, 6], 0.0, 1.0, RngState { seed: 3, offset: 0 }, &c).unwrap(),
    );
    let a = model.forward(&x).unwrap().value().to_vec::<f32>().unwrap();
    let b = model.forward(&x).unwrap().value().to_vec::<f32>().unwrap();
    assert_ne!(a, b, "training: fresh dropout masks");
    model.set_training(false);
    let a = model.forward(&x).unwrap().value().to_vec::<f32>().unwrap();
    let b = model.forward(&x).unwrap().value().to_vec::<f32>().unwrap();
    assert_eq!(a, b, "evaluation is deterministic");
    assert!(Mlp::new(&[4, 2]).dropout(1.0).build(&c).is_err());
}
