//! One epoch of the loop: the splits on the device, the epoch's steps (shuffled order,
//! augmentation choices, the schedule's rate, monitored steps read back with the
//! initial-loss check and the explosion guard), and its end (validation, the record and its
//! log lines, the best epoch so far).

use crate::config::{InputLayout, Loss};
use crate::error::{Result, TrainError};
use crate::history::{EpochRecord, LayerStats};
use crate::metrics::Evaluation;
use crate::monitor;
use crate::progress::EpochProgress;
use crate::run_state::Run;
use crate::step::{gather_batch, train_step};
use crate::trainer::{evaluate, evaluate_averaged, initial_loss_is_plausible, RunData};
use kiln_data::{shuffled_indices, Dataset, DeviceAugmentation, DeviceDataset, EpochChoices};
use kiln_nn::schedule::Schedule;
use kiln_nn::Module;
use kiln_tensor::{Backend, ImageShape, Tensor};
use std::time::Instant;

/// The training and validation splits on the device.
pub(crate) struct Splits<B: Backend> {
    pub(crate) train: DeviceDataset<B>,
    pub(crate) validation: DeviceDataset<B>,
    pub(crate) image: ImageShape,
}

impl<B: Backend> Splits<B> {
    pub(crate) fn upload(data: &RunData, layout: InputLayout, backend: &B) -> Result<Self> {
        Ok(Splits {
            train: upload(&data.train, data, layout, backend)?,
            validation: upload(&data.validation, data, layout, backend)?,
            image: data.train.image_shape(),
        })
    }
}

/// One split on the device, its batches shaped as `layout` says.
pub(crate) fn upload<B: Backend>(
    split: &Dataset,
    data: &RunData,
    layout: InputLayout,
    backend: &B,
) -> Result<DeviceDataset<B>> {
    let images = layout == InputLayout::Images;
    Ok(DeviceDataset::upload(split, &data.normalization, backend, None)?.image_batches(images))
}

pub(crate) fn patience_ran_out<B: Backend, M: Module<B>>(run: &Run<'_, B, M>) -> bool {
    run.config.patience > 0 && run.progress.stale_epochs >= run.config.patience
}

/// An epoch's training figures, read back once at its end.
pub(crate) struct EpochSums {
    samples: usize,
    loss: f64,
    accuracy: f64,
    lr: f32,
    layers: Vec<LayerStats>,
}

/// One epoch of steps over the shuffled training split (augmented when configured). Per step
/// nothing is read back; monitored steps read their loss and layer statistics.
pub(crate) fn train_epoch<B: Backend, M: Module<B>>(
    run: &mut Run<'_, B, M>,
    splits: &Splits<B>,
    schedule: &Schedule,
    quiet: bool,
) -> Result<EpochSums> {
    let config = run.config;
    let data = &splits.train;
    let epoch = run.progress.epoch + 1;
    let order = shuffled_indices(data.len(), config.seed, epoch as u64);
    let order = Tensor::from_vec(order, [data.len()], run.backend)?;
    let augment = epoch_augmentation(run, splits, epoch)?;
    let weights = monitor::weights(&run.params);
    let bar = EpochProgress::new(epoch, config.epochs, data.len() as u64, quiet);
    let (mut loss_sum, mut correct_sum): (Option<Tensor<B>>, Option<Tensor<B>>) = (None, None);
    let mut layers = Vec::new();
    let mut lr = learning_rate(run, schedule);
    for start in (0..data.len()).step_by(config.batch_size) {
        let len = config.batch_size.min(data.len() - start);
        let batch = gather_batch(data, augment.as_ref(), &order, start, len)?;
        lr = learning_rate(run, schedule);
        let monitoring = run
            .progress
            .step
            .is_multiple_of(config.monitor_every as u64);
        let sums = train_step(run, batch, lr, monitoring, &weights)?;
        loss_sum = Some(add_to(loss_sum.take(), sums.loss)?);
        correct_sum = Some(add_to(correct_sum.take(), sums.correct)?);
        if let Some(pending) = sums.monitored {
            let (step_loss, stats) = pending.read()?;
            if let Err(e) = check_monitored_loss(run, step_loss, epoch, lr, quiet) {
                bar.finish();
                return Err(e);
            }
            bar.loss(step_loss);
            layers = stats;
        }
        bar.advance(len as u64);
        run.progress.step += 1;
    }
    bar.finish();
    // Released before the readback's submit, so the next epoch's index tensor reuses this
    // one's buffer instead of allocating another.
    drop(order);
    drop(augment);
    let sums = Tensor::read_many(&[
        loss_sum.as_ref().expect("one batch at least"),
        correct_sum.as_ref().expect("one batch at least"),
    ])?;
    let loss = sums[0].to_f64_vec()[0] / data.len() as f64;
    check_not_diverged(run, loss, epoch, lr)?;
    Ok(EpochSums {
        samples: data.len(),
        loss,
        accuracy: sums[1].to_f64_vec()[0] / data.len() as f64,
        lr,
        layers,
    })
}

/// The rate for the next step: the schedule's, or the one reduce-on-plateau has set.
fn learning_rate<B: Backend, M: Module<B>>(run: &Run<'_, B, M>, schedule: &Schedule) -> f32 {
    match &run.progress.plateau {
        Some((_, lr)) => *lr,
        None => schedule.lr_at(run.progress.step as usize),
    }
}

fn add_to<B: Backend>(sum: Option<Tensor<B>>, term: Tensor<B>) -> Result<Tensor<B>> {
    Ok(match sum {
        Some(s) => (s + &term)?,
        None => term,
    })
}

/// The epoch's augmentation: per-image choices drawn from (seed, epoch), uploaded once.
fn epoch_augmentation<B: Backend, M: Module<B>>(
    run: &Run<'_, B, M>,
    splits: &Splits<B>,
    epoch: usize,
) -> Result<Option<DeviceAugmentation<B>>> {
    let (config, augmentation) = (run.config, &run.config.augmentation);
    if !augmentation.is_active() {
        return Ok(None);
    }
    let choices = EpochChoices::draw(
        augmentation,
        splits.image,
        splits.train.len(),
        config.batch_size,
        config.seed,
        epoch as u64,
    );
    Ok(Some(DeviceAugmentation::upload(
        augmentation,
        &choices,
        splits.image,
        run.backend,
    )?))
}

/// A monitored step's loss: the first one is the initial-loss sanity check (≈ ln C), every
/// one goes through the explosion guard.
fn check_monitored_loss<B: Backend, M: Module<B>>(
    run: &mut Run<'_, B, M>,
    loss: f64,
    epoch: usize,
    lr: f32,
    quiet: bool,
) -> Result<()> {
    if run.progress.step == 0 && run.progress.initial_loss == 0.0 {
        run.progress.initial_loss = loss;
        let classes = run.class_names.len();
        let expected = (classes as f64).ln();
        if !quiet && run.config.loss == Loss::CrossEntropy {
            let verdict = if initial_loss_is_plausible(loss, classes) {
                "as expected for random initial weights"
            } else {
                "warning: far from ln(C); check the initialisation and the labels"
            };
            println!("initial loss {loss:.4} vs ln({classes}) = {expected:.4}: {verdict}");
        } else if !quiet {
            println!("initial loss {loss:.4} ({:?})", run.config.loss);
        }
    }
    check_not_diverged(run, loss, epoch, lr)
}

/// The explosion guard: a non-finite loss, or one above three times the initial loss.
fn check_not_diverged<B: Backend, M: Module<B>>(
    run: &Run<'_, B, M>,
    loss: f64,
    epoch: usize,
    lr: f32,
) -> Result<()> {
    let initial = run.progress.initial_loss;
    if !loss.is_finite() || (initial > 0.0 && loss > 3.0 * initial) {
        return Err(TrainError::Diverged {
            epoch,
            step: run.progress.step,
            loss,
            initial,
            lr,
        });
    }
    Ok(())
}

/// The end of an epoch: validation (and of the averaged weights), the record and its log
/// lines, and the best-so-far bookkeeping.
pub(crate) fn end_epoch<B: Backend, M: Module<B>>(
    run: &mut Run<'_, B, M>,
    validation: &DeviceDataset<B>,
    sums: EpochSums,
    epoch_start: Instant,
    log: bool,
) -> Result<EpochRecord> {
    let classes = run.class_names.len();
    let batch = run.config.batch_size.max(256);
    let val = evaluate(&mut run.model, validation, classes, batch)?;
    let val_accuracy_ema = evaluate_averaged(run, validation, classes, batch)?.map(|e| e.accuracy);
    let seconds = epoch_start.elapsed().as_secs_f64();
    let epoch = run.progress.epoch + 1;
    let record = EpochRecord {
        epoch,
        step: run.progress.step,
        lr: sums.lr,
        train_loss: sums.loss,
        train_accuracy: sums.accuracy,
        val_loss: val.loss,
        val_accuracy: val.accuracy,
        val_precision: val.precision.clone(),
        val_recall: val.recall.clone(),
        val_roc_auc: val.macro_roc_auc,
        val_confusion: val.confusion.clone(),
        val_accuracy_ema,
        seconds,
        samples_per_second: sums.samples as f64 / seconds,
        layers: sums.layers,
    };
    if log {
        log_epoch(run, &record)?;
    }
    run.progress.epoch = epoch;
    if let Some((rule, lr)) = run.progress.plateau.as_mut() {
        *lr = rule.observe(val.loss, *lr);
    }
    track_best(run, &val)?;
    run.progress.history.push(record.clone());
    Ok(record)
}

/// The epoch's log lines: losses and accuracies, the averaged weights, the loss scale, and
/// each layer's monitors.
fn log_epoch<B: Backend, M: Module<B>>(run: &Run<'_, B, M>, r: &EpochRecord) -> Result<()> {
    println!(
        "epoch {}/{}: train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} auc {:.4} | lr {:.2e} | {:.1} s ({:.0} samples/s)",
        r.epoch, run.config.epochs, r.train_loss, r.train_accuracy, r.val_loss, r.val_accuracy,
        r.val_roc_auc, r.lr, r.seconds, r.samples_per_second
    );
    if let Some(a) = r.val_accuracy_ema {
        println!(
            "  averaged (EMA {}) weights: val acc {a:.4}",
            run.config.ema_decay
        );
    }
    if let Some(scaler) = &run.loss_scaler {
        let (scale, skipped) = scaler.read()?;
        println!(
            "  mixed precision: loss scale {scale}, {skipped} steps skipped on overflow so far"
        );
    }
    for l in &r.layers {
        let activations = match (l.activation_mean, l.activation_std, l.dead_fraction) {
            (Some(m), Some(s), d) => format!(
                "  activations mean {m:.3} std {s:.3}{}",
                d.map_or(String::new(), |d| format!(" dead {:.1}%", 100.0 * d))
            ),
            _ => String::new(),
        };
        println!(
            "  {:<8} update/weight {:.2e} (≈1e-3 is healthy)  |grad| {:.3e}{activations}",
            l.layer, l.update_ratio, l.grad_norm
        );
    }
    Ok(())
}

/// Keeps a copy of the parameters of the best epoch so far (validation accuracy, then loss),
/// and counts the epochs since it for early stopping.
fn track_best<B: Backend, M: Module<B>>(run: &mut Run<'_, B, M>, val: &Evaluation) -> Result<()> {
    let p = &mut run.progress;
    let improved = val.accuracy > p.best_val_accuracy
        || (val.accuracy == p.best_val_accuracy && val.loss < p.best_val_loss);
    if p.best_epoch == 0 || improved {
        p.best_val_accuracy = val.accuracy;
        p.best_val_loss = val.loss;
        p.best_epoch = p.epoch;
        p.stale_epochs = 0;
        // Free the old copy first so the new one reuses its device memory.
        run.best = None;
        run.best = Some((run.snapshot()?, run.buffer_snapshot()?));
    } else {
        p.stale_epochs += 1;
    }
    Ok(())
}
