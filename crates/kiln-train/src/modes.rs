//! The programs' modes: what a run does once its flags are read (evaluate checkpoints,
//! cross-validate, train an ensemble, overfit a few samples, or train one model), one
//! function each, each returning the fields of the run's JSON summary line.

use crate::choices::ModelKind;
use crate::cli::{Args, Program};
use crate::config::{InputLayout, TrainConfig};
use crate::crossval::cross_validate;
use crate::ensemble::{evaluate_checkpoint_ensemble, evaluate_ensemble};
use crate::error::{Result, TrainError};
use crate::predict::evaluate_checkpoint_with;
use crate::preview::save_augmented;
use crate::trainer::{train, RunData, TrainOptions};
use crate::tta::Tta;
use kiln_data::{Dataset, DeviceDataset};
use kiln_tensor::Backend;
use std::path::PathBuf;

/// What a run of a program does; the flags choose one (training by default).
pub(crate) enum Mode {
    /// `--evaluate`: evaluate saved checkpoints (several: as an ensemble), train nothing.
    Evaluate(Vec<PathBuf>),
    /// `--folds K`: k-fold cross-validation on the training set.
    CrossValidate(usize),
    /// `--ensemble N`: train N models, evaluate their averaged predictions.
    Ensemble(usize),
    /// `--overfit-tiny N`: memorise N samples, to check that the model and loop can learn.
    OverfitTiny(usize),
    /// Train one model.
    Train,
}

impl Mode {
    pub(crate) fn from_args(args: &Args) -> Result<Mode> {
        let mut chosen = Vec::new();
        if !args.evaluate.is_empty() {
            chosen.push(("--evaluate", Mode::Evaluate(args.evaluate.clone())));
        }
        if let Some(k) = args.folds {
            chosen.push(("--folds", Mode::CrossValidate(k)));
        }
        if let Some(n) = args.ensemble {
            if n == 0 {
                return Err(TrainError::flag(
                    "--ensemble",
                    0,
                    "an integer ≥ 1 (models to train)",
                ));
            }
            chosen.push(("--ensemble", Mode::Ensemble(n)));
        }
        if let Some(n) = args.overfit_tiny {
            if n == 0 {
                return Err(TrainError::flag("--overfit-tiny", 0, "an integer ≥ 1"));
            }
            chosen.push(("--overfit-tiny", Mode::OverfitTiny(n)));
        }
        if chosen.len() > 1 {
            let flags: Vec<&str> = chosen.iter().map(|(f, _)| *f).collect();
            return Err(TrainError::flag(
                flags[0],
                flags.join(" with "),
                "one of --evaluate, --folds, --ensemble and --overfit-tiny at a time",
            ));
        }
        Ok(chosen.pop().map_or(Mode::Train, |(_, mode)| mode))
    }
}

/// The backend a run uses, with the names its summary line reports.
pub(crate) struct Device<'a, B: Backend> {
    pub(crate) backend: &'a B,
    pub(crate) name: &'a str,
    pub(crate) adapter: &'a str,
}

/// Runs `mode` on `device`: the evaluation and cross-validation modes take the datasets as
/// they are; the training modes prepare the run's splits first.
pub(crate) fn run_on<B: Backend>(
    program: &Program,
    args: &Args,
    config: &TrainConfig,
    mode: &Mode,
    train_full: Dataset,
    test: Dataset,
    device: &Device<'_, B>,
) -> Result<String> {
    let summary = match mode {
        Mode::Evaluate(checkpoints) => evaluate_mode(checkpoints, args.tta, &test, device)?,
        Mode::CrossValidate(k) => cross_validate_mode(config, &train_full, *k, device)?,
        Mode::Ensemble(members) => {
            let data = prepare_data(program, args, config, &train_full, test, None, device)?;
            run_ensemble(args, config, &data, *members, device)?
        }
        Mode::OverfitTiny(n) => {
            let data = prepare_data(program, args, config, &train_full, test, Some(*n), device)?;
            train_mode(args, config, &data, true, device)?
        }
        Mode::Train => {
            let data = prepare_data(program, args, config, &train_full, test, None, device)?;
            train_mode(args, config, &data, false, device)?
        }
    };
    // Every summary names the dataset and the device it ran on.
    let mut summary = summary;
    summary.insert("dataset".into(), program.dataset.into());
    summary.insert("device".into(), device.name.into());
    summary.insert("adapter".into(), device.adapter.into());
    Ok(serde_json::Value::Object(summary).to_string())
}

type Summary = serde_json::Map<String, serde_json::Value>;

fn summary(value: serde_json::Value) -> Summary {
    match value {
        serde_json::Value::Object(map) => map,
        _ => Summary::new(),
    }
}

/// `--evaluate a[,b,…]`: one checkpoint's test accuracy, or several as an ensemble.
fn evaluate_mode<B: Backend>(
    checkpoints: &[PathBuf],
    tta: Tta,
    test: &Dataset,
    device: &Device<'_, B>,
) -> Result<Summary> {
    if let [checkpoint] = checkpoints {
        let evaluation = evaluate_checkpoint_with(checkpoint, test, device.backend, tta)?;
        return Ok(summary(serde_json::json!({
            "checkpoint": checkpoint,
            "test_samples": test.len(),
            "test_accuracy": evaluation.accuracy,
            "test_loss": evaluation.loss,
            "tta": tta,
        })));
    }
    let report = evaluate_checkpoint_ensemble(checkpoints, test, device.backend, tta)?;
    for (path, m) in checkpoints.iter().zip(&report.members) {
        println!("{}: test accuracy {:.4}", path.display(), m.accuracy);
    }
    println!(
        "ensemble of {}: test accuracy {:.4}",
        checkpoints.len(),
        report.ensemble.accuracy
    );
    Ok(summary(serde_json::json!({
        "checkpoints": checkpoints,
        "member_test_accuracy": report.members.iter().map(|m| m.accuracy).collect::<Vec<_>>(),
        "test_accuracy": report.ensemble.accuracy,
        "tta": tta,
    })))
}

/// `--folds K`: k-fold cross-validation on the training set.
fn cross_validate_mode<B: Backend>(
    config: &TrainConfig,
    train_full: &Dataset,
    k: usize,
    device: &Device<'_, B>,
) -> Result<Summary> {
    let cv = cross_validate(device.backend, config, train_full, k, false)?;
    println!(
        "{k}-fold cross-validation: validation accuracy {:.4} ± {:.4} (folds {:?})",
        cv.mean,
        cv.std,
        cv.fold_accuracy
            .iter()
            .map(|a| format!("{a:.4}"))
            .collect::<Vec<_>>()
    );
    Ok(summary(serde_json::json!({
        "folds": k,
        "val_accuracy_mean": cv.mean,
        "val_accuracy_std": cv.std,
        "fold_accuracy": cv.fold_accuracy,
    })))
}

/// The run's splits (for `--overfit-tiny N`: the first N samples, validated on themselves),
/// announced on one line, and `--save-augmented`'s preview.
fn prepare_data<B: Backend>(
    program: &Program,
    args: &Args,
    config: &TrainConfig,
    train_full: &Dataset,
    test: Dataset,
    overfit_tiny: Option<usize>,
    device: &Device<'_, B>,
) -> Result<RunData> {
    let data = match overfit_tiny {
        Some(n) => {
            let tiny = train_full.take(n);
            let kind = config.preprocessing;
            RunData {
                normalization: kiln_data::Normalization::fit(&tiny, kind),
                train: tiny.clone(),
                validation: tiny,
                test,
            }
        }
        None => RunData::prepare(train_full, test, config)?,
    };
    println!(
        "{}: {} training, {} validation, {} test samples on {} ({}); model {}",
        program.dataset,
        data.train.len(),
        data.validation.len(),
        data.test.len(),
        device.name,
        device.adapter,
        match config.model {
            ModelKind::Mlp => format!(
                "MLP {:?}",
                config.widths(data.train.features(), data.train.classes())
            ),
            other => format!("{other} (hidden {:?})", config.hidden),
        }
    );
    if let Some(n) = args.augment.save_augmented {
        save_preview(args, config, &data, n, device.backend)?;
    }
    Ok(data)
}

/// `--save-augmented N`: N training images as the first epoch's augmentation makes them.
fn save_preview<B: Backend>(
    args: &Args,
    config: &TrainConfig,
    data: &RunData,
    n: usize,
    backend: &B,
) -> Result<()> {
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("augmented.png");
    let a = &config.augmentation;
    save_augmented(
        &path,
        &data.train,
        a,
        n,
        config.batch_size,
        config.seed,
        backend,
    )?;
    let transforms = if a.is_active() {
        let names: Vec<_> = a.transforms.iter().map(|t| t.name()).collect();
        names.join(", ")
    } else {
        "none".into()
    };
    println!(
        "wrote {} ({n} training images after augmentation: {transforms})",
        path.display()
    );
    Ok(())
}

/// Trains one model; with `overfit_tiny`, says whether its loss reached ~0.
fn train_mode<B: Backend>(
    args: &Args,
    config: &TrainConfig,
    data: &RunData,
    overfit_tiny: bool,
    device: &Device<'_, B>,
) -> Result<Summary> {
    let options = TrainOptions {
        out: args.out.clone(),
        resume: args.resume.clone(),
        quiet: false,
        on_epoch: None,
    };
    let outcome = train(device.backend, config, data, options)?;
    if overfit_tiny {
        let last = outcome.history.last().map_or(f64::NAN, |r| r.train_loss);
        let verdict = if last < 0.05 {
            "reached ~0, the model and the training loop can learn"
        } else {
            "did NOT reach ~0: check the learning rate, the model and the data"
        };
        println!(
            "overfit-tiny: the loss went from {:.4} to {last:.6} on {} samples: {verdict}",
            outcome.initial_loss,
            data.train.len(),
        );
    }
    println!(
        "test accuracy {:.4} (best validation accuracy {:.4} at epoch {})",
        outcome.test.accuracy, outcome.best_val_accuracy, outcome.best_epoch
    );
    if let Some(ema) = &outcome.test_ema {
        println!(
            "test accuracy with the averaged (EMA {}) weights {:.4}",
            config.ema_decay, ema.accuracy
        );
    }
    Ok(summary(serde_json::json!({
        "epochs": outcome.epochs_run,
        "train_samples": data.train.len(),
        "test_accuracy": outcome.test.accuracy,
        "test_accuracy_ema": outcome.test_ema.as_ref().map(|e| e.accuracy),
        "best_val_accuracy": outcome.best_val_accuracy,
        "train_seconds": outcome.train_seconds,
        "epoch_seconds": outcome.epoch_seconds,
        "samples_per_second": outcome.samples_per_second,
    })))
}

/// `--ensemble N`: N models with seeds seed, seed + 1, … (outputs in member-K/ under --out),
/// then the test accuracy of their averaged predictions beside each member's.
fn run_ensemble<B: Backend>(
    args: &Args,
    config: &TrainConfig,
    data: &RunData,
    members: usize,
    device: &Device<'_, B>,
) -> Result<Summary> {
    let backend = device.backend;
    let (image, classes) = (data.train.image_shape(), data.train.classes());
    let mut models = Vec::with_capacity(members);
    for k in 0..members {
        let member = TrainConfig {
            seed: config.seed + k as u64,
            ..config.clone()
        };
        println!("ensemble member {}/{members} (seed {})", k + 1, member.seed);
        let outcome = train(
            backend,
            &member,
            data,
            TrainOptions {
                out: args
                    .out
                    .as_ref()
                    .map(|o| o.join(format!("member-{}", k + 1))),
                ..TrainOptions::default()
            },
        )?;
        models.push(outcome.model(&member, image, classes, backend)?);
    }
    let images = config.layout == InputLayout::Images;
    let test = DeviceDataset::upload(&data.test, &data.normalization, backend, None)?
        .image_batches(images);
    let report = evaluate_ensemble(&mut models, &test, classes, config.batch_size.max(256))?;
    for (k, m) in report.members.iter().enumerate() {
        println!("member {}: test accuracy {:.4}", k + 1, m.accuracy);
    }
    println!(
        "ensemble of {members}: test accuracy {:.4}",
        report.ensemble.accuracy
    );
    Ok(summary(serde_json::json!({
        "ensemble": members,
        "member_test_accuracy": report.members.iter().map(|m| m.accuracy).collect::<Vec<_>>(),
        "test_accuracy": report.ensemble.accuracy,
    })))
}
