//! What builds on the trainer: augmented training with CutMix's soft targets and averaged
//! (EMA) weights on both backends, PCA/ZCA whitening stored in the checkpoint, k-fold
//! cross-validation, ensembles (an ensemble of one is that model) and the random search
//! (reproducible by seed, explosions recorded as diverged, zero budgets refused).

mod common;
use common::*;
use kiln::data::{Augmentation, DeviceDataset, Normalization, Preprocessing};
use kiln::prelude::*;
use kiln::train::*;

fn config() -> TrainConfig {
    TrainConfig {
        dataset: "quadrants".into(),
        hidden: vec![32],
        batch_norm: false,
        dropout: 0.0,
        epochs: 4,
        batch_size: 40,
        micro_batches: 1,
        seed: 5,
        patience: 0,
        monitor_every: 10,
        validation: 80,
        ..fashion_mnist_recipe()
    }
}

fn data(c: &TrainConfig) -> RunData {
    RunData::prepare(&quadrants(480, 1), quadrants(160, 2), c).unwrap()
}

fn quiet() -> TrainOptions<'static> {
    TrainOptions {
        quiet: true,
        ..TrainOptions::default()
    }
}

fn check_augmented_training<B: Backend>(backend: &B, name: &str) -> Outcome {
    let mut c = config();
    c.augmentation = Augmentation {
        transforms: vec![
            Transform::Crop,
            Transform::Affine,
            Transform::Jitter,
            Transform::Cutmix,
        ],
        crop_padding: 1,
        affine_degrees: 5.0,
        affine_translate: 0.05,
        ..Augmentation::default()
    };
    c.ema_decay = 0.9;
    c.epochs = 6;
    let outcome = train(backend, &c, &data(&c), quiet()).unwrap();
    assert!(
        outcome.test.accuracy > 0.9,
        "{name}: augmented test accuracy {}",
        outcome.test.accuracy
    );
    let ema = outcome.test_ema.as_ref().expect("averaging was on");
    assert!(
        ema.accuracy > 0.9,
        "{name}: EMA test accuracy {}",
        ema.accuracy
    );
    assert!(outcome.history.iter().all(|r| r.val_accuracy_ema.is_some()));
    outcome
}

#[test]
fn augmented_training_with_cutmix_and_ema_learns_on_both_backends() {
    let cpu_outcome = check_augmented_training(&cpu(), "cpu");
    if let Some(gpu) = gpu() {
        let gpu_outcome = check_augmented_training(&gpu, "gpu");
        // The same seeded augmentation on both: the first epoch's loss agrees closely.
        let (g, c) = (
            gpu_outcome.history[0].train_loss,
            cpu_outcome.history[0].train_loss,
        );
        assert!(
            (g - c).abs() < 1e-3 * c.abs().max(1.0),
            "epoch 1 loss {g} vs {c}"
        );
    }
}

#[test]
fn augmented_steps_do_not_submit() {
    let Some(gpu) = fresh_gpu() else { return };
    // Every transform; CutMix and CowMix each mix the labels, so one run each.
    for mixer in [Transform::Cutmix, Transform::Cowmix] {
        let mut c = config();
        c.augmentation.transforms = Transform::ALL
            .into_iter()
            .filter(|&t| t == mixer || !matches!(t, Transform::Cutmix | Transform::Cowmix))
            .collect();
        c.monitor_every = 1000;
        c.epochs = 3;
        let submits = std::cell::RefCell::new(Vec::new());
        let options = TrainOptions {
            quiet: true,
            on_epoch: Some(Box::new(|_| {
                submits.borrow_mut().push(gpu.counters().submits)
            })),
            ..TrainOptions::default()
        };
        train(&gpu, &c, &data(&c), options).unwrap();
        let submits = submits.into_inner();
        for w in submits.windows(2) {
            assert!(
                w[1] - w[0] <= 3,
                "submits per epoch of 10 steps augmented with {mixer}: {submits:?}"
            );
        }
    }
}

#[test]
fn zca_whitening_decorrelates_and_travels_in_the_checkpoint() {
    let train_set = quadrants(400, 3);
    let norm = Normalization::fit_with_epsilon(&train_set, Preprocessing::Zca, 1e-4);
    let device = DeviceDataset::upload(&train_set, &norm, &cpu(), None).unwrap();
    let all = Tensor::from_vec((0..400u32).collect(), [400], &cpu()).unwrap();
    let (x, _) = device.batch(&all).unwrap();
    let x = x.to_vec::<f32>().unwrap();
    // The covariance of the whitened training data is close to the identity.
    let d = 64;
    let mut worst: f64 = 0.0;
    for i in 0..d {
        for j in 0..d {
            let c: f64 = (0..400)
                .map(|r| x[r * d + i] as f64 * x[r * d + j] as f64)
                .sum::<f64>()
                / 400.0;
            worst = worst.max((c - if i == j { 1.0 } else { 0.0 }).abs());
        }
    }
    assert!(worst < 0.05, "covariance differs from I by {worst}");
    // PCA orders features by variance: the first has unit variance like the rest.
    let pca = Normalization::fit_with_epsilon(&train_set, Preprocessing::Pca, 1e-4);
    assert_ne!(pca.whitening, norm.whitening);
    // A run with ZCA saves the matrix; the checkpoint alone reproduces the test accuracy.
    let mut c = config();
    c.preprocessing = Preprocessing::Zca;
    // Whitened inputs take a few more epochs than raw ones (0.80 after 4, 0.97 after 8).
    c.epochs = 8;
    let d = data(&c);
    let out = temp_dir("zca-run");
    let outcome = train(
        &cpu(),
        &c,
        &d,
        TrainOptions {
            out: Some(out.clone()),
            quiet: true,
            ..TrainOptions::default()
        },
    )
    .unwrap();
    assert!(
        outcome.test.accuracy > 0.8,
        "zca accuracy {} after {} epochs",
        outcome.test.accuracy,
        c.epochs
    );
    let checkpoint = Checkpoint::load(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(
        checkpoint.tensors["preprocess.whitening"].0,
        vec![64, 64],
        "the whitening matrix is saved"
    );
    let again = evaluate_checkpoint(&out.join("checkpoint.safetensors"), &d.test, &cpu()).unwrap();
    assert_eq!(again.accuracy, outcome.test.accuracy);
}

#[test]
fn folds_partition_the_training_set() {
    let full = quadrants(103, 4);
    let folds = full.folds(4, 9);
    assert_eq!(folds.len(), 4);
    let mut seen = Vec::new();
    for (train_part, held) in &folds {
        assert_eq!(train_part.len() + held.len(), 103);
        assert!((25..=26).contains(&held.len()));
        seen.extend(held.images.chunks(64).map(|c| c.to_vec()));
    }
    let mut all: Vec<Vec<u8>> = full.images.chunks(64).map(|c| c.to_vec()).collect();
    all.sort();
    seen.sort();
    assert_eq!(seen, all, "every sample is held out exactly once");
    let cv = cross_validate(&cpu(), &config(), &quadrants(240, 5), 3, true).unwrap();
    assert_eq!(cv.fold_accuracy.len(), 3);
    let mean = cv.fold_accuracy.iter().sum::<f64>() / 3.0;
    assert!((cv.mean - mean).abs() < 1e-12 && cv.mean > 0.8, "{cv:?}");
    assert!(cv.std >= 0.0 && cv.std < 0.2);
    let err = cross_validate(&cpu(), &config(), &quadrants(240, 5), 1, true).unwrap_err();
    assert!(err.to_string().contains("--folds"), "{err}");
}

#[test]
fn an_ensemble_of_one_is_that_model_and_more_members_help() {
    let c = config();
    let d = data(&c);
    let test = DeviceDataset::upload(&d.test, &d.normalization, &cpu(), None).unwrap();
    let mut models = Vec::new();
    for seed in [5, 6, 7] {
        let member = TrainConfig {
            seed,
            epochs: 2,
            ..c.clone()
        };
        let outcome = train(&cpu(), &member, &d, quiet()).unwrap();
        let mut model = outcome
            .model(&member, d.train.image_shape(), 4, &cpu())
            .unwrap();
        // The rebuilt model reproduces the outcome's test evaluation.
        let own = evaluate(&mut model, &test, 4, 64).unwrap();
        assert_eq!(own.accuracy, outcome.test.accuracy);
        models.push(model);
    }
    let one = evaluate_ensemble(&mut models[..1], &test, 4, 64).unwrap();
    let single = evaluate(&mut models[0], &test, 4, 64).unwrap();
    assert_eq!(one.ensemble.accuracy, single.accuracy);
    assert_eq!(one.ensemble.confusion, single.confusion);
    assert!((one.ensemble.loss - single.loss).abs() < 1e-5);
    let three = evaluate_ensemble(&mut models, &test, 4, 64).unwrap();
    assert_eq!(three.members.len(), 3);
    let best_member = three
        .members
        .iter()
        .map(|m| m.loss)
        .fold(f64::MAX, f64::min);
    let worst_member = three.members.iter().map(|m| m.loss).fold(0.0, f64::max);
    // Averaging probabilities cannot be worse than the worst member's cross-entropy (convexity).
    assert!(
        three.ensemble.loss <= worst_member + 1e-9,
        "{} vs {best_member}..{worst_member}",
        three.ensemble.loss
    );
    assert!(evaluate_ensemble(&mut [], &test, 4, 64).is_err());
}

fn space() -> SearchSpace {
    SearchSpace {
        lr: (1e-4, 3e-2),
        weight_decay: (1e-6, 1e-3),
        dropout: (0.0, 0.3),
        optimizers: vec![OptimizerKind::Adam, OptimizerKind::Nesterov],
        widths: vec![vec![16], vec![32]],
    }
}

fn plan(seed: u64) -> SearchPlan {
    SearchPlan {
        coarse_trials: 4,
        coarse_epochs: 1,
        fine_trials: 2,
        fine_epochs: 2,
        seed,
    }
}

fn strip_time(runs: &[TrialRun]) -> Vec<Trial> {
    runs.iter()
        .map(|r| Trial {
            seconds: 0.0,
            ..r.trial.clone()
        })
        .collect()
}

#[test]
fn a_search_is_reproducible_by_seed() {
    let c = config();
    let d = data(&c);
    let mut seen = Vec::new();
    let a = random_search(&cpu(), &c, &d, &space(), &plan(3), |t| seen.push(t.id)).unwrap();
    let b = random_search(&cpu(), &c, &d, &space(), &plan(3), |_| {}).unwrap();
    assert_eq!(seen, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(strip_time(&a), strip_time(&b));
    for (x, y) in a.iter().zip(&b) {
        if let (Some(x), Some(y)) = (&x.outcome, &y.outcome) {
            assert_eq!(x.parameters, y.parameters);
        }
    }
    let other = random_search(&cpu(), &c, &d, &space(), &plan(4), |_| {}).unwrap();
    assert_ne!(strip_time(&a)[0].lr, strip_time(&other)[0].lr);
    // The fine stage stays in the box around the best coarse trial.
    let trials = strip_time(&a);
    let best = ranked(&a[..4])[0].trial.clone();
    for t in trials.iter().filter(|t| t.stage == "fine") {
        assert!(t.lr >= best.lr / 3.0 && t.lr <= best.lr * 3.0);
        assert_eq!((&t.optimizer, &t.hidden), (&best.optimizer, &best.hidden));
    }
    let table = results_table(&trials);
    assert_eq!(table.lines().count(), 7);
    let out = temp_dir("search-plot");
    write_search_plot(&out.join("scatter.svg"), &trials).unwrap();
    let svg = std::fs::read_to_string(out.join("scatter.svg")).unwrap();
    assert!(svg.contains("learning rate") && svg.contains("weight decay"));
}

#[test]
fn exploding_trials_are_recorded_and_bad_budgets_refused() {
    let c = config();
    let d = data(&c);
    let exploding = SearchSpace {
        lr: (50.0, 100.0),
        optimizers: vec![OptimizerKind::Sgd],
        ..space()
    };
    let plan = SearchPlan {
        fine_trials: 0,
        ..plan(1)
    };
    let runs = random_search(&cpu(), &c, &d, &exploding, &plan, |_| {}).unwrap();
    assert!(
        runs.iter().all(|r| r.trial.status == "diverged"),
        "{:?}",
        strip_time(&runs)
    );
    assert!(ranked(&runs).is_empty());
    let zero = SearchPlan {
        coarse_trials: 0,
        ..plan
    };
    let err = random_search(&cpu(), &c, &d, &space(), &zero, |_| {}).unwrap_err();
    assert!(err.to_string().contains("--trials"), "{err}");
    let bad = SearchSpace {
        optimizers: vec![OptimizerKind::Lbfgs],
        ..space()
    };
    let err = random_search(&cpu(), &c, &d, &bad, &plan, |_| {}).unwrap_err();
    assert!(err.to_string().contains("--optimizers"), "{err}");
    assert!(err.to_string().contains("first-order"), "{err}");
    let empty = SearchSpace {
        optimizers: vec![],
        ..space()
    };
    let err = random_search(&cpu(), &c, &d, &empty, &plan, |_| {}).unwrap_err();
    assert!(err.to_string().contains("--optimizers"), "{err}");
}

/// The named weight matrix of an outcome as [in][out] rows, and the same from a fresh model.
fn weight(parameters: &[(String, Vec<f32>)], name: &str) -> Vec<f32> {
    parameters
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {name}"))
}

fn initial_parameters(c: &TrainConfig) -> Vec<(String, Vec<f32>)> {
    let image = kiln::tensor::ImageShape {
        channels: 1,
        height: 8,
        width: 8,
    };
    build_model(c, image, 4, &cpu())
        .unwrap()
        .parameters()
        .iter()
        .map(|p| (p.name().to_string(), p.value().to_vec::<f32>().unwrap()))
        .collect()
}

fn start_count(c: &TrainConfig) -> usize {
    initial_parameters(c).iter().map(|(_, v)| v.len()).sum()
}

/// The largest |Δ| of one element, and the L2 norm of the whole change, from `from` to `to`.
fn change(from: &[(String, Vec<f32>)], to: &[(String, Vec<f32>)]) -> (f64, f64) {
    let mut largest = 0.0f64;
    let mut squares = 0.0f64;
    for ((_, a), (_, b)) in from.iter().zip(to) {
        for (x, y) in a.iter().zip(b) {
            let d = (*y as f64 - *x as f64).abs();
            largest = largest.max(d);
            squares += d * d;
        }
    }
    (largest, squares.sqrt())
}

#[test]
fn regularisation_settings_act_as_stated() {
    let mut c = config();
    c.optimizer = OptimizerKind::Sgd;
    c.lr = 0.1;
    c.schedule = ScheduleKind::Constant;
    let d = data(&c);
    // 400 training samples in batches of 40, 4 epochs: 40 steps of SGD. Each step also rounds
    // every weight (|w| < 2) to f32: up to f32::EPSILON of movement besides the update.
    let steps = 40.0;
    let rounding = f32::EPSILON as f64;
    let elements = start_count(&c) as f64;
    let start = initial_parameters(&c);
    let free = train(&cpu(), &c, &d, quiet()).unwrap();
    let (free_largest, _) = change(&start, &free.parameters);

    // Gradients clamped to ±1e-4: no element moves more than steps · (lr · 1e-4 + rounding).
    let mut clipped = c.clone();
    clipped.regularization.clip_grad_value = Some(1e-4);
    let o = train(&cpu(), &clipped, &d, quiet()).unwrap();
    let (largest, _) = change(&start, &o.parameters);
    assert!(
        largest <= steps * (0.1 * 1e-4 + rounding),
        "clip by value: {largest}"
    );
    assert!(
        free_largest > 100.0 * largest,
        "without clipping: {free_largest}"
    );

    // Gradients scaled to global norm ≤ 1e-3: the whole change's norm is at most
    // steps · (lr · 1e-3 + rounding · √elements).
    let mut clipped = c.clone();
    clipped.regularization.clip_grad_norm = Some(1e-3);
    let o = train(&cpu(), &clipped, &d, quiet()).unwrap();
    let (_, norm) = change(&start, &o.parameters);
    let bound = steps * (0.1 * 1e-3 + rounding * elements.sqrt());
    assert!(norm <= bound, "clip by norm: {norm} > {bound}");

    // Max-norm 0.5: every unit's incoming weights (a column of [in, out]) end within it.
    let mut constrained = c.clone();
    constrained.regularization.max_norm = Some(0.5);
    let o = train(&cpu(), &constrained, &d, quiet()).unwrap();
    for (name, (inputs, outputs)) in [("layer0.weight", (64, 32)), ("layer1.weight", (32, 4))] {
        let w = weight(&o.parameters, name);
        for col in 0..outputs {
            let norm = (0..inputs)
                .map(|r| (w[r * outputs + col] as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(norm <= 0.5 * (1.0 + 1e-5), "{name} column {col}: {norm}");
        }
    }

    // An L1 penalty shrinks Σ|w| against the same run without it.
    let mut sparse = c.clone();
    sparse.regularization.l1 = 1e-3;
    let o = train(&cpu(), &sparse, &d, quiet()).unwrap();
    let l1 = |p: &[(String, Vec<f32>)]| -> f64 {
        p.iter()
            .filter(|(n, _)| n.ends_with(".weight"))
            .flat_map(|(_, v)| v.iter().map(|x| x.abs() as f64))
            .sum()
    };
    assert!(
        l1(&o.parameters) < l1(&free.parameters),
        "L1 shrinks the weights"
    );
}

#[test]
fn plateau_and_inverse_time_schedules_set_the_stated_rates() {
    let mut c = config();
    c.optimizer = OptimizerKind::Sgd;
    c.epochs = 6;
    // So small a rate that the validation loss stops improving (by 1e-4 relative) after the
    // first epoch: after 3 stale epochs (more than the patience of 2) the rate falls tenfold.
    c.lr = 1e-9;
    c.schedule = ScheduleKind::Plateau;
    let d = data(&c);
    let o = train(&cpu(), &c, &d, quiet()).unwrap();
    let rates: Vec<f64> = o.history.iter().map(|r| r.lr as f64).collect();
    let lr = 1e-9f32 as f64;
    let reduced = (1e-9f32 * 0.1) as f64;
    assert_eq!(rates, vec![lr, lr, lr, lr, reduced, reduced]);

    // lr / (1 + t / steps per epoch): the first epoch's last step (t = 9 of 10) runs at
    // lr / (1 + 9/10).
    c.lr = 0.01;
    c.epochs = 1;
    c.schedule = ScheduleKind::InverseTime;
    let o = train(&cpu(), &c, &d, quiet()).unwrap();
    let expected = 0.01 / (1.0 + 9.0 / 10.0);
    assert!(
        (o.history[0].lr as f64 - expected).abs() < 1e-9,
        "{}",
        o.history[0].lr
    );
}
