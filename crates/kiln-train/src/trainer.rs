//! The training loop: epochs of shuffled minibatches gathered on the device, one optimiser
//! step each (the schedule sets the learning rate per step), validation every epoch, early
//! stopping that restores the best parameters, an explosion guard, monitoring every K steps,
//! and the outputs (metrics.jsonl, report.svg, checkpoint.safetensors, config.json).
//!
//! Per step nothing is read back: the loss and the number of correct predictions are summed
//! on the device and read at the end of the epoch (and the loss at monitoring steps).

use crate::checkpoint::Checkpoint;
use crate::config::TrainConfig;
use crate::epoch::{end_epoch, patience_ran_out, train_epoch, upload, Splits};
use crate::error::{write_atomically, Result, TrainError};
use crate::history::EpochRecord;
use crate::metrics::Evaluation;
use crate::models::build_model;
use crate::predict::described_model;
use crate::report::write_report;
use crate::run_state::{describe, Progress, Run};
use crate::updater::Updater;
use kiln_autograd::{no_grad, Var};
use kiln_data::{DataError, Dataset, DeviceDataset, Normalization};
use kiln_nn::Ema;
use kiln_nn::{LossScaler, Module, Precision, Sequential};
use kiln_tensor::{Backend, DType, ImageShape, KilnError, Tensor};
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
        let kind = config.preprocessing;
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
    /// Parts each training batch was split into: the config's `micro_batches`, doubled until
    /// the batches' activations fit the device's storage-binding limit (see
    /// `WgpuOptions::max_binding_bytes`).
    pub micro_batches: usize,
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
        image: ImageShape,
        classes: usize,
        backend: &B,
    ) -> Result<Sequential<B>> {
        let mut model = build_model(config, image, classes, backend)?;
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

/// Evaluates `model` (in evaluation mode) on a whole device dataset: one read-back.
pub fn evaluate<B: Backend, M: Module<B> + ?Sized>(
    model: &mut M,
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
/// [len, classes] row-major on the host, and the mean cross-entropy: one read-back. Batches
/// whose activations do not fit the device's storage-binding limit are halved until they do.
pub fn predict_probabilities<B: Backend, M: Module<B> + ?Sized>(
    model: &mut M,
    data: &DeviceDataset<B>,
    batch_size: usize,
) -> Result<(Vec<f32>, f64)> {
    halving_batches(batch_size, |size| predict_in_batches(model, data, size))
}

/// `predict(size)` from `batch_size` down, halving the size while the batches' activations do
/// not fit the device's storage-binding limit.
pub(crate) fn halving_batches<T>(
    batch_size: usize,
    mut predict: impl FnMut(usize) -> Result<T>,
) -> Result<T> {
    let mut size = batch_size.max(1);
    loop {
        match predict(size) {
            Err(TrainError::Tensor(KilnError::TooLarge { .. })) if size > 1 => size /= 2,
            other => return other,
        }
    }
}

fn predict_in_batches<B: Backend, M: Module<B> + ?Sized>(
    model: &mut M,
    data: &DeviceDataset<B>,
    batch_size: usize,
) -> Result<(Vec<f32>, f64)> {
    model.set_training(false);
    let mut probabilities = Vec::new();
    let mut loss_sum: Option<Tensor<B>> = None;
    let predicted = no_grad(|| -> Result<()> {
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
    });
    model.set_training(true);
    predicted?;
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

fn write_outputs(
    out: &Path,
    config: &TrainConfig,
    architecture: &str,
    history: &[EpochRecord],
) -> Result<()> {
    let mut lines = String::new();
    for r in history {
        lines.push_str(&serde_json::to_string(r).unwrap_or_default());
        lines.push('\n');
    }
    write_atomically(&out.join("metrics.jsonl"), lines.as_bytes())?;
    let model = serde_json::from_str::<serde_json::Value>(architecture)
        .ok()
        .and_then(|a| serde_json::from_value::<kiln_nn::LayerSpec>(a["spec"].clone()).ok())
        .map_or("custom model".to_string(), |spec| {
            format!("layers {:?}", spec.widths())
        });
    write_report(
        &out.join("report.svg"),
        &format!(
            "{} — {model}, {} lr {}",
            config.dataset, config.optimizer, config.lr
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

/// Trains the MLP `config` describes on `data` (what the programs run), or when resuming, the
/// model the checkpoint describes: `fit` stores the model's layer stack in the checkpoint, so
/// `--evaluate` and `--resume` rebuild it.
pub fn train<B: Backend>(
    backend: &B,
    config: &TrainConfig,
    data: &RunData,
    options: TrainOptions,
) -> Result<Outcome> {
    config.validate()?;
    let model = match &options.resume {
        Some(dir) => {
            let path = dir.join("checkpoint.safetensors");
            described_model(&path, &Checkpoint::load(&path)?, backend)?
        }
        None => build_model(
            config,
            data.train.image_shape(),
            data.train.classes(),
            backend,
        )?,
    };
    fit(backend, model, config, data, options).map(|(outcome, _)| outcome)
}

/// Trains `model`, any module, on `data` with the training settings of `config` (its model
/// fields are not read): prepare the run, then epochs of steps, each epoch ending with
/// validation, the best-so-far bookkeeping and the outputs, then the finish (the best
/// parameters restored, the test evaluation, the final checkpoint). Returns the outcome and
/// the trained model.
pub(crate) fn fit<B: Backend, M: Module<B>>(
    backend: &B,
    model: M,
    config: &TrainConfig,
    data: &RunData,
    mut options: TrainOptions,
) -> Result<(Outcome, M)> {
    config.validate()?;
    if let Some(out) = &options.out {
        check_writable(out)?;
    }
    config.check_full_batch(data.train.len())?;
    let architecture = describe(&model);
    let mut run = prepare_run(
        backend,
        model,
        &architecture,
        config,
        data,
        options.resume.as_deref(),
    )?;
    let splits = Splits::upload(data, config.layout, backend)?;
    config.augmentation.check_image(splits.image)?;
    let schedule = config.build_schedule(splits.train.len().div_ceil(config.batch_size))?;
    let start = Instant::now();
    while run.progress.epoch < config.epochs && !patience_ran_out(&run) {
        let epoch_start = Instant::now();
        let sums = train_epoch(&mut run, &splits, &schedule, options.quiet)?;
        let record = end_epoch(
            &mut run,
            &splits.validation,
            sums,
            epoch_start,
            !options.quiet,
        )?;
        if let Some(out) = &options.out {
            save_epoch_outputs(&run, out)?;
        }
        if let Some(hook) = options.on_epoch.as_mut() {
            hook(&record);
        }
    }
    let stopped_early = patience_ran_out(&run);
    finish(
        run,
        data,
        options.out.as_deref(),
        stopped_early,
        start,
        !options.quiet,
    )
}

/// The run's model, optimiser and state: fresh, or continued from `resume`'s checkpoint. The
/// best-parameter copy exists from the start, so device memory is the same in every epoch
/// (it is overwritten, never added, when validation improves).
fn prepare_run<'a, B: Backend, M: Module<B>>(
    backend: &'a B,
    mut model: M,
    architecture: &str,
    config: &'a TrainConfig,
    data: &RunData,
    resume: Option<&Path>,
) -> Result<Run<'a, B, M>> {
    model.set_training(true);
    model.set_precision(config.precision);
    let params = model.parameters();
    let mut run = Run {
        config,
        backend,
        model,
        params,
        updater: Updater::new(config)?,
        progress: Progress::default(),
        best: None,
        architecture: architecture.to_string(),
        class_names: data.train.class_names.clone(),
        normalization: data.normalization.clone(),
        ema: if config.ema_decay > 0.0 {
            Some(Ema::new(config.ema_decay)?.with_warmup())
        } else {
            None
        },
        loss_scaler: match config.precision {
            Precision::Mixed => Some(LossScaler::new(backend)?),
            Precision::F32 => None,
        },
        micro_batches: config.micro_batches,
    };
    if let Some(dir) = resume {
        let path = dir.join("checkpoint.safetensors");
        let checkpoint = Checkpoint::load(&path)?;
        run.restore(&path, &checkpoint)?;
    }
    if run.best.is_none() {
        run.best = Some((run.snapshot()?, run.buffer_snapshot()?));
    }
    if run.progress.plateau.is_none() {
        run.progress.plateau = config.plateau()?.map(|rule| (rule, config.lr));
    }
    Ok(run)
}

/// The checkpoint, config.json, metrics.jsonl and report.svg after an epoch.
fn save_epoch_outputs<B: Backend, M: Module<B>>(run: &Run<'_, B, M>, out: &Path) -> Result<()> {
    run.checkpoint()?
        .save(&out.join("checkpoint.safetensors"))?;
    write_atomically(
        &out.join("config.json"),
        serde_json::to_string_pretty(run.config)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    write_outputs(out, run.config, &run.architecture, &run.progress.history)
}

/// The end of the run: the best parameters (and their batch-norm statistics) restored, the
/// test evaluation, the final checkpoint (which keeps the last epoch's state under `last.*`
/// when the best was earlier, for resuming), and the outcome.
fn finish<B: Backend, M: Module<B>>(
    mut run: Run<'_, B, M>,
    data: &RunData,
    out: Option<&Path>,
    stopped_early: bool,
    start: Instant,
    log: bool,
) -> Result<(Outcome, M)> {
    let config = run.config;
    let last = (run.snapshot()?, run.buffer_snapshot()?);
    let best_is_last = run.progress.best_epoch == run.progress.epoch || !config.restore_best;
    if let Some((best, buffers)) = run.best.take().filter(|_| config.restore_best) {
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
    let classes = run.class_names.len();
    let batch = config.batch_size.max(256);
    let test_set = upload(&data.test, data, config.layout, run.backend)?;
    let test = evaluate(&mut run.model, &test_set, classes, batch)?;
    let test_ema = evaluate_averaged(&mut run, &test_set, classes, batch)?;
    if let Some(out) = out {
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
    let samples = run.progress.history.len() as f64 * data.train.len() as f64;
    outcome(run, test, test_ema, stopped_early, train_seconds, samples)
}

/// The outcome of a finished run, with its final parameters and buffers on the host, and the
/// trained model.
fn outcome<B: Backend, M: Module<B>>(
    run: Run<'_, B, M>,
    test: Evaluation,
    test_ema: Option<Evaluation>,
    stopped_early: bool,
    train_seconds: f64,
    samples: f64,
) -> Result<(Outcome, M)> {
    let epoch_seconds: Vec<f64> = run.progress.history.iter().map(|r| r.seconds).collect();
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
    let outcome = Outcome {
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
        micro_batches: run.micro_batches,
        parameters,
    };
    Ok((outcome, run.model))
}

/// The evaluation of the averaged (EMA) parameters, when averaging is on: they are swapped in
/// for the evaluation and swapped back after it.
pub(crate) fn evaluate_averaged<B: Backend, M: Module<B>>(
    run: &mut Run<'_, B, M>,
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

/// The seed lecture's first sanity check: a classifier with small random weights predicts
/// nearly uniform probabilities, so its first loss is close to ln C (within half of it).
pub fn initial_loss_is_plausible(loss: f64, classes: usize) -> bool {
    let expected = (classes as f64).ln();
    (loss - expected).abs() <= 0.5 * expected
}
