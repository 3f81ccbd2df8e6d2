//! The training loop: epochs of shuffled minibatches gathered on the device, one optimiser
//! step each (the schedule sets the learning rate per step), validation every epoch, early
//! stopping that restores the best parameters, an explosion guard, monitoring every K steps,
//! and the outputs (metrics.jsonl, report.svg, checkpoint.safetensors, config.json).
//!
//! Per step nothing is read back: the loss and the number of correct predictions are summed
//! on the device and read at the end of the epoch (and the loss at monitoring steps).

use crate::checkpoint::Checkpoint;
use crate::config::TrainConfig;
use crate::error::{write_atomically, Result, TrainError};
use crate::history::EpochRecord;
use crate::metrics::Evaluation;
use crate::monitor;
use crate::progress::EpochProgress;
use crate::report::write_report;
use crate::run_state::{Progress, Run};
use kiln_autograd::{no_grad, Var};
use kiln_data::{
    shuffled_indices, DataError, Dataset, DeviceAugmentation, DeviceDataset, EpochChoices,
    LabelMix, Normalization, Preprocessing,
};
use kiln_nn::loss::{one_hot, softmax_cross_entropy};
use kiln_nn::Ema;
use kiln_nn::{LayerOutput, LossScaler, Mlp, Module, Precision, Sequential};
use kiln_tensor::{Backend, DType, Tensor};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The splits of one run, and the preprocessing fitted on its training split.
pub struct RunData {
    pub train: Dataset,
    pub validation: Dataset,
    pub test: Dataset,
    pub normalization: Normalization,
}

impl RunData {
    /// Splits `validation` samples off the training set (seeded), keeps the first
    /// `limit_train` of the rest, and fits the preprocessing on what remains.
    pub fn prepare(full_train: &Dataset, test: Dataset, config: &TrainConfig) -> Result<Self> {
        let (mut train, validation) = full_train.split(config.validation, config.seed)?;
        if let Some(n) = config.limit_train {
            train = train.take(n);
        }
        let kind =
            Preprocessing::from_name(&config.preprocessing).unwrap_or(Preprocessing::PerChannel);
        let normalization = Normalization::fit_with_epsilon(&train, kind, config.whiten_epsilon);
        Ok(RunData {
            train,
            validation,
            test,
            normalization,
        })
    }
}

pub type EpochHook<'a> = Box<dyn FnMut(&EpochRecord) + 'a>;

#[derive(Default)]
pub struct TrainOptions<'a> {
    /// Where the outputs go (nothing is written without it).
    pub out: Option<PathBuf>,
    /// A directory whose checkpoint.safetensors the run continues from.
    pub resume: Option<PathBuf>,
    /// No progress bar or log lines.
    pub quiet: bool,
    /// Called after every epoch (tests read device counters here).
    pub on_epoch: Option<EpochHook<'a>>,
}

/// How a run ended.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub best_val_accuracy: f64,
    pub stopped_early: bool,
    pub initial_loss: f64,
    pub test: Evaluation,
    /// The test evaluation of the averaged (EMA) parameters, when averaging is on.
    pub test_ema: Option<Evaluation>,
    pub train_seconds: f64,
    pub epoch_seconds: Vec<f64>,
    pub samples_per_second: f64,
    pub history: Vec<EpochRecord>,
    /// The final parameters (after restoring the best), by name.
    #[serde(skip)]
    pub parameters: Vec<(String, Vec<f32>)>,
    /// The final buffers (batch-norm running statistics), by name.
    #[serde(skip)]
    pub buffers: Vec<(String, Vec<f32>)>,
}

impl Outcome {
    /// The trained model rebuilt from this outcome (in evaluation mode), e.g. as an ensemble
    /// member.
    pub fn model<B: Backend>(
        &self,
        config: &TrainConfig,
        features: usize,
        classes: usize,
        backend: &B,
    ) -> Result<Sequential<B>> {
        let mut model = build_model(config, features, classes, backend)?;
        for p in model.parameters() {
            let values = self
                .parameters
                .iter()
                .find(|(n, _)| n == p.name())
                .map(|(_, v)| v)
                .ok_or_else(|| {
                    DataError::Invalid(format!("the outcome has no parameter {}", p.name()))
                })?;
            p.set(Tensor::from_slice(
                values,
                p.value().dims().to_vec(),
                backend,
            )?);
        }
        for (name, values) in &self.buffers {
            model.set_buffer(name, &Tensor::from_slice(values, [values.len()], backend)?)?;
        }
        model.set_training(false);
        Ok(model)
    }
}

/// The model a config describes, for `features` inputs and `classes` outputs.
pub fn build_model<B: Backend>(
    config: &TrainConfig,
    features: usize,
    classes: usize,
    backend: &B,
) -> Result<Sequential<B>> {
    let mut model = Mlp::new(&config.widths(features, classes))
        .activation(config.activation_op())
        .batch_norm(config.batch_norm)
        .dropout(config.dropout)
        .seed(config.seed)
        .build(backend)?;
    model.set_precision(config.precision_mode());
    Ok(model)
}

/// Evaluates `model` (in evaluation mode) on a whole device dataset: one read-back.
pub fn evaluate<B: Backend>(
    model: &mut Sequential<B>,
    data: &DeviceDataset<B>,
    classes: usize,
    batch_size: usize,
) -> Result<Evaluation> {
    let (probs, loss) = predict_probabilities(model, data, batch_size)?;
    Ok(Evaluation::from_probabilities(
        &probs,
        data.labels(),
        classes,
        loss,
    ))
}

/// The softmax probabilities of `model` (in evaluation mode) for every sample of `data`,
/// [len, classes] row-major on the host, and the mean cross-entropy: one read-back.
pub fn predict_probabilities<B: Backend>(
    model: &mut Sequential<B>,
    data: &DeviceDataset<B>,
    batch_size: usize,
) -> Result<(Vec<f32>, f64)> {
    model.set_training(false);
    let mut probabilities = Vec::new();
    let mut loss_sum: Option<Tensor<B>> = None;
    no_grad(|| -> Result<()> {
        for start in (0..data.len()).step_by(batch_size) {
            let len = batch_size.min(data.len() - start);
            let (x, y) = data.batch(&data.in_order().narrow(0, start, len)?)?;
            let logits = model.forward(&Var::constant(x))?;
            let losses = logits.value().softmax_xent(&y)?.sum_all()?;
            loss_sum = Some(match loss_sum.take() {
                Some(s) => (s + &losses)?,
                None => losses,
            });
            probabilities.push(logits.value().softmax()?);
        }
        Ok(())
    })?;
    model.set_training(true);
    let mut reads: Vec<&Tensor<B>> = probabilities.iter().collect();
    let loss_sum =
        loss_sum.ok_or_else(|| DataError::Invalid("cannot evaluate an empty dataset".into()))?;
    reads.push(&loss_sum);
    let host = Tensor::read_many(&reads)?;
    let (loss_host, prob_hosts) = host.split_last().expect("the loss was read");
    let probs: Vec<f32> = prob_hosts
        .iter()
        .flat_map(|h| h.to_f64_vec().into_iter().map(|v| v as f32))
        .collect();
    let loss = loss_host.to_f64_vec()[0] / data.len() as f64;
    Ok((probs, loss))
}

fn write_outputs(out: &Path, config: &TrainConfig, history: &[EpochRecord]) -> Result<()> {
    let mut lines = String::new();
    for r in history {
        lines.push_str(&serde_json::to_string(r).unwrap_or_default());
        lines.push('\n');
    }
    write_atomically(&out.join("metrics.jsonl"), lines.as_bytes())?;
    write_report(
        &out.join("report.svg"),
        &format!(
            "{} — MLP {:?}, {} lr {}",
            config.dataset, config.hidden, config.optimizer, config.lr
        ),
        history,
    )
}

/// Checks that `out` can be written before any work starts (a failed run must not leave
/// half-written outputs, and an unwritable directory should fail at once).
pub fn check_writable(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)
        .map_err(|e| TrainError::file(out, format!("cannot create the output directory: {e}")))?;
    let probe = out.join(format!(".kiln-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .map_err(|e| TrainError::file(out, format!("the output directory is not writable: {e}")))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Trains a model on `data` as `config` describes.
pub fn train<B: Backend>(
    backend: &B,
    config: &TrainConfig,
    data: &RunData,
    mut options: TrainOptions,
) -> Result<Outcome> {
    config.validate()?;
    if let Some(out) = &options.out {
        check_writable(out)?;
    }
    let features = data.train.features();
    let classes = data.train.classes();
    let widths = config.widths(features, classes);
    let model = build_model(config, features, classes, backend)?;
    let params = model.parameters();
    let mut run = Run {
        config,
        backend,
        model,
        params,
        optimizer: config.build_optimizer()?,
        progress: Progress::default(),
        best: None,
        widths,
        class_names: data.train.class_names.clone(),
        normalization: data.normalization.clone(),
        ema: if config.ema_decay > 0.0 {
            Some(Ema::new(config.ema_decay)?.with_warmup())
        } else {
            None
        },
        loss_scaler: match config.precision_mode() {
            Precision::Mixed => Some(LossScaler::new(backend)?),
            Precision::F32 => None,
        },
    };
    if let Some(dir) = &options.resume {
        let path = dir.join("checkpoint.safetensors");
        let checkpoint = Checkpoint::load(&path)?;
        run.restore(&path, &checkpoint)?;
    }
    if run.best.is_none() {
        // The best-parameter copy exists from the start, so device memory is the same in
        // every epoch (it is overwritten, never added, when validation improves).
        run.best = Some((run.snapshot()?, run.buffer_snapshot()?));
    }
    let image = data.train.image_shape();
    let augmentation = &config.augmentation;
    augmentation.check_image(image)?;
    let train_set = DeviceDataset::upload(&data.train, &data.normalization, backend, None)?;
    let val_set = DeviceDataset::upload(&data.validation, &data.normalization, backend, None)?;
    let steps_per_epoch = train_set.len().div_ceil(config.batch_size);
    let schedule = config.build_schedule(steps_per_epoch)?;
    let weights = monitor::weights(&run.params);
    let log = !options.quiet;
    let start = Instant::now();
    let mut stopped_early = false;

    while run.progress.epoch < config.epochs {
        if config.patience > 0 && run.progress.stale_epochs >= config.patience {
            stopped_early = true;
            break;
        }
        let epoch = run.progress.epoch + 1;
        let epoch_start = Instant::now();
        let order = shuffled_indices(train_set.len(), config.seed, epoch as u64);
        let indices = Tensor::from_vec(order, [train_set.len()], backend)?;
        let augment = if augmentation.is_active() {
            let choices = EpochChoices::draw(
                augmentation,
                image,
                train_set.len(),
                config.batch_size,
                config.seed,
                epoch as u64,
            );
            Some(DeviceAugmentation::upload(
                augmentation,
                &choices,
                image,
                backend,
            )?)
        } else {
            None
        };
        let bar = EpochProgress::new(epoch, config.epochs, train_set.len() as u64, options.quiet);
        let mut loss_sum: Option<Tensor<B>> = None;
        let mut correct_sum: Option<Tensor<B>> = None;
        let mut layers = Vec::new();
        let mut lr = schedule.lr_at(run.progress.step as usize);
        for start_row in (0..train_set.len()).step_by(config.batch_size) {
            let len = config.batch_size.min(train_set.len() - start_row);
            let batch_indices = indices.narrow(0, start_row, len)?;
            let (x, y, mix) = match &augment {
                Some(augment) => {
                    let (unit, y) = train_set.raw_batch(&batch_indices)?;
                    let (unit, mix) = augment.apply(&unit, start_row, len)?;
                    (train_set.normalize(&unit)?, y, mix)
                }
                None => {
                    let (x, y) = train_set.batch(&batch_indices)?;
                    (x, y, None)
                }
            };
            lr = schedule.lr_at(run.progress.step as usize);
            run.optimizer.set_learning_rate(lr);
            run.model.zero_grad();
            let monitoring = run
                .progress
                .step
                .is_multiple_of(config.monitor_every as u64);
            let outputs = if monitoring {
                run.model.forward_each(&Var::constant(x))?
            } else {
                vec![LayerOutput {
                    layer: String::new(),
                    activation: None,
                    value: run.model.forward(&Var::constant(x))?,
                }]
            };
            let logits = outputs
                .last()
                .map(|o| o.value.clone())
                .expect("the model has layers");
            let loss = match &mix {
                Some(mix) => {
                    let targets = mixed_targets(&y, mix, classes, config.label_smoothing)?;
                    logits.softmax_xent(&targets)?.mean_all()?
                }
                None => softmax_cross_entropy(&logits, &y, config.label_smoothing)?,
            };
            match &run.loss_scaler {
                Some(scaler) => {
                    scaler.scale_loss(&loss)?.backward()?;
                    scaler.unscale(&run.params)?;
                }
                None => loss.backward()?,
            }
            let (grads, before) = if monitoring {
                let grads: Vec<_> = weights.iter().map(|(_, p)| p.grad()).collect();
                (grads, monitor::before_step(&weights)?)
            } else {
                (Vec::new(), Vec::new())
            };
            match &run.loss_scaler {
                Some(scaler) => scaler.step(run.optimizer.as_mut(), &run.params)?,
                None => run.optimizer.step(&run.params)?,
            }
            if let Some(ema) = run.ema.as_mut() {
                ema.update(&run.params)?;
            }
            let batch_loss = (loss.value() * len as f32)?;
            let predicted = logits.value().argmax(1)?.cast(DType::F32)?;
            let correct = predicted.eq(&y.cast(DType::F32)?)?.sum_all()?;
            loss_sum = Some(match loss_sum.take() {
                Some(s) => (s + &batch_loss)?,
                None => batch_loss,
            });
            correct_sum = Some(match correct_sum.take() {
                Some(s) => (s + &correct)?,
                None => correct,
            });
            if monitoring {
                let pending =
                    monitor::after_step(&weights, &grads, &before, &outputs, loss.value())?;
                let (step_loss, stats) = pending.read()?;
                if run.progress.step == 0 && run.progress.initial_loss == 0.0 {
                    run.progress.initial_loss = step_loss;
                    let expected = (classes as f64).ln();
                    if log {
                        let verdict = if initial_loss_is_plausible(step_loss, classes) {
                            "as expected for random initial weights"
                        } else {
                            "warning: far from ln(C); check the initialisation and the labels"
                        };
                        println!("initial loss {step_loss:.4} vs ln({classes}) = {expected:.4}: {verdict}");
                    }
                }
                let initial = run.progress.initial_loss;
                if !step_loss.is_finite() || (initial > 0.0 && step_loss > 3.0 * initial) {
                    bar.finish();
                    return Err(TrainError::Diverged {
                        epoch,
                        step: run.progress.step,
                        loss: step_loss,
                        initial,
                        lr,
                    });
                }
                bar.loss(step_loss);
                layers = stats;
            }
            bar.advance(len as u64);
            run.progress.step += 1;
        }
        bar.finish();
        // Released before the readback's submit, so the next epoch's index tensor reuses
        // this one's buffer instead of allocating another.
        drop(indices);
        drop(augment);
        let sums = Tensor::read_many(&[
            loss_sum.as_ref().expect("one batch at least"),
            correct_sum.as_ref().expect("one batch at least"),
        ])?;
        let train_loss = sums[0].to_f64_vec()[0] / train_set.len() as f64;
        let train_accuracy = sums[1].to_f64_vec()[0] / train_set.len() as f64;
        let initial = run.progress.initial_loss;
        if !train_loss.is_finite() || (initial > 0.0 && train_loss > 3.0 * initial) {
            return Err(TrainError::Diverged {
                epoch,
                step: run.progress.step,
                loss: train_loss,
                initial,
                lr,
            });
        }
        let val = evaluate(
            &mut run.model,
            &val_set,
            classes,
            config.batch_size.max(256),
        )?;
        let val_accuracy_ema =
            evaluate_averaged(&mut run, &val_set, classes, config.batch_size.max(256))?
                .map(|e| e.accuracy);
        let seconds = epoch_start.elapsed().as_secs_f64();
        let record = EpochRecord {
            epoch,
            step: run.progress.step,
            lr,
            train_loss,
            train_accuracy,
            val_loss: val.loss,
            val_accuracy: val.accuracy,
            val_precision: val.precision.clone(),
            val_recall: val.recall.clone(),
            val_roc_auc: val.macro_roc_auc,
            val_confusion: val.confusion.clone(),
            val_accuracy_ema,
            seconds,
            samples_per_second: train_set.len() as f64 / seconds,
            layers,
        };
        if log {
            println!(
                "epoch {epoch}/{}: train loss {train_loss:.4} acc {train_accuracy:.4} | val loss {:.4} acc {:.4} auc {:.4} | lr {lr:.2e} | {seconds:.1} s ({:.0} samples/s)",
                config.epochs, val.loss, val.accuracy, val.macro_roc_auc, record.samples_per_second
            );
            if let Some(a) = val_accuracy_ema {
                println!(
                    "  averaged (EMA {}) weights: val acc {a:.4}",
                    config.ema_decay
                );
            }
            if let Some(scaler) = &run.loss_scaler {
                let (scale, skipped) = scaler.read()?;
                println!("  mixed precision: loss scale {scale}, {skipped} steps skipped on overflow so far");
            }
            for l in &record.layers {
                println!(
                    "  {:<8} update/weight {:.2e} (≈1e-3 is healthy)  |grad| {:.3e}{}",
                    l.layer,
                    l.update_ratio,
                    l.grad_norm,
                    match (l.activation_mean, l.activation_std, l.dead_fraction) {
                        (Some(m), Some(s), d) => format!(
                            "  activations mean {m:.3} std {s:.3}{}",
                            d.map_or(String::new(), |d| format!(" dead {:.1}%", 100.0 * d))
                        ),
                        _ => String::new(),
                    }
                );
            }
        }
        run.progress.epoch = epoch;
        let improved = val.accuracy > run.progress.best_val_accuracy
            || (val.accuracy == run.progress.best_val_accuracy
                && val.loss < run.progress.best_val_loss);
        if run.progress.best_epoch == 0 || improved {
            run.progress.best_val_accuracy = val.accuracy;
            run.progress.best_val_loss = val.loss;
            run.progress.best_epoch = epoch;
            run.progress.stale_epochs = 0;
            // Free the old copy first so the new one reuses its device memory.
            run.best = None;
            run.best = Some((run.snapshot()?, run.buffer_snapshot()?));
        } else {
            run.progress.stale_epochs += 1;
        }
        run.progress.history.push(record.clone());
        if let Some(out) = &options.out {
            run.checkpoint()?
                .save(&out.join("checkpoint.safetensors"))?;
            write_atomically(
                &out.join("config.json"),
                serde_json::to_string_pretty(config)
                    .unwrap_or_default()
                    .as_bytes(),
            )?;
            write_outputs(out, config, &run.progress.history)?;
        }
        if let Some(hook) = options.on_epoch.as_mut() {
            hook(&record);
        }
    }
    if config.patience > 0 && run.progress.stale_epochs >= config.patience {
        stopped_early = true;
    }
    // Restore the best parameters (and their batch-norm statistics), keeping the last
    // epoch's for the final checkpoint (a resumed run continues from those).
    let last = (run.snapshot()?, run.buffer_snapshot()?);
    let best_is_last = run.progress.best_epoch == run.progress.epoch || !config.restore_best;
    let restore = run.best.take().filter(|_| config.restore_best);
    if let Some((best, buffers)) = restore {
        for (p, t) in run.params.iter().zip(best) {
            p.set(t);
        }
        for (name, t) in buffers {
            run.model.set_buffer(&name, &t)?;
        }
        if log && run.progress.best_epoch != run.progress.epoch {
            println!(
                "restored the parameters of epoch {} (best validation accuracy {:.4})",
                run.progress.best_epoch, run.progress.best_val_accuracy
            );
        }
    }
    let train_seconds = start.elapsed().as_secs_f64();
    let test_set = DeviceDataset::upload(&data.test, &data.normalization, backend, None)?;
    let test = evaluate(
        &mut run.model,
        &test_set,
        classes,
        config.batch_size.max(256),
    )?;
    let test_ema = evaluate_averaged(&mut run, &test_set, classes, config.batch_size.max(256))?;
    if let Some(out) = &options.out {
        // The final checkpoint holds the restored best parameters under param.* (what
        // inference loads) and, when they differ, the last epoch's under last.* and
        // last_buffer.* (what a resumed run continues from, with the optimiser state).
        let mut checkpoint = run.checkpoint()?;
        if !best_is_last {
            for (p, t) in run.params.iter().zip(&last.0) {
                checkpoint.put(format!("last.{}", p.name()), t)?;
            }
            for (name, t) in &last.1 {
                checkpoint.put(format!("last_buffer.{name}"), t)?;
            }
        }
        checkpoint.save(&out.join("checkpoint.safetensors"))?;
    }
    let epoch_seconds: Vec<f64> = run.progress.history.iter().map(|r| r.seconds).collect();
    let samples: f64 = run.progress.history.len() as f64 * train_set.len() as f64;
    let parameters = run
        .params
        .iter()
        .map(|p| {
            Ok((
                p.name().to_string(),
                p.value().cast(DType::F32)?.to_vec::<f32>()?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let buffers = run
        .model
        .buffers()
        .into_iter()
        .map(|(name, t)| Ok((name, t.cast(DType::F32)?.to_vec::<f32>()?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Outcome {
        buffers,
        epochs_run: run.progress.history.len(),
        best_epoch: run.progress.best_epoch,
        best_val_accuracy: run.progress.best_val_accuracy,
        stopped_early,
        initial_loss: run.progress.initial_loss,
        test,
        test_ema,
        train_seconds,
        samples_per_second: samples / epoch_seconds.iter().sum::<f64>().max(1e-9),
        epoch_seconds,
        history: run.progress.history,
        parameters,
    })
}

/// The evaluation of the averaged (EMA) parameters, when averaging is on: they are swapped in
/// for the evaluation and swapped back after it.
fn evaluate_averaged<B: Backend>(
    run: &mut Run<'_, B>,
    data: &DeviceDataset<B>,
    classes: usize,
    batch_size: usize,
) -> Result<Option<Evaluation>> {
    let Some(ema) = run.ema.as_mut() else {
        return Ok(None);
    };
    ema.swap(&run.params);
    let averaged = evaluate(&mut run.model, data, classes, batch_size);
    ema.swap(&run.params);
    averaged.map(Some)
}

/// CutMix's soft targets: (1 − w) · onehot(y) + w · onehot(y[partner]) per row, then label
/// smoothing (1 − ε) · t + ε / classes.
fn mixed_targets<B: Backend>(
    y: &Tensor<B>,
    mix: &LabelMix<B>,
    classes: usize,
    smoothing: f32,
) -> Result<Tensor<B>> {
    let len = y.numel();
    let own = one_hot(y, classes, DType::F32)?;
    let partner_labels = y
        .reshape([len, 1])?
        .gather_rows(&mix.partner)?
        .reshape([len])?;
    let other = one_hot(&partner_labels, classes, DType::F32)?;
    let targets = (&own + &((&other - &own)? * &mix.weight)?)?;
    Ok(if smoothing > 0.0 {
        ((targets * (1.0 - smoothing))? + smoothing / classes as f32)?
    } else {
        targets
    })
}

/// The seed lecture's first sanity check: a classifier with small random weights predicts
/// nearly uniform probabilities, so its first loss is close to ln C (within half of it).
pub fn initial_loss_is_plausible(loss: f64, classes: usize) -> bool {
    let expected = (classes as f64).ln();
    (loss - expected).abs() <= 0.5 * expected
}
