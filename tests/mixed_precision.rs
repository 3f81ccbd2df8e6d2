//! Mixed precision: dynamic loss scaling on the device (the unscale and non-finite check, the
//! gated optimiser steps, the scale's rule) on both backends, and an MLP trained with f16
//! products and f32 master weights against the same MLP in f32.

mod common;
use common::*;
use kiln::prelude::*;

fn tensor<B: Backend>(v: &[f32], backend: &B) -> Tensor<B> {
    Tensor::from_slice(v, [v.len()], backend).unwrap()
}

fn host<B: Backend>(t: &Tensor<B>) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

/// An overflowing step is skipped (parameter and moments untouched) and halves the scale; the
/// next clean step is exactly Adam's first step on the unscaled gradient.
fn overflow_is_skipped_then_the_next_step_is_a_first_step<B: Backend>(backend: &B) {
    let rule = LossScaleRule {
        growth: 2.0,
        backoff: 0.5,
        interval: 1000,
    };
    let scaler = LossScaler::with_rule(1024.0, rule, backend).unwrap();
    let param = Parameter::new("w", tensor(&[1.0, -2.0, 3.0, 0.5, 0.25], backend));
    let params = [param.clone()];
    let mut adam = Adam::new(0.1).unwrap();

    param.set_grad(tensor(&[1.0, f32::INFINITY, 2.0, 0.0, -1.0], backend));
    scaler.unscale(&params).unwrap();
    scaler.step(&mut adam, &params).unwrap();
    assert_eq!(host(&param.value()), vec![1.0, -2.0, 3.0, 0.5, 0.25]);
    assert_eq!(scaler.read().unwrap(), (512.0, 1));

    // A NaN anywhere is an overflow too.
    param.set_grad(tensor(&[f32::NAN, 0.0, 0.0, 0.0, 0.0], backend));
    scaler.unscale(&params).unwrap();
    scaler.step(&mut adam, &params).unwrap();
    assert_eq!(host(&param.value()), vec![1.0, -2.0, 3.0, 0.5, 0.25]);
    assert_eq!(scaler.read().unwrap(), (256.0, 2));

    // Clean: the gradient is divided by 256, and Adam's bias corrections count one step taken,
    // so each element moves by lr · g / (|g| + ε) (Adam's first step).
    let scaled = [256.0, -512.0, 25.6, 0.0, 1e-3];
    param.set_grad(tensor(&scaled, backend));
    scaler.unscale(&params).unwrap();
    assert_close(
        "unscaled gradient",
        &values(param.grad().unwrap().to_host().unwrap()),
        &[1.0, -2.0, 0.1, 0.0, 1e-3 / 256.0],
        Tolerance::new("unscaled gradient", 1e-9, 1e-6),
    );
    scaler.step(&mut adam, &params).unwrap();
    assert_close(
        "first Adam step after two skips",
        &values(param.value().to_host().unwrap()),
        &[
            0.9,
            -1.9,
            2.9,
            0.5,
            0.25 - 0.1 * (1e-3 / 256.0) / (1e-3 / 256.0 + 1e-8),
        ],
        Tolerance::new("one Adam step", 1e-4, 1e-4),
    );
    assert_eq!(scaler.read().unwrap(), (256.0, 2));
}

#[test]
fn overflow_skips_the_step_and_backs_off_on_both_backends() {
    overflow_is_skipped_then_the_next_step_is_a_first_step(&cpu());
    if let Some(gpu) = gpu() {
        overflow_is_skipped_then_the_next_step_is_a_first_step(&gpu);
    }
}

/// `interval` clean steps in a row double the scale, up to 2²⁴; SGD and AdaGrad are gated too.
fn growth_and_every_gated_optimiser<B: Backend>(backend: &B) {
    let rule = LossScaleRule {
        growth: 2.0,
        backoff: 0.5,
        interval: 2,
    };
    let scaler = LossScaler::with_rule(4.0, rule, backend).unwrap();
    let param = Parameter::new("w", tensor(&[1.0, 2.0], backend));
    let params = [param.clone()];
    let mut optimizers: Vec<Box<dyn Optimizer<B>>> = vec![
        Box::new(Sgd::new(0.5).unwrap()),
        Box::new(Sgd::new(0.5).unwrap().momentum(0.9).unwrap()),
        Box::new(adagrad(0.5).unwrap()),
    ];
    let mut expected_scale = 4.0;
    for (i, opt) in optimizers.iter_mut().enumerate() {
        let before = host(&param.value());
        param.set_grad(tensor(&[f32::NEG_INFINITY, 1.0], backend));
        scaler.unscale(&params).unwrap();
        scaler.step(opt.as_mut(), &params).unwrap();
        expected_scale *= 0.5;
        assert_eq!(host(&param.value()), before, "optimiser {i} skipped");
        for _ in 0..2 {
            param.set_grad(tensor(&[expected_scale, expected_scale], backend));
            scaler.unscale(&params).unwrap();
            scaler.step(opt.as_mut(), &params).unwrap();
        }
        expected_scale *= 2.0;
        assert_ne!(host(&param.value()), before, "optimiser {i} stepped");
        assert_eq!(scaler.read().unwrap().0, expected_scale);
    }
    let capped = LossScaler::with_rule(1.6e7, rule, backend).unwrap();
    for _ in 0..4 {
        param.set_grad(tensor(&[0.0, 0.0], backend));
        capped.unscale(&params).unwrap();
        capped.step(&mut Sgd::new(0.1).unwrap(), &params).unwrap();
    }
    assert_eq!(capped.read().unwrap().0, 16_777_216.0);
}

#[test]
fn clean_steps_grow_the_scale_and_every_optimiser_is_gated() {
    growth_and_every_gated_optimiser(&cpu());
    if let Some(gpu) = gpu() {
        growth_and_every_gated_optimiser(&gpu);
    }
}

#[test]
fn bad_scaler_settings_and_tensors_are_errors() {
    let c = cpu();
    let bad = LossScaleRule {
        growth: 2.0,
        backoff: 1.5,
        interval: 10,
    };
    let err = LossScaler::with_rule(1.0, bad, &c)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("backoff 1.5") && err.contains("(0, 1)"),
        "{err}"
    );
    let g = tensor(&[1.0, 2.0], &c);
    let err = g
        .unscale_gradient(
            &tensor(&[1.0, 2.0], &c),
            &Tensor::zeros([3], DType::U32, &c).unwrap(),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("one f32"), "{err}");
    let err = g
        .unscale_gradient(&tensor(&[1.0], &c), &tensor(&[0.0, 0.0, 0.0], &c))
        .unwrap_err()
        .to_string();
    assert!(err.contains("three u32"), "{err}");
}

/// An MLP classifier on one fixed batch, trained in `precision` (with a loss scaler when mixed).
struct Classifier<B: Backend> {
    model: Sequential<B>,
    params: Vec<Parameter<B>>,
    adam: Adam<B>,
    scaler: LossScaler<B>,
    precision: Precision,
    x: Tensor<B>,
    labels: Tensor<B>,
}

impl<B: Backend> Classifier<B> {
    fn new(backend: &B, widths: &[usize], batch: usize, precision: Precision, lr: f32) -> Self {
        let rng = RngState { seed: 5, offset: 0 };
        let x = Tensor::rand_normal([batch, widths[0]], 0.0, 1.0, rng, &cpu()).unwrap();
        let classes = *widths.last().unwrap() as u32;
        let labels: Vec<u32> = (0..batch as u32).map(|i| i % classes).collect();
        let mut model = Mlp::new(widths).seed(2).build(backend).unwrap();
        model.set_precision(precision);
        Classifier {
            params: model.parameters(),
            model,
            adam: Adam::new(lr).unwrap(),
            scaler: LossScaler::new(backend).unwrap(),
            precision,
            x: Tensor::from_host(&x.to_host().unwrap(), [batch, widths[0]], backend).unwrap(),
            labels: Tensor::from_slice(&labels, [batch], backend).unwrap(),
        }
    }

    /// Records one training step; returns its loss (not read back).
    fn step(&mut self) -> Tensor<B> {
        self.model.zero_grad();
        let loss = self
            .model
            .forward(&Var::constant(self.x.clone()))
            .unwrap()
            .softmax_xent(&self.labels)
            .unwrap()
            .mean_all()
            .unwrap();
        match self.precision {
            Precision::F32 => {
                loss.backward().unwrap();
                self.adam.step(&self.params).unwrap();
            }
            Precision::Mixed => {
                let scaler = &self.scaler;
                scaler.scale_loss(&loss).unwrap().backward().unwrap();
                scaler.unscale(&self.params).unwrap();
                scaler.step(&mut self.adam, &self.params).unwrap();
            }
        }
        loss.value().clone()
    }
}

/// The losses of `steps` training steps of a 40-48-32-4 MLP in `precision`.
fn train<B: Backend>(backend: &B, precision: Precision, steps: usize) -> Vec<f64> {
    let mut classifier = Classifier::new(backend, &[40, 48, 32, 4], 64, precision, 3e-3);
    (0..steps)
        .map(|_| classifier.step().item().unwrap())
        .collect()
}

#[test]
fn a_mixed_precision_mlp_trains_like_the_f32_one() {
    let f32_losses = train(&cpu(), Precision::F32, 30);
    let mixed_cpu = train(&cpu(), Precision::Mixed, 30);
    assert!(mixed_cpu[29] < 0.5 * mixed_cpu[0], "{mixed_cpu:?}");
    // f16 products change the trajectory only slightly.
    assert_close(
        "mixed vs f32 losses (CPU)",
        &mixed_cpu,
        &f32_losses,
        precision::MIXED_VS_F32_TRAINING,
    );
    let Some(gpu) = gpu() else { return };
    let mixed_gpu = train(&gpu, Precision::Mixed, 30);
    assert_close(
        "mixed losses, GPU vs CPU",
        &mixed_gpu,
        &mixed_cpu,
        precision::training_steps(true),
    );
}

/// A mixed-precision step records without submitting or reading anything back.
#[test]
fn a_mixed_precision_step_reads_nothing_back() {
    let Some(_) = gpu() else { return };
    // A device of its own: the shared one counts the other tests' submits too.
    let gpu = WgpuBackend::new().unwrap();
    let mut classifier = Classifier::new(&gpu, &[20, 16, 3], 32, Precision::Mixed, 1e-3);
    // After a first step that builds the pipelines.
    classifier.step();
    gpu.sync().unwrap();
    let before = gpu.counters();
    for _ in 0..3 {
        classifier.step();
    }
    let after = gpu.counters();
    assert_eq!(after.readbacks, before.readbacks);
    assert_eq!(after.submits, before.submits);
}

/// A loss scale too large for f16: the scaled gradient of the logits overflows f16 in the
/// backward pass's casts, which give ±inf by rule on every driver, so the scaler sees it,
/// skips the step (parameters untouched) and halves the scale until the gradients fit.
fn an_f16_overflow_in_backward_is_caught_and_backed_off<B: Backend>(backend: &B) {
    let mut classifier = Classifier::new(backend, &[40, 48, 32, 4], 64, Precision::Mixed, 3e-3);
    let rule = LossScaleRule {
        growth: 2.0,
        backoff: 0.5,
        interval: 1000,
    };
    // |∂(2²⁴ · mean loss)/∂logit| ≈ 2²⁴ · 0.25 / 64 ≈ 65 000 · 1: beyond 65504 for some.
    classifier.scaler = LossScaler::with_rule(16_777_216.0, rule, backend).unwrap();
    let before: Vec<Vec<f32>> = classifier.params.iter().map(|p| host(&p.value())).collect();
    classifier.step();
    let (scale, skipped) = classifier.scaler.read().unwrap();
    assert_eq!((scale, skipped), (8_388_608.0, 1), "{}", backend.name());
    for (p, b) in classifier.params.iter().zip(&before) {
        assert_eq!(
            &host(&p.value()),
            b,
            "{}: {} untouched",
            backend.name(),
            p.name()
        );
    }
    let losses: Vec<f64> = (0..40).map(|_| classifier.step().item().unwrap()).collect();
    let (scale, skipped) = classifier.scaler.read().unwrap();
    assert!(
        scale < 8_388_608.0 && skipped < 41,
        "scale {scale}, {skipped} skipped"
    );
    assert!(losses[39] < losses[0], "{}: {losses:?}", backend.name());
}

#[test]
fn an_f16_overflow_is_caught_on_every_backend() {
    an_f16_overflow_in_backward_is_caught_and_backed_off(&cpu());
    if let Some(gpu) = gpu() {
        an_f16_overflow_in_backward_is_caught_and_backed_off(&gpu);
    }
}
