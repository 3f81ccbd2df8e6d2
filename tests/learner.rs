//! The Learner with a module that is not an Mlp (a residual block of the test's own): it
//! trains to high accuracy, its monitors see the module's layers, its checkpoint loads back
//! into a fresh instance by name, and on the GPU the execution model holds (memory flat
//! across epochs, no submit per step).

mod common;
use common::*;
use kiln::nn::{Activation, BatchNorm1d, Dropout, Maxout, Prelu};
use kiln::prelude::*;
use kiln::tensor::UnaryOp;
use kiln::train::*;

/// input → h = relu(x·W1); h + relu(h·W2) (the residual block); logits = ·W3.
struct Residual<B: Backend> {
    input: Linear<B>,
    hidden: Linear<B>,
    output: Linear<B>,
}

impl<B: Backend> Residual<B> {
    fn new(features: usize, width: usize, classes: usize, seed: u64, backend: &B) -> Self {
        let relu = Some(UnaryOp::Relu);
        let layer = |name, i, o, act, s| {
            Linear::new(name, i, o, Init::HeNormal(Fan::In), act, seed + s, backend).unwrap()
        };
        Residual {
            input: layer("input", features, width, relu, 0),
            hidden: layer("hidden", width, width, relu, 1),
            output: layer("output", width, classes, None, 2),
        }
    }
}

impl<B: Backend> Module<B> for Residual<B> {
    fn forward(&self, x: &Var<B>) -> kiln::tensor::Result<Var<B>> {
        let h = self.input.forward(x)?;
        self.output.forward(&h.add(&self.hidden.forward(&h)?)?)
    }

    /// Each layer's output, so the monitors report all three.
    fn forward_each(&self, x: &Var<B>) -> kiln::tensor::Result<Vec<LayerOutput<B>>> {
        let h = self.input.forward(x)?;
        let f = self.hidden.forward(&h)?;
        let logits = self.output.forward(&h.add(&f)?)?;
        let relu = Some(UnaryOp::Relu);
        Ok(vec![
            LayerOutput {
                layer: "input".into(),
                activation: relu,
                value: h,
            },
            LayerOutput {
                layer: "hidden".into(),
                activation: relu,
                value: f,
            },
            LayerOutput {
                layer: "output".into(),
                activation: None,
                value: logits,
            },
        ])
    }

    fn parameters(&self) -> Vec<Parameter<B>> {
        [&self.input, &self.hidden, &self.output]
            .iter()
            .flat_map(|l| l.parameters())
            .collect()
    }
}

fn data() -> RunData {
    let settings = Learner::new().settings().clone();
    let settings = TrainConfig {
        validation: 80,
        ..settings
    };
    RunData::prepare(&quadrants(480, 1), quadrants(160, 2), &settings).unwrap()
}

fn learner<'a>() -> Learner<'a> {
    Learner::new()
        .epochs(4)
        .batch_size(40)
        .monitor_every(5)
        .early_stopping(0, true)
        .quiet(true)
}

#[test]
fn a_module_of_its_own_trains_and_its_checkpoint_loads_back() {
    let d = data();
    let out = temp_dir("learner");
    let model = Residual::new(64, 32, 4, 7, &cpu());
    let (mut model, outcome) = learner().out(&out).fit(&cpu(), model, &d).unwrap();
    assert!(outcome.test.accuracy >= 0.9, "{}", outcome.test.accuracy);
    assert!(initial_loss_is_plausible(outcome.initial_loss, 4));
    // The monitors saw the module's three layers.
    let layers: Vec<&str> = outcome.history[0]
        .layers
        .iter()
        .map(|l| l.layer.as_str())
        .collect();
    assert_eq!(layers, ["input", "hidden", "output"]);
    assert!(outcome.history[0].layers[1].dead_fraction.is_some());
    for file in [
        "metrics.jsonl",
        "report.svg",
        "checkpoint.safetensors",
        "config.json",
    ] {
        assert!(out.join(file).exists(), "{file}");
    }
    // A fresh instance (other initial weights) with the checkpoint's weights evaluates alike.
    let test = kiln::data::DeviceDataset::upload(&d.test, &d.normalization, &cpu(), None).unwrap();
    let mut fresh = Residual::new(64, 32, 4, 99, &cpu());
    let report = load_weights(&out.join("checkpoint.safetensors"), &mut fresh, true).unwrap();
    assert_eq!(report.loaded.len(), 6);
    let again = evaluate(&mut fresh, &test, 4, 256).unwrap();
    assert_eq!(again.accuracy, outcome.test.accuracy);
    assert_eq!(
        evaluate(&mut model, &test, 4, 256).unwrap().accuracy,
        again.accuracy
    );
    // The programs' --evaluate cannot build it, and says how to load it instead.
    let err = evaluate_checkpoint(&out.join("checkpoint.safetensors"), &d.test, &cpu())
        .unwrap_err()
        .to_string();
    assert!(err.contains("load_weights"), "{err}");
}

/// Five epochs of `model` on the GPU: no buffer or pipeline created after the first epoch,
/// and an epoch of 10 steps submits only for its end-of-epoch reads.
fn check_execution_model<M: Module<WgpuBackend>>(gpu: &WgpuBackend, model: M, layout: InputLayout) {
    let d = data();
    let peaks = std::cell::RefCell::new(Vec::new());
    let hook = Box::new(|_: &EpochRecord| {
        let c = gpu.counters();
        peaks.borrow_mut().push((
            c.pool_bytes,
            c.buffers_allocated,
            c.pipelines_built,
            c.submits,
        ));
    });
    learner()
        .epochs(5)
        .monitor_every(1000)
        .layout(layout)
        .on_epoch(hook)
        .fit(gpu, model, &d)
        .unwrap();
    let peaks = peaks.into_inner();
    assert_eq!(peaks.len(), 5);
    assert_eq!(
        (peaks[0].0, peaks[0].1, peaks[0].2),
        (peaks[4].0, peaks[4].1, peaks[4].2),
        "(pool bytes, buffers, pipelines, submits) after each epoch: {peaks:?}"
    );
    for w in peaks.windows(2) {
        let submits = w[1].3 - w[0].3;
        assert!(
            submits <= 3,
            "{submits} submits in an epoch of 10 steps: {peaks:?}"
        );
    }
}

#[test]
fn the_execution_model_holds_for_a_module_of_its_own() {
    let Some(gpu) = fresh_gpu() else { return };
    let model = Residual::new(64, 32, 4, 7, &gpu);
    check_execution_model(&gpu, model, InputLayout::Vectors);
}

#[test]
fn the_execution_model_holds_for_a_cnn() {
    use kiln::nn::{BatchNorm2d, Conv2d, Conv2dConfig, Flatten, Pool2d};
    let Some(gpu) = fresh_gpu() else { return };
    let conv = Conv2dConfig::new(1, 4, 3).padding(1).bias(false);
    let model = Sequential::new()
        .push(Conv2d::new("conv", conv, Init::HeNormal(Fan::In), 1, &gpu).unwrap())
        .push(BatchNorm2d::new("conv.bn", 4, &gpu).unwrap())
        .push(Activation(UnaryOp::Relu))
        .push(Pool2d::max(2))
        .push(Flatten)
        .push(Linear::new("fc", 64, 4, Init::Normal { std: 0.01 }, None, 2, &gpu).unwrap());
    check_execution_model(&gpu, model, InputLayout::Images);
}

#[test]
fn the_loss_is_the_callers_choice() {
    // With zero output weights the first scores are all 0, so the first step's loss is known
    // exactly: ln 4 for cross-entropy, mean((0 − onehot)²) = 1/4 for MSE, and 3 · margin = 3
    // for the multiclass hinge. Each then trains the module.
    let d = data();
    for (loss, first) in [
        (Loss::CrossEntropy, 4f64.ln()),
        (Loss::Mse, 0.25),
        (Loss::Hinge, 3.0),
    ] {
        let model = Residual::new(64, 32, 4, 7, &cpu());
        let w = model.output.parameters()[0].value();
        model.output.parameters()[0]
            .set(Tensor::zeros(w.dims().to_vec(), DType::F32, &cpu()).unwrap());
        let (_, outcome) = learner()
            .optimizer(OptimizerKind::Adam, 3e-3)
            .loss(loss)
            .fit(&cpu(), model, &d)
            .unwrap();
        assert!(
            (outcome.initial_loss - first).abs() < 1e-6,
            "{loss:?}: first loss {}",
            outcome.initial_loss
        );
        assert!(
            outcome.test.accuracy >= 0.9,
            "{loss:?}: {}",
            outcome.test.accuracy
        );
    }
}

/// Takes images [N, 1, 8, 8] (refusing anything else), flattens them, and runs the residual
/// module: what a convolutional front end will see.
struct FromImages<B: Backend>(Residual<B>);

impl<B: Backend> Module<B> for FromImages<B> {
    fn forward(&self, x: &Var<B>) -> kiln::tensor::Result<Var<B>> {
        let dims = x.shape().dims().to_vec();
        if dims.len() != 4 || dims[1..] != [1, 8, 8] {
            return Err(KilnError::invalid("FromImages", format!("got {dims:?}")));
        }
        self.0.forward(&x.reshape([dims[0], 64])?)
    }

    fn parameters(&self) -> Vec<Parameter<B>> {
        self.0.parameters()
    }
}

#[test]
fn image_batches_reach_the_model_as_n_c_h_w_with_augmentation() {
    let d = data();
    let model = FromImages(Residual::new(64, 32, 4, 7, &cpu()));
    let jitter = kiln::data::Augmentation {
        transforms: vec![Transform::Jitter],
        ..Default::default()
    };
    let (mut model, outcome) = learner()
        .layout(InputLayout::Images)
        .augmentation(jitter)
        .fit(&cpu(), model, &d)
        .unwrap();
    assert!(outcome.test.accuracy >= 0.9, "{}", outcome.test.accuracy);
    // Vectors are refused by the model: the layout is what reached it.
    let test = kiln::data::DeviceDataset::upload(&d.test, &d.normalization, &cpu(), None).unwrap();
    assert!(evaluate(&mut model, &test, 4, 256).is_err());
    let images = test.image_batches(true);
    assert_eq!(
        evaluate(&mut model, &images, 4, 256).unwrap().accuracy,
        outcome.test.accuracy
    );
}

/// A stack of every describable layer: PReLU, Maxout, BatchNorm1d, dropout, activations fused
/// and apart, nested sequences.
fn every_layer(backend: &CpuBackend) -> Sequential<CpuBackend> {
    let inner = Sequential::new()
        .push(
            BatchNorm1d::new("bn", 24, backend)
                .unwrap()
                .momentum(0.2)
                .unwrap(),
        )
        .push(Activation(UnaryOp::Elu { alpha: 1.0 }))
        .push(Dropout::new(0.1, 5).unwrap().named("drop"));
    Sequential::new()
        .push(
            Linear::new(
                "fc0",
                64,
                24,
                Init::HeNormal(Fan::In),
                Some(UnaryOp::LeakyRelu { alpha: 0.01 }),
                3,
                backend,
            )
            .unwrap(),
        )
        .push(inner)
        .push(Prelu::new("prelu", 24, 0.25, backend).unwrap())
        .push(Maxout::new("maxout", 24, 16, 3, Init::XavierUniform, 4, backend).unwrap())
        .push(Linear::new("out", 16, 4, Init::Normal { std: 0.01 }, None, 6, backend).unwrap())
}

#[test]
fn a_stack_of_kiln_layers_travels_in_its_checkpoint() {
    let d = data();
    let out = temp_dir("learner-layers");
    let model = every_layer(&cpu());
    let spec = model.spec().expect("every layer describes itself");
    // The description survives JSON and builds the same parameters and buffers.
    let json = serde_json::to_string(&spec).unwrap();
    let back: LayerSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, spec);
    let rebuilt = back.build(&cpu()).unwrap();
    let shapes = |params: Vec<Parameter<CpuBackend>>| -> Vec<(String, Vec<usize>)> {
        params
            .iter()
            .map(|p| (p.name().to_string(), p.value().dims().to_vec()))
            .collect()
    };
    assert_eq!(shapes(rebuilt.parameters()), shapes(model.parameters()));
    assert_eq!(rebuilt.spec(), Some(spec.clone()));
    assert_eq!(spec.widths(), [64, 24, 16, 4]);
    // Trained, its checkpoint evaluates from the file alone to the run's test accuracy.
    let (_, outcome) = learner().out(&out).fit(&cpu(), model, &d).unwrap();
    assert!(outcome.test.accuracy >= 0.9, "{}", outcome.test.accuracy);
    let checkpoint = out.join("checkpoint.safetensors");
    let evaluated = evaluate_checkpoint(&checkpoint, &d.test, &cpu()).unwrap();
    assert_eq!(evaluated.accuracy, outcome.test.accuracy);
    assert_eq!(evaluated.loss, outcome.test.loss);
    // Test-time flips need images; this model takes rows of features.
    let err = evaluate_checkpoint_with(&checkpoint, &d.test, &cpu(), Tta::Flip)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("image batches") && err.contains("[160, 64]"),
        "{err}"
    );
    // A module of the caller's own is not describable (the previous test covers its error).
    assert!(Residual::new(64, 32, 4, 7, &cpu()).spec().is_none());
}

#[test]
fn lbfgs_trains_full_batch_and_refuses_minibatches() {
    let settings = TrainConfig {
        validation: 80,
        limit_train: Some(200),
        ..Learner::new().settings().clone()
    };
    let d = RunData::prepare(&quadrants(480, 1), quadrants(160, 2), &settings).unwrap();
    let model = Mlp::new(&[64, 16, 4]).seed(2).build(&cpu()).unwrap();
    let full_batch = learner()
        .epochs(3)
        .batch_size(200)
        .optimizer(OptimizerKind::Lbfgs, 1.0);
    let (_, outcome) = full_batch.fit(&cpu(), model, &d).unwrap();
    let losses: Vec<f64> = outcome.history.iter().map(|r| r.train_loss).collect();
    assert!(losses[2] < 0.5 * losses[0], "{losses:?}");
    assert!(outcome.test.accuracy >= 0.9, "{}", outcome.test.accuracy);
    let model = Mlp::new(&[64, 16, 4]).build(&cpu()).unwrap();
    let err = learner()
        .optimizer(OptimizerKind::Lbfgs, 1.0)
        .fit(&cpu(), model, &d)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("full-batch") && err.contains("--batch-size 40 for 200 training samples"),
        "{err}"
    );
}
