//! One training step: a minibatch gathered (and augmented) on the device, the forward pass,
//! the loss (plus an L1 penalty), backward (scaled in mixed precision), gradient clipping, the
//! optimiser step, the max-norm constraint and the EMA update, and the device scalars the
//! epoch sums. Nothing is read back; a monitored step also returns its
//! layer statistics, still on the device.

use crate::config::Regularization;
use crate::config::{Loss, TrainConfig};
use crate::error::Result;
use crate::monitor::{self, Pending};
use crate::run_state::Run;
use kiln_autograd::Var;
use kiln_data::{DeviceAugmentation, DeviceDataset, LabelMix};
use kiln_nn::loss::{mean_squared_error, multiclass_hinge, one_hot, softmax_cross_entropy};
use kiln_nn::regularization::{apply_max_norm, clip_grad_norm, clip_grad_value, l1_penalty};
use kiln_nn::{LayerOutput, Module, Parameter};
use kiln_tensor::{Backend, DType, Tensor};

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
pub(crate) fn train_step<B: Backend, M: Module<B>>(
    run: &mut Run<'_, B, M>,
    batch: Batch<B>,
    lr: f32,
    monitoring: bool,
    weights: &[(String, Parameter<B>)],
) -> Result<StepSums<B>> {
    let classes = run.class_names.len();
    run.updater.set_learning_rate(lr);
    run.model.zero_grad();
    let input = Var::constant(batch.x.clone());
    let outputs = if monitoring {
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
    let loss = step_loss(run.config, &logits, &batch, classes)?;
    let objective = with_penalty(&loss, run.config.regularization.l1, weights)?;
    match &run.loss_scaler {
        Some(scaler) => {
            scaler.scale_loss(&objective)?.backward()?;
            scaler.unscale(&run.params)?;
        }
        None => objective.backward()?,
    }
    clip_gradients(&run.params, &run.config.regularization)?;
    let measured = if monitoring {
        let grads: Vec<_> = weights.iter().map(|(_, p)| p.grad()).collect();
        Some((grads, monitor::before_step(weights)?))
    } else {
        None
    };
    let (model, config) = (&run.model, run.config);
    run.updater
        .step(&run.params, run.loss_scaler.as_ref(), || {
            let logits = model.forward(&input)?;
            let loss = step_loss(config, &logits, &batch, classes)?;
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
    let predicted = logits.value().argmax(1)?.cast(DType::F32)?;
    let correct = predicted.eq(&batch.y.cast(DType::F32)?)?.sum_all()?;
    let monitored = match measured {
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
        loss: (loss.value() * batch.len as f32)?,
        correct,
        monitored,
    })
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

/// The configured loss of a batch's scores: cross-entropy (soft targets under CutMix, label
/// smoothing), mean squared error against one-hot or soft targets, or the multiclass hinge.
fn step_loss<B: Backend>(
    config: &TrainConfig,
    logits: &Var<B>,
    batch: &Batch<B>,
    classes: usize,
) -> kiln_tensor::Result<Var<B>> {
    let smoothing = config.label_smoothing;
    let targets = || targets(&batch.y, batch.mix.as_ref(), classes, smoothing);
    Ok(match (config.loss, &batch.mix) {
        (Loss::CrossEntropy, None) => softmax_cross_entropy(logits, &batch.y, smoothing)?,
        (Loss::CrossEntropy, Some(_)) => logits.softmax_xent(&targets()?)?.mean_all()?,
        (Loss::Mse, _) => mean_squared_error(logits, &targets()?)?,
        // Validation refuses hinge with CutMix or label smoothing.
        (Loss::Hinge, _) => multiclass_hinge(logits, &batch.y, 1.0)?,
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
