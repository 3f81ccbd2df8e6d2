//! The trainer end to end on a small generated CIFAR-format dataset: accuracy on both
//! backends, the outputs (metrics.jsonl, report.svg, config.json, a checkpoint that alone
//! reproduces the test accuracy), resume equivalence, early stopping restoring the best
//! parameters, the explosion guard, and flat device memory across epochs (the buffer pool
//! allocates nothing after the first epoch).

mod common;
use common::*;
use kiln::data::{Dataset, CIFAR10_CLASSES};
use kiln::prelude::*;
use kiln::train::*;
use std::path::PathBuf;

/// `n` CIFAR-shaped samples: class c is a fixed random template plus noise.
fn generated(n: usize, seed: u64) -> Dataset {
    let templates: Vec<Vec<f32>> = (0..10)
        .map(|c| random_vec(1000 + c, 3072, 40.0, 215.0))
        .collect();
    let noise = random_vec(seed, n * 3072, -60.0, 60.0);
    let labels: Vec<u8> = (0..n)
        .map(|i| ((i * 7 + seed as usize) % 10) as u8)
        .collect();
    let images = (0..n * 3072)
        .map(|k| {
            (templates[labels[k / 3072] as usize][k % 3072] + noise[k]).clamp(0.0, 255.0) as u8
        })
        .collect();
    Dataset {
        name: "generated".into(),
        channels: 3,
        height: 32,
        width: 32,
        images,
        labels,
        class_names: CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
    }
}

fn config() -> TrainConfig {
    TrainConfig {
        dataset: "generated".into(),
        model: ModelKind::Mlp,
        hidden: vec![32],
        activation: ActivationKind::Relu,
        batch_norm: false,
        dropout: 0.0,
        optimizer: OptimizerKind::Adam,
        lr: 1e-3,
        schedule: ScheduleKind::Constant,
        warmup_epochs: 0,
        weight_decay: 0.0,
        label_smoothing: 0.0,
        epochs: 4,
        batch_size: 50,
        micro_batches: 1,
        seed: 3,
        patience: 0,
        monitor_every: 5,
        preprocessing: Preprocessing::PerChannel,
        validation: 100,
        limit_train: None,
        augmentation: Default::default(),
        ema_decay: 0.0,
        whiten_epsilon: kiln_data::DEFAULT_WHITENING_EPSILON,
        restore_best: true,
        precision: Precision::F32,
        regularization: Default::default(),
        loss: Default::default(),
        layout: Default::default(),
    }
}

fn data(c: &TrainConfig) -> RunData {
    RunData::prepare(&generated(500, 1), generated(200, 2), c).unwrap()
}

fn quiet(out: Option<PathBuf>, resume: Option<PathBuf>) -> TrainOptions<'static> {
    TrainOptions {
        out,
        resume,
        quiet: true,
        on_epoch: None,
    }
}

fn check_end_to_end<B: Backend>(backend: &B, name: &str) {
    let c = config();
    let d = data(&c);
    let out = temp_dir(name);
    let outcome = train(backend, &c, &d, quiet(Some(out.clone()), None)).unwrap();
    assert!(
        outcome.test.accuracy >= 0.9,
        "{name}: test accuracy {}",
        outcome.test.accuracy
    );
    assert_eq!(outcome.epochs_run, 4);
    // The first sanity check, from the run's own report: the first loss is near ln 10.
    assert!(
        initial_loss_is_plausible(outcome.initial_loss, 10),
        "{name}: initial loss {} vs ln 10",
        outcome.initial_loss
    );
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 4);
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    for key in [
        "train_loss",
        "val_accuracy",
        "val_precision",
        "val_recall",
        "val_roc_auc",
        "val_confusion",
        "layers",
        "lr",
    ] {
        assert!(first.get(key).is_some(), "metrics.jsonl lacks {key}");
    }
    let layer = &first["layers"][0];
    assert!(layer["update_ratio"].as_f64().unwrap() > 0.0);
    assert!(layer["dead_fraction"].as_f64().is_some());
    let svg = std::fs::read_to_string(out.join("report.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("update:weight"));
    let saved: TrainConfig =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved, c);
    // The checkpoint alone reproduces the reported test accuracy.
    let again = evaluate_checkpoint(&out.join("checkpoint.safetensors"), &d.test, backend).unwrap();
    assert_eq!(again.accuracy, outcome.test.accuracy, "{name}");
    assert!((again.loss - outcome.test.loss).abs() < 1e-5);
}

#[test]
fn training_on_generated_cifar_reaches_90_percent_on_both_backends() {
    check_end_to_end(&cpu(), "e2e-cpu");
    if let Some(gpu) = gpu() {
        check_end_to_end(&gpu, "e2e-gpu");
    }
}

#[test]
fn a_resumed_run_ends_with_the_parameters_of_an_uninterrupted_one() {
    let mut c = config();
    c.optimizer = OptimizerKind::Momentum;
    c.lr = 0.01;
    c.dropout = 0.3;
    c.batch_norm = true;
    let d = data(&c);
    let whole = train(&cpu(), &c, &d, quiet(None, None)).unwrap();
    let dir = temp_dir("resume");
    let mut first = c.clone();
    first.epochs = 2;
    train(&cpu(), &first, &d, quiet(Some(dir.clone()), None)).unwrap();
    let resumed = train(&cpu(), &c, &d, quiet(Some(dir.clone()), Some(dir))).unwrap();
    assert_eq!(resumed.epochs_run, 4, "the history continues");
    assert_eq!(whole.parameters, resumed.parameters);
    assert_eq!(whole.test.accuracy, resumed.test.accuracy);
}

/// The training set of `generated` with half its labels replaced at random: memorising them
/// makes validation worse, so the best epoch comes early.
fn noisy_labels(c: &TrainConfig) -> RunData {
    let mut train_set = generated(500, 1);
    let relabel = random_vec(77, train_set.len(), 0.0, 20.0);
    for (l, r) in train_set.labels.iter_mut().zip(relabel) {
        if r < 10.0 {
            *l = r as u8;
        }
    }
    RunData::prepare(&train_set, generated(200, 2), c).unwrap()
}

#[test]
fn a_finished_run_whose_best_epoch_was_not_its_last_resumes_exactly() {
    // The final checkpoint of a run that restored its best epoch holds the best parameters
    // (for inference) and the last epoch's (for resuming): a resumed run must continue from
    // the last, with the best kept as the best so far.
    let mut c = config();
    c.epochs = 8;
    c.lr = 3e-3;
    c.batch_norm = true;
    let d = noisy_labels(&c);
    let whole = train(&cpu(), &c, &d, quiet(None, None)).unwrap();
    // The first cut whose best epoch is not its last (the same run's first k epochs).
    let accuracies: Vec<f64> = whole.history.iter().map(|r| r.val_accuracy).collect();
    let cut = (2..c.epochs)
        .find(|&k| {
            let best = accuracies[..k].iter().cloned().fold(f64::MIN, f64::max);
            accuracies[k - 1] < best
        })
        .expect("a run whose best epoch comes before its last");
    let dir = temp_dir("resume-after-best");
    let mut first = c.clone();
    first.epochs = cut;
    let finished = train(&cpu(), &first, &d, quiet(Some(dir.clone()), None)).unwrap();
    assert!(
        finished.best_epoch < cut,
        "best {} of {cut}",
        finished.best_epoch
    );
    let resumed = train(&cpu(), &c, &d, quiet(Some(dir.clone()), Some(dir))).unwrap();
    assert_eq!(resumed.epochs_run, c.epochs);
    let losses = |o: &Outcome| o.history.iter().map(|r| r.train_loss).collect::<Vec<_>>();
    assert_eq!(
        losses(&whole),
        losses(&resumed),
        "every epoch's training loss"
    );
    assert_eq!(whole.best_epoch, resumed.best_epoch);
    assert_eq!(whole.parameters, resumed.parameters);
    assert_eq!(whole.buffers, resumed.buffers);
    assert_eq!(whole.test.accuracy, resumed.test.accuracy);
}

#[test]
fn the_initial_loss_check_accepts_ln_c_and_rejects_what_is_far_from_it() {
    assert!(initial_loss_is_plausible(2.30, 10));
    assert!(initial_loss_is_plausible(1.2, 10));
    // Logits scaled far too large (a loss of 12) or a loss of 0 on the first step.
    assert!(!initial_loss_is_plausible(12.0, 10));
    assert!(!initial_loss_is_plausible(0.0, 10));
    assert!(initial_loss_is_plausible(0.7, 2));
}

#[test]
fn early_stopping_restores_the_best_parameters() {
    // Half the training labels are wrong: memorising them makes validation worse, so the
    // run stops early.
    let mut c = config();
    c.epochs = 60;
    c.patience = 2;
    c.lr = 3e-3;
    let d = noisy_labels(&c);
    let stopped = train(&cpu(), &c, &d, quiet(None, None)).unwrap();
    assert!(stopped.stopped_early, "{} epochs", stopped.epochs_run);
    assert_eq!(stopped.epochs_run, stopped.best_epoch + 2);
    // The same run cut at the best epoch has the restored parameters.
    let mut cut = c.clone();
    cut.epochs = stopped.best_epoch;
    cut.patience = 0;
    let at_best = train(&cpu(), &cut, &d, quiet(None, None)).unwrap();
    assert_eq!(stopped.parameters, at_best.parameters);
    // With restore_best off the run keeps its last epoch's parameters: those of a run cut there.
    let mut keep_last = c.clone();
    keep_last.restore_best = false;
    let kept = train(&cpu(), &keep_last, &d, quiet(None, None)).unwrap();
    assert_eq!(kept.epochs_run, stopped.epochs_run);
    assert!(
        kept.parameters != stopped.parameters,
        "the last epoch differs from the best"
    );
    let mut at_last = keep_last.clone();
    at_last.epochs = stopped.epochs_run;
    at_last.patience = 0;
    let last = train(&cpu(), &at_last, &d, quiet(None, None)).unwrap();
    assert!(
        kept.parameters == last.parameters,
        "the last epoch's parameters"
    );
}

#[test]
fn the_explosion_guard_stops_a_diverging_run() {
    let mut c = config();
    c.optimizer = OptimizerKind::Sgd;
    c.lr = 50.0;
    c.monitor_every = 1;
    let d = data(&c);
    let err = train(&cpu(), &c, &d, quiet(None, None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("diverged") && err.contains("lower the learning rate"),
        "{err}"
    );
    assert!(
        err.contains("50"),
        "the message names the learning rate: {err}"
    );
}

#[test]
fn device_memory_stays_flat_across_epochs() {
    let Some(gpu) = fresh_gpu() else { return };
    let mut c = config();
    c.epochs = 5;
    c.monitor_every = 1000;
    c.batch_norm = true;
    c.dropout = 0.2;
    let d = data(&c);
    let peaks = std::cell::RefCell::new(Vec::new());
    let options = TrainOptions {
        out: None,
        resume: None,
        quiet: true,
        on_epoch: Some(Box::new(|_| {
            let c = gpu.counters();
            peaks
                .borrow_mut()
                .push((c.pool_bytes, c.buffers_allocated, c.submits))
        })),
    };
    train(&gpu, &c, &d, options).unwrap();
    let peaks = peaks.into_inner();
    assert_eq!(peaks.len(), 5);
    // The pool owns every buffer ever allocated: its size is the high-water mark.
    assert_eq!(
        (peaks[0].0, peaks[0].1),
        (peaks[4].0, peaks[4].1),
        "(pool bytes, buffers allocated, submits) after each epoch: {peaks:?}"
    );
    // No step submits: an epoch of 8 steps (monitoring off after step 0) submits only for
    // its end-of-epoch reads (the train sums, then validation).
    for w in peaks.windows(2) {
        let submits = w[1].2 - w[0].2;
        assert!(
            submits <= 3,
            "{submits} submits in an epoch of 8 steps: {peaks:?}"
        );
    }
}

/// Test accuracy of a run, and of its checkpoint evaluated afresh.
fn accuracy_and_checkpoint<B: Backend>(
    backend: &B,
    c: &TrainConfig,
    d: &RunData,
    out: PathBuf,
) -> (f64, f64) {
    let o = train(backend, c, d, quiet(Some(out.clone()), None)).unwrap();
    let again = evaluate_checkpoint(&out.join("checkpoint.safetensors"), &d.test, backend).unwrap();
    (o.test.accuracy, again.accuracy)
}

/// `--precision mixed` trains the same model to about the same accuracy as f32, on both
/// backends, and the checkpoint (f32 master weights) reproduces its test accuracy.
#[test]
fn mixed_precision_training_matches_f32_accuracy_on_both_backends() {
    let f32_config = config();
    let mixed = TrainConfig {
        precision: Precision::Mixed,
        ..config()
    };
    let d = data(&f32_config);
    let reference = train(&cpu(), &f32_config, &d, quiet(None, None))
        .unwrap()
        .test
        .accuracy;
    let mut results = vec![(
        "cpu",
        accuracy_and_checkpoint(&cpu(), &mixed, &d, temp_dir("mixed-cpu")),
    )];
    if let Some(gpu) = gpu() {
        results.push((
            "gpu",
            accuracy_and_checkpoint(&gpu, &mixed, &d, temp_dir("mixed-gpu")),
        ));
    }
    for (name, (accuracy, from_checkpoint)) in results {
        assert!(
            (accuracy - reference).abs() <= 0.02,
            "{name}: mixed {accuracy} vs f32 {reference}"
        );
        assert_eq!(accuracy, from_checkpoint, "{name}");
    }
}

/// A mixed-precision run saves its loss scale and step counts, and a resumed run continues
/// from them to the parameters of an uninterrupted one.
#[test]
fn a_resumed_mixed_precision_run_keeps_its_loss_scale() {
    let c = TrainConfig {
        precision: Precision::Mixed,
        ..config()
    };
    let d = data(&c);
    let whole = train(&cpu(), &c, &d, quiet(None, None)).unwrap();
    let dir = temp_dir("resume-mixed");
    let first = TrainConfig {
        epochs: 2,
        ..c.clone()
    };
    train(&cpu(), &first, &d, quiet(Some(dir.clone()), None)).unwrap();
    let saved = Checkpoint::load(&dir.join("checkpoint.safetensors")).unwrap();
    let steps = 2 * d.train.len().div_ceil(c.batch_size) as u32;
    let kiln::tensor::HostData::F32(scale) = &saved.tensors["loss_scale.scale"].1 else {
        panic!("the scale is f32")
    };
    let kiln::tensor::HostData::U32(flags) = &saved.tensors["loss_scale.flags"].1 else {
        panic!("the flags are u32")
    };
    // [no pending overflow, steps skipped, clean steps since the last change]; no growth yet
    // (2000 clean steps), so each skip halved the initial 2¹⁶. Adam's bias corrections count
    // the skipped steps, so the resumed run below matches only if they were restored.
    assert_eq!(flags[0], 0);
    assert!(flags[1] + flags[2] <= steps && flags[2] > 0, "{flags:?}");
    assert_eq!(scale[0] * 2f32.powi(flags[1] as i32), 65536.0);
    let resumed = train(&cpu(), &c, &d, quiet(Some(dir.clone()), Some(dir))).unwrap();
    assert_eq!(whole.parameters, resumed.parameters);
}

/// A module of the caller's own, with layers named as the programs name theirs.
struct TwoLayers {
    first: Linear<CpuBackend>,
    second: Linear<CpuBackend>,
}

impl Module<CpuBackend> for TwoLayers {
    fn forward(&self, x: &Var<CpuBackend>) -> kiln::tensor::Result<Var<CpuBackend>> {
        self.second.forward(&self.first.forward(x)?)
    }

    fn parameters(&self) -> Vec<Parameter<CpuBackend>> {
        let mut p = self.first.parameters();
        p.extend(self.second.parameters());
        p
    }
}

fn two_layers(hidden: usize) -> TwoLayers {
    let relu = Some(kiln::tensor::UnaryOp::Relu);
    TwoLayers {
        first: Linear::new("layer0", 3072, hidden, Init::XavierUniform, relu, 9, &cpu()).unwrap(),
        second: Linear::new("layer1", hidden, 10, Init::XavierUniform, None, 9, &cpu()).unwrap(),
    }
}

#[test]
fn weights_load_into_any_module_by_name_with_clear_errors() {
    let c = config();
    let d = data(&c);
    let dir = temp_dir("load-weights");
    let outcome = train(&cpu(), &c, &d, quiet(Some(dir.clone()), None)).unwrap();
    let path = dir.join("checkpoint.safetensors");
    let values = |m: &dyn Module<CpuBackend>| -> Vec<(String, Vec<f32>)> {
        m.parameters()
            .iter()
            .map(|p| (p.name().to_string(), p.value().to_vec::<f32>().unwrap()))
            .collect()
    };

    // A module of the user's own with the same names and shapes: every weight loads.
    let mut mine = two_layers(32);
    let report = load_weights(&path, &mut mine, true).unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.loaded.len(), 4);
    assert_eq!(values(&mine), outcome.parameters);

    // Another width: a strict load names every mismatch, both shapes and the file, and
    // changes nothing.
    let mut wider = two_layers(33);
    let before = values(&wider);
    let err = load_weights(&path, &mut wider, true)
        .unwrap_err()
        .to_string();
    for needle in [
        "layer0.weight: shape [3072, 32] in the checkpoint, [3072, 33] in the module",
        "layer1.weight: shape [32, 10] in the checkpoint, [33, 10] in the module",
        "checkpoint.safetensors",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    assert_eq!(values(&wider), before, "nothing loaded");
    // Not strict: what fits loads (the output bias), the rest is reported.
    let report = load_weights(&path, &mut wider, false).unwrap();
    assert_eq!(report.loaded, vec!["layer1.bias".to_string()]);
    assert_eq!(report.mismatched.len(), 3);

    // One layer fewer, one more: unexpected and missing names.
    let mut shallow = Sequential::new()
        .push(Linear::new("layer0", 3072, 32, Init::XavierUniform, None, 1, &cpu()).unwrap());
    let err = load_weights(&path, &mut shallow, true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("layer1.weight: in the checkpoint, not in the module"),
        "{err}"
    );
    let mut deeper = Sequential::new()
        .push(Linear::new("layer0", 3072, 32, Init::XavierUniform, None, 1, &cpu()).unwrap())
        .push(Linear::new("layer1", 32, 10, Init::XavierUniform, None, 1, &cpu()).unwrap())
        .push(Linear::new("layer2", 10, 10, Init::XavierUniform, None, 1, &cpu()).unwrap());
    let report = load_weights(&path, &mut deeper, false).unwrap();
    assert_eq!(report.missing, vec!["layer2.weight", "layer2.bias"]);
    assert_eq!(report.loaded.len(), 4);
}
