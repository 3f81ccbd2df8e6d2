//! Every optimiser: GPU-vs-CPU training parity over 20 steps, state save/restore (identical
//! continuation, mismatch errors), and L-BFGS on the Rosenbrock function.

mod common;
use common::*;
use kiln::prelude::*;

const KINDS: [&str; 7] = [
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw",
];

fn optimizer<B: Backend>(kind: &str) -> Box<dyn Optimizer<B>> {
    match kind {
        "sgd" => Box::new(Sgd::new(0.1).unwrap().weight_decay(1e-3).unwrap()),
        "momentum" => Box::new(Sgd::new(0.05).unwrap().momentum(0.9).unwrap()),
        "nesterov" => Box::new(Sgd::new(0.05).unwrap().nesterov(0.9).unwrap()),
        "adagrad" => Box::new(adagrad(0.05).unwrap()),
        "rmsprop" => Box::new(rmsprop(0.005, 0.99).unwrap()),
        "adam" => Box::new(Adam::new(0.01).unwrap()),
        "adamw" => Box::new(Adam::adamw(0.01, 0.01).unwrap()),
        _ => unreachable!("unknown optimiser {kind}"),
    }
}

struct Problem<B: Backend> {
    model: Sequential<B>,
    x: Tensor<B>,
    labels: Tensor<B>,
}

fn problem<B: Backend>(backend: &B, widths: &[usize]) -> Problem<B> {
    let rng = RngState { seed: 9, offset: 0 };
    let x = Tensor::rand_normal([16, widths[0]], 0.0, 1.0, rng, &cpu()).unwrap();
    let labels: Vec<u32> = (0..16u32).map(|i| i % 3).collect();
    Problem {
        model: Mlp::new(widths).seed(4).build(backend).unwrap(),
        x: Tensor::from_host(&x.to_host().unwrap(), [16, widths[0]], backend).unwrap(),
        labels: Tensor::from_slice(&labels, [16], backend).unwrap(),
    }
}

/// `steps` training steps; returns the losses.
fn train<B: Backend>(p: &Problem<B>, opt: &mut dyn Optimizer<B>, steps: usize) -> Vec<f64> {
    let params = p.model.parameters();
    (0..steps)
        .map(|_| {
            p.model.zero_grad();
            let loss = p
                .model
                .forward(&Var::constant(p.x.clone()))
                .unwrap()
                .softmax_xent(&p.labels)
                .unwrap()
                .mean_all()
                .unwrap();
            loss.backward().unwrap();
            opt.step(&params).unwrap();
            loss.value().item().unwrap()
        })
        .collect()
}

fn parameter_values<B: Backend>(model: &Sequential<B>) -> Vec<Vec<f64>> {
    model
        .parameters()
        .iter()
        .map(|p| values(p.value().to_host().unwrap()))
        .collect()
}

#[test]
fn every_optimizer_trains_the_same_on_gpu_and_cpu_over_20_steps() {
    let Some(gpu) = gpu() else { return };
    for kind in KINDS {
        let pg = problem(&gpu, &[10, 24, 3]);
        let pc = problem(&cpu(), &[10, 24, 3]);
        let lg = train(&pg, optimizer(kind).as_mut(), 20);
        let lc = train(&pc, optimizer(kind).as_mut(), 20);
        assert!(
            lc[19] < lc[0],
            "{kind}: loss fell from {} to {}",
            lc[0],
            lc[19]
        );
        assert_close(&format!("{kind} losses"), &lg, &lc, TRAINING_GPU_VS_CPU);
        for (a, b) in parameter_values(&pg.model)
            .iter()
            .zip(parameter_values(&pc.model))
        {
            assert_close(&format!("{kind} parameters"), a, &b, TRAINING_GPU_VS_CPU);
        }
    }
}

/// Trains 5 steps, snapshots, trains 5 more; a fresh model and optimiser restored from the
/// snapshot must end at exactly the same parameters.
fn check_resume<B: Backend>(backend: &B, kind: &str) {
    let a = problem(backend, &[10, 24, 3]);
    let mut opt = optimizer::<B>(kind);
    train(&a, opt.as_mut(), 5);
    let saved_state = opt.state().unwrap();
    let saved_params: Vec<Tensor<B>> = a
        .model
        .parameters()
        .iter()
        .map(|p| p.value().deep_copy().unwrap())
        .collect();
    assert_eq!(saved_state.step, 5);
    let continued = train(&a, opt.as_mut(), 5);

    let b = problem(backend, &[10, 24, 3]);
    for (p, v) in b.model.parameters().iter().zip(&saved_params) {
        p.set(v.clone());
    }
    let mut restored = optimizer::<B>(kind);
    restored
        .load_state(&saved_state, &b.model.parameters())
        .unwrap();
    assert_eq!(restored.steps_taken(), 5);
    let resumed = train(&b, restored.as_mut(), 5);
    assert_eq!(continued, resumed, "{kind}: losses after resuming");
    assert_eq!(
        parameter_values(&a.model),
        parameter_values(&b.model),
        "{kind}: parameters after resuming"
    );
}

#[test]
fn restored_state_continues_exactly_like_an_uninterrupted_run() {
    for kind in KINDS {
        check_resume(&cpu(), kind);
    }
    if let Some(gpu) = gpu() {
        for kind in ["momentum", "rmsprop", "adam"] {
            check_resume(&gpu, kind);
        }
    }
}

#[test]
fn state_names_each_parameter_slot() {
    let p = problem(&cpu(), &[10, 24, 3]);
    let mut opt = optimizer::<CpuBackend>("adam");
    train(&p, opt.as_mut(), 1);
    let names: Vec<_> = opt.state().unwrap().tensors.into_keys().collect();
    assert_eq!(
        names,
        [
            "layer0.bias.m",
            "layer0.bias.v",
            "layer0.weight.m",
            "layer0.weight.v",
            "layer1.bias.m",
            "layer1.bias.v",
            "layer1.weight.m",
            "layer1.weight.v"
        ]
    );
}

#[test]
fn restoring_into_another_shape_lists_the_mismatched_tensors() {
    let small = problem(&cpu(), &[10, 24, 3]);
    let mut opt = optimizer::<CpuBackend>("adam");
    train(&small, opt.as_mut(), 2);
    let state = opt.state().unwrap();

    let wide = problem(&cpu(), &[10, 32, 3]);
    let mut other = optimizer::<CpuBackend>("adam");
    let err = other
        .load_state(&state, &wide.model.parameters())
        .unwrap_err()
        .to_string();
    for name in [
        "layer0.weight.m",
        "layer0.weight.v",
        "layer0.bias.m",
        "layer1.weight.v",
    ] {
        assert!(err.contains(name), "{name} missing from: {err}");
    }
    assert!(
        err.contains("[10, 24]") && err.contains("[10, 32]"),
        "{err}"
    );
    assert!(
        !err.contains("layer1.bias.m"),
        "layer1.bias fits and is not listed: {err}"
    );
    // The failed restore changed nothing: the optimiser is still fresh.
    assert_eq!(other.steps_taken(), 0);
    assert!(other.state().unwrap().tensors.is_empty());

    let mut sgd = optimizer::<CpuBackend>("momentum");
    let err = sgd
        .load_state(&state, &small.model.parameters())
        .unwrap_err()
        .to_string();
    assert!(err.contains("adam") && err.contains("sgd"), "{err}");
}

/// f(x, y) = (1 − x)² + 100 (y − x²)², minimum 0 at (1, 1).
fn rosenbrock<B: Backend>(p: &Parameter<B>) -> Result<Var<B>> {
    let v = p.var();
    let x = v.narrow(0, 0, 1)?;
    let y = v.narrow(0, 1, 1)?;
    let a = Var::scalar_binary(1.0, BinaryOp::Sub, &x)?.unary(UnaryOp::Square)?;
    let b = y
        .sub(&x.unary(UnaryOp::Square)?)?
        .unary(UnaryOp::Square)?
        .binary_scalar(BinaryOp::Mul, 100.0)?;
    a.add(&b)?.sum_all()
}

#[test]
fn lbfgs_reaches_the_rosenbrock_minimum() {
    let c = cpu();
    let p = Parameter::new("xy", Tensor::from_vec(vec![-1.2f64, 1.0], [2], &c).unwrap());
    let report = Lbfgs::new()
        .max_iterations(200)
        .tolerances(1e-10, 0.0)
        .unwrap()
        .minimize(std::slice::from_ref(&p), || rosenbrock(&p))
        .unwrap();
    let xy = p.value().to_vec::<f64>().unwrap();
    assert!(report.converged, "{report:?}");
    for v in &xy {
        assert!((v - 1.0).abs() < 1e-6, "minimum at {xy:?}, {report:?}");
    }
    assert!(report.loss < 1e-12, "{report:?}");

    // The same on the GPU in f32, to f32's resolution of this valley.
    if let Some(gpu) = gpu() {
        let p = Parameter::new(
            "xy",
            Tensor::from_vec(vec![-1.2f32, 1.0], [2], &gpu).unwrap(),
        );
        let report = Lbfgs::new()
            .max_iterations(200)
            .minimize(std::slice::from_ref(&p), || rosenbrock(&p))
            .unwrap();
        let xy = p.value().to_vec::<f32>().unwrap();
        for v in &xy {
            assert!((v - 1.0).abs() < 1e-3, "GPU minimum at {xy:?}, {report:?}");
        }
    }
}

#[test]
fn lbfgs_rejects_a_non_scalar_loss() {
    let c = cpu();
    let p = Parameter::new("w", Tensor::from_vec(vec![1.0f32, 2.0], [2], &c).unwrap());
    let err = Lbfgs::new()
        .minimize(std::slice::from_ref(&p), || Ok(p.var()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("scalar"), "{err}");
}
