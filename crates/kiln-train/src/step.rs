//! One training step: a minibatch gathered (and augmented) on the device, the forward pass,
//! the loss (plus an L1 penalty), backward (scaled in mixed precision), gradient clipping, the
//! optimiser step, the max-norm constraint and the EMA update, and the device scalars the
//! epoch sums. Nothing is read back; a monitored step also returns its
//! layer statistics, still on the device.

use crate::config::Regularization;
use crate::config::{Loss, TrainConfig};
use crate::error::{Result, TrainError};
use crate::monitor::{self, Pending};
use crate::run_state::Run;
use crate::updater::Updater;
use kiln_autograd::Var;
use kiln_data::{DeviceAugmentation, DeviceDataset, LabelMix};
use kiln_nn::loss::{mean_squared_error, multiclass_hinge, one_hot, softmax_cross_entropy};
use kiln_nn::regularization::{apply_max_norm, clip_grad_norm, clip_grad_value, l1_penalty};
use kiln_nn::{LayerOutput, Module, Parameter};
use kiln_tensor::{Backend, BinaryOp, DType, KilnError, Tensor};

/// One minibatch on the device: inputs, labels, and CutMix's partners and weights if any.
pub(crate) struct Batch<B: Backend> {
    pub(crate) x: Tensor<B>,
    pub(crate) y: Tensor<B>,
    pub(crate) mix: Option<LabelMix<B>>,
    pub(crate) len: usize,
}

/// Rows [start, start + len) of the epoch's shuffled order, augmented when `augment` is set
/// (on the unit-scaled pixels, before the normalisation).
pub(crate) fn gather_batch<B: Backend>(
    data: &DeviceDataset<B>,
    augment: Option<&DeviceAugmentation<B>>,
    order: &Tensor<B>,
    start: usize,
    len: usize,
) -> Result<Batch<B>> {
    let indices = order.narrow(0, start, len)?;
    let (x, y, mix) = match augment {
        Some(augment) => {
            let (unit, y) = data.raw_batch(&indices)?;
            let (unit, mix) = augment.apply(&unit, start, len)?;
            (data.normalize(&unit)?, y, mix)
        }
        None => {
            let (x, y) = data.batch(&indices)?;
            (x, y, None)
        }
    };
    Ok(Batch { x, y, mix, len })
}

/// What a step leaves on the device for the epoch: the batch's summed loss and number of
/// correct predictions, and on monitored steps the layer statistics.
pub(crate) struct StepSums<B: Backend> {
    pub(crate) loss: Tensor<B>,
    pub(crate) correct: Tensor<B>,
    pub(crate) monitored: Option<Pending<B>>,
}

/// Records one step at learning rate `lr`; with `monitoring`, the forward pass keeps every
/// layer's output and the step measures the weights' gradients and updates.
///
/// A batch is trained in `run.micro_batches` parts (the config's `micro_batches`, 1 unless
/// set). One whose activations pass the device's storage-binding limit fails to allocate while
/// the step is recorded, before anything is stepped; the running statistics and random
/// streams the attempt advanced are put back, and it is split into 2, 4, …
/// micro-batches whose gradients add up to the batch's (each part's mean loss weighted by its
/// share of the batch), followed by one optimiser step, and the split is kept for the rest of
/// the run. Batch normalisation then uses each part's own statistics, as in gradient
/// accumulation. L-BFGS re-evaluates the whole batch, so it is never split.
pub(crate) fn train_step<B: Backend, M: Module<B>>(
    run: &mut Run<'_, B, M>,
    batch: Batch<B>,
    lr: f32,
    monitoring: bool,
    weights: &[(String, Parameter<B>)],
) -> Result<StepSums<B>> {
    loop {
        let parts = run.micro_batches.min(batch.len);
        let splittable = parts < batch.len && !matches!(run.updater, Updater::Lbfgs(..));
        // What a failed attempt's forward pass may have moved on (batch-norm running
        // statistics, dropout streams): tensors are immutable, so these are handles, not copies.
        let buffers = run.model.buffers();
        let streams = run.model.rng_states();
        match step_in_parts(run, &batch, (lr, monitoring), weights, parts) {
            Err(TrainError::Tensor(e @ KilnError::TooLarge { .. })) if splittable => {
                for (name, value) in &buffers {
                    run.model.set_buffer(name, value)?;
                }
                for (name, state) in streams {
                    run.model.set_rng_state(&name, state);
                }
                run.micro_batches = parts * 2;
                eprintln!(
                    "kiln: a batch of {} does not fit the device ({e}); training it as {} micro-batches of about {} (gradients accumulated, one step)",
                    batch.len,
                    parts * 2,
                    batch.len.div_ceil(parts * 2)
                );
            }
            other => return other,
        }
    }
}

/// Rows [start, start + len) of a batch: inputs, labels and the target probabilities.
struct Part<B: Backend> {
    x: Tensor<B>,
    y: Tensor<B>,
    soft: Option<Tensor<B>>,
}

/// One step over `batch` in `parts` micro-batches (1: the whole batch at once).
fn step_in_parts<B: Backend, M: Module<B>>(
    run: &mut Run<'_, B, M>,
    batch: &Batch<B>,
    (lr, monitoring): (f32, bool),
    weights: &[(String, Parameter<B>)],
    parts: usize,
) -> Result<StepSums<B>> {
    let classes = run.class_names.len();
    let config = run.config;
    run.updater.set_learning_rate(lr);
    run.model.zero_grad();
    let soft = soft_targets(config, batch, classes)?;
    let size = batch.len.div_ceil(parts);
    let (mut loss_sum, mut correct_sum) = (None, None);
    let mut first = None;
    for (index, start) in (0..batch.len).step_by(size).enumerate() {
        let len = size.min(batch.len - start);
        let part = Part {
            x: batch.x.narrow(0, start, len)?,
            y: batch.y.narrow(0, start, len)?,
            soft: soft.as_ref().map(|t| t.narrow(0, start, len)).transpose()?,
        };
        let input = Var::constant(part.x.clone());
        let outputs = if monitoring && index == 0 {
            run.model.forward_each(&input)?
        } else {
            vec![LayerOutput {
                layer: String::new(),
                activation: None,
                value: run.model.forward(&input)?,
            }]
        };
        let logits = outputs
            .last()
            .map(|o| o.value.clone())
            .expect("the model has layers");
        let loss = part_loss(config, &logits, &part)?;
        let weighted = if parts == 1 {
            loss.clone()
        } else {
            loss.binary_scalar(BinaryOp::Mul, len as f64 / batch.len as f64)?
        };
        let objective = if index == 0 {
            with_penalty(&weighted, config.regularization.l1, weights)?
        } else {
            weighted
        };
        match &run.loss_scaler {
            Some(scaler) => scaler.scale_loss(&objective)?.backward()?,
            None => objective.backward()?,
        }
        let predicted = logits.value().argmax(1)?.cast(DType::F32)?;
        let correct = predicted.eq(&part.y.cast(DType::F32)?)?.sum_all()?;
        correct_sum = Some(add(correct_sum.take(), correct)?);
        loss_sum = Some(add(loss_sum.take(), (loss.value() * len as f32)?)?);
        if index == 0 {
            first = Some((outputs, loss));
        }
    }
    if let Some(scaler) = &run.loss_scaler {
        scaler.unscale(&run.params)?;
    }
    clip_gradients(&run.params, &run.config.regularization)?;
    let measured = if monitoring {
        let grads: Vec<_> = weights.iter().map(|(_, p)| p.grad()).collect();
        Some((grads, monitor::before_step(weights)?))
    } else {
        None
    };
    let (model, whole) = (&run.model, whole_batch(batch, soft));
    run.updater
        .step(&run.params, run.loss_scaler.as_ref(), || {
            let logits = model.forward(&Var::constant(whole.x.clone()))?;
            let loss = part_loss(config, &logits, &whole)?;
            with_penalty(&loss, config.regularization.l1, weights)
        })?;
    if let Some(max_norm) = run.config.regularization.max_norm {
        for (_, w) in weights {
            apply_max_norm(w, max_norm)?;
        }
    }
    if let Some(ema) = run.ema.as_mut() {
        ema.update(&run.params)?;
    }
    let (outputs, loss) = first.expect("a batch has one part at least");
    let monitored = match measured {
        // With several parts, the layer statistics are the first part's.
        Some((grads, before)) => Some(monitor::after_step(
            weights,
            &grads,
            &before,
            &outputs,
            loss.value(),
        )?),
        None => None,
    };
    Ok(StepSums {
        loss: loss_sum.expect("one part at least"),
        correct: correct_sum.expect("one part at least"),
        monitored,
    })
}

fn add<B: Backend>(sum: Option<Tensor<B>>, value: Tensor<B>) -> kiln_tensor::Result<Tensor<B>> {
    match sum {
        Some(sum) => sum + &value,
        None => Ok(value),
    }
}

fn whole_batch<B: Backend>(batch: &Batch<B>, soft: Option<Tensor<B>>) -> Part<B> {
    Part {
        x: batch.x.clone(),
        y: batch.y.clone(),
        soft,
    }
}

/// The loss plus λ1 · Σ|w| over the weight matrices (the data loss alone when λ1 is 0).
fn with_penalty<B: Backend>(
    loss: &Var<B>,
    l1: f32,
    weights: &[(String, Parameter<B>)],
) -> kiln_tensor::Result<Var<B>> {
    if l1 == 0.0 {
        return Ok(loss.clone());
    }
    let weights: Vec<Parameter<B>> = weights.iter().map(|(_, w)| w.clone()).collect();
    Ok(match l1_penalty(&weights, l1)? {
        Some(penalty) => loss.add(&penalty)?,
        None => loss.clone(),
    })
}

/// Gradient clipping by global norm, then by value, as configured; on the device.
fn clip_gradients<B: Backend>(params: &[Parameter<B>], r: &Regularization) -> Result<()> {
    if let Some(max_norm) = r.clip_grad_norm {
        clip_grad_norm(params, max_norm)?;
    }
    if let Some(clip) = r.clip_grad_value {
        clip_grad_value(params, clip)?;
    }
    Ok(())
}

/// Whether the configured loss takes target probabilities (rather than labels): under
/// CutMix or CowMix, and for the squared error. They are made once for the whole batch (the
/// mixing partners are rows of the whole batch), then sliced with the micro-batches.
fn soft_targets<B: Backend>(
    config: &TrainConfig,
    batch: &Batch<B>,
    classes: usize,
) -> kiln_tensor::Result<Option<Tensor<B>>> {
    let needed = match config.loss {
        Loss::CrossEntropy => batch.mix.is_some(),
        Loss::Mse => true,
        Loss::Hinge => false,
    };
    if !needed {
        return Ok(None);
    }
    let smoothing = config.label_smoothing;
    targets(&batch.y, batch.mix.as_ref(), classes, smoothing).map(Some)
}

/// The configured loss of a part's scores: cross-entropy (soft targets under CutMix, label
/// smoothing), mean squared error against one-hot or soft targets, or the multiclass hinge.
fn part_loss<B: Backend>(
    config: &TrainConfig,
    logits: &Var<B>,
    part: &Part<B>,
) -> kiln_tensor::Result<Var<B>> {
    let smoothing = config.label_smoothing;
    Ok(match (config.loss, &part.soft) {
        (Loss::CrossEntropy, None) => softmax_cross_entropy(logits, &part.y, smoothing)?,
        (Loss::CrossEntropy, Some(soft)) => logits.softmax_xent(soft)?.mean_all()?,
        (Loss::Mse, Some(soft)) => mean_squared_error(logits, soft)?,
        (Loss::Mse, None) => unreachable!("soft_targets makes the squared error's targets"),
        // Validation refuses hinge with CutMix or label smoothing.
        (Loss::Hinge, _) => multiclass_hinge(logits, &part.y, 1.0)?,
    })
}

/// Target probabilities: one-hot labels, mixed under CutMix as (1 − w)·onehot(y) +
/// w·onehot(y[partner]) per row, then label smoothing (1 − ε)·t + ε / classes.
fn targets<B: Backend>(
    y: &Tensor<B>,
    mix: Option<&LabelMix<B>>,
    classes: usize,
    smoothing: f32,
) -> kiln_tensor::Result<Tensor<B>> {
    let own = one_hot(y, classes, DType::F32)?;
    let targets = match mix {
        Some(mix) => {
            let len = y.numel();
            let partner_labels = y
                .reshape([len, 1])?
                .gather_rows(&mix.partner)?
                .reshape([len])?;
            let other = one_hot(&partner_labels, classes, DType::F32)?;
            (&own + &((&other - &own)? * &mix.weight)?)?
        }
        None => own,
    };
    Ok(if smoothing > 0.0 {
        ((targets * (1.0 - smoothing))? + smoothing / classes as f32)?
    } else {
        targets
    })
}
