//! A run's state beyond what the trainer loops over: progress (epoch, step, early-stopping
//! state, history, dropout stream positions), the best-parameter snapshot, the averaged
//! weights, and their round trip through checkpoint.safetensors.

use crate::checkpoint::Checkpoint;
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::history::EpochRecord;
use crate::updater::Updater;
use kiln_data::Normalization;
use kiln_nn::optim::OptimizerState;
use kiln_nn::schedule::ReduceOnPlateau;
use kiln_nn::{Ema, LossScaler, Module, Parameter};
use kiln_tensor::{Backend, RngState, Tensor};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The model's description for the checkpoint's `architecture` metadata: its layer stack when
/// every layer is one of Kiln's (so `--evaluate` and `--resume` rebuild it), otherwise, for a
/// module of the caller's own, its parameters' names and shapes (its weights load back by name
/// with `load_weights`).
pub(crate) fn describe<B: Backend, M: Module<B>>(model: &M) -> String {
    match model.spec() {
        Some(spec) => serde_json::json!({ "kind": "layers", "spec": spec }).to_string(),
        None => {
            let parameters: serde_json::Map<String, serde_json::Value> = model
                .parameters()
                .iter()
                .map(|p| (p.name().to_string(), serde_json::json!(p.value().dims())))
                .collect();
            serde_json::json!({ "kind": "custom", "parameters": parameters }).to_string()
        }
    }
}

/// Resumable state beyond the tensors.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub(crate) struct Progress {
    pub(crate) epoch: usize,
    pub(crate) step: u64,
    pub(crate) best_epoch: usize,
    pub(crate) best_val_accuracy: f64,
    /// The validation loss at the best epoch (breaks ties in accuracy).
    #[serde(default)]
    pub(crate) best_val_loss: f64,
    pub(crate) stale_epochs: usize,
    pub(crate) initial_loss: f64,
    pub(crate) history: Vec<EpochRecord>,
    pub(crate) rng: Vec<(String, u64, u64)>,
    /// `--schedule plateau`: the rule's state and the learning rate it has set.
    #[serde(default)]
    pub(crate) plateau: Option<(ReduceOnPlateau, f32)>,
}

/// Parameters and buffers at the best epoch.
pub(crate) type Snapshot<B> = (Vec<Tensor<B>>, Vec<(String, Tensor<B>)>);

pub(crate) struct Run<'a, B: Backend, M: Module<B>> {
    pub(crate) config: &'a TrainConfig,
    pub(crate) backend: &'a B,
    pub(crate) model: M,
    pub(crate) params: Vec<Parameter<B>>,
    pub(crate) updater: Updater<B>,
    pub(crate) progress: Progress,
    pub(crate) best: Option<Snapshot<B>>,
    /// The model's description for the checkpoint's `architecture` metadata (JSON).
    pub(crate) architecture: String,
    pub(crate) class_names: Vec<String>,
    pub(crate) normalization: Normalization,
    pub(crate) ema: Option<Ema<B>>,
    /// Dynamic loss scaling, in mixed precision.
    pub(crate) loss_scaler: Option<LossScaler<B>>,
    /// Parts each training batch is split into (gradients accumulated, one optimiser step):
    /// 1 until a batch's activations pass the device's storage-binding limit (see step.rs).
    pub(crate) micro_batches: usize,
}

impl<B: Backend, M: Module<B>> Run<'_, B, M> {
    pub(crate) fn checkpoint(&self) -> Result<Checkpoint> {
        let mut c = Checkpoint::default();
        for p in &self.params {
            c.put(format!("param.{}", p.name()), &p.value())?;
        }
        for (name, t) in self.model.buffers() {
            c.put(format!("buffer.{name}"), &t)?;
        }
        let state = self.updater.state()?;
        for (name, t) in &state.tensors {
            c.put(format!("optim.{name}"), t)?;
        }
        if let Some((best, buffers)) = &self.best {
            if self.progress.best_epoch != self.progress.epoch {
                for (p, t) in self.params.iter().zip(best) {
                    c.put(format!("best.{}", p.name()), t)?;
                }
                for (name, t) in buffers {
                    c.put(format!("best_buffer.{name}"), t)?;
                }
            }
        }
        if let Some(scaler) = &self.loss_scaler {
            let (scale, flags) = scaler.state();
            c.put("loss_scale.scale", scale)?;
            c.put("loss_scale.flags", flags)?;
        }
        if let Some(ema) = &self.ema {
            for (name, t) in ema.averages() {
                c.put(format!("ema.{name}"), &t)?;
            }
            c.meta("ema_updates", ema.updates());
        }
        let features = self.normalization.mean.len();
        if let Some(w) = &self.normalization.whitening {
            c.put(
                "preprocess.whitening",
                &Tensor::from_slice(w, [features, features], self.backend)?,
            )?;
        }
        c.put(
            "preprocess.mean",
            &Tensor::from_slice(&self.normalization.mean, [features], self.backend)?,
        )?;
        c.put(
            "preprocess.std",
            &Tensor::from_slice(&self.normalization.std, [features], self.backend)?,
        )?;
        c.meta("architecture", &self.architecture);
        c.meta(
            "config",
            serde_json::to_string(self.config).unwrap_or_default(),
        );
        c.meta(
            "class_names",
            serde_json::to_string(&self.class_names).unwrap_or_default(),
        );
        c.meta("preprocessing", self.normalization.kind.name());
        c.meta("optimizer", state.kind);
        c.meta("optimizer_step", state.step);
        c.meta("epoch", self.progress.epoch);
        let mut progress = self.progress.clone();
        progress.rng = self
            .model
            .rng_states()
            .into_iter()
            .map(|(n, s)| (n, s.seed, s.offset))
            .collect();
        c.meta(
            "progress",
            serde_json::to_string(&progress).unwrap_or_default(),
        );
        Ok(c)
    }

    /// Restores parameters, buffers, optimiser state and progress from `checkpoint`; every
    /// mismatch with this model is listed. A run continues from its last epoch: the final
    /// checkpoint of a run that restored an earlier best epoch keeps the last epoch's
    /// parameters and buffers under `last.*` and `last_buffer.*` (its `param.*` and `buffer.*`
    /// are the best, which become the best so far).
    pub(crate) fn restore(&mut self, path: &Path, c: &Checkpoint) -> Result<()> {
        let finished_at_an_earlier_best = !c.names_with("last.").is_empty();
        let (param_prefix, buffer_prefix) = if finished_at_an_earlier_best {
            ("last.", "last_buffer.")
        } else {
            ("param.", "buffer.")
        };
        let mut problems = Vec::new();
        let saved: Vec<String> = c.names_with(param_prefix);
        for p in &self.params {
            match c.tensors.get(&format!("{param_prefix}{}", p.name())) {
                None => problems.push(format!("{}: not in the checkpoint", p.name())),
                Some((shape, _)) if shape.as_slice() != p.value().dims() => problems.push(format!(
                    "{}: checkpoint {:?}, model {:?}",
                    p.name(),
                    shape,
                    p.value().dims()
                )),
                Some(_) => {}
            }
        }
        for name in &saved {
            if !self.params.iter().any(|p| p.name() == name) {
                problems.push(format!("{name}: in the checkpoint, not in the model"));
            }
        }
        if !problems.is_empty() {
            return Err(TrainError::Checkpoint {
                path: path.into(),
                message: format!(
                    "its architecture differs from this run's ({}):\n  {}",
                    self.architecture,
                    problems.join("\n  ")
                ),
            });
        }
        for p in &self.params {
            p.set(c.tensor(path, &format!("{param_prefix}{}", p.name()), self.backend)?);
        }
        for name in c.names_with(buffer_prefix) {
            let t = c.tensor(path, &format!("{buffer_prefix}{name}"), self.backend)?;
            if !self.model.set_buffer(&name, &t)? {
                return Err(TrainError::Checkpoint {
                    path: path.into(),
                    message: format!("buffer {name} has no layer in this model"),
                });
            }
        }
        let mut tensors = BTreeMap::new();
        for name in c.names_with("optim.") {
            tensors.insert(
                name.clone(),
                c.tensor(path, &format!("optim.{name}"), self.backend)?,
            );
        }
        // A mixed-precision run continues with its loss scale (a checkpoint of an f32 run has
        // none: the scaler starts afresh).
        if let Some(scaler) = self.loss_scaler.as_mut() {
            if c.tensors.contains_key("loss_scale.scale") {
                let scale = c.tensor(path, "loss_scale.scale", self.backend)?;
                let flags = c.tensor(path, "loss_scale.flags", self.backend)?;
                scaler
                    .load_state(&scale, &flags)
                    .map_err(|e| TrainError::Checkpoint {
                        path: path.into(),
                        message: e.to_string(),
                    })?;
            }
        }
        let step: u64 = c.get_meta(path, "optimizer_step")?.parse().unwrap_or(0);
        let kind = c.get_meta(path, "optimizer")?.to_string();
        self.updater
            .load_state(
                &OptimizerState {
                    kind,
                    step,
                    tensors,
                },
                &self.params,
            )
            .map_err(|e| TrainError::Checkpoint {
                path: path.into(),
                message: e.to_string(),
            })?;
        self.progress = serde_json::from_str(c.get_meta(path, "progress")?).map_err(|e| {
            TrainError::Checkpoint {
                path: path.into(),
                message: format!("unreadable progress metadata: {e}"),
            }
        })?;
        for (name, seed, offset) in &self.progress.rng {
            self.model.set_rng_state(
                name,
                RngState {
                    seed: *seed,
                    offset: *offset,
                },
            );
        }
        if let Some(ema) = self.ema.as_mut() {
            for name in c.names_with("ema.") {
                ema.set_average(&name, c.tensor(path, &format!("ema.{name}"), self.backend)?);
            }
            if let Ok(updates) = c.get_meta(path, "ema_updates") {
                ema.set_updates(updates.parse().unwrap_or(0));
            }
        }
        // The best so far: param.* of a finished run that restored it, best.* of a checkpoint
        // taken mid-run after a better epoch, else the parameters just restored.
        let best_prefixes = if finished_at_an_earlier_best {
            Some(("param.", "buffer."))
        } else if !c.names_with("best.").is_empty() {
            Some(("best.", "best_buffer."))
        } else {
            None
        };
        self.best = Some(match best_prefixes {
            None => (self.snapshot()?, self.buffer_snapshot()?),
            Some((params, buffers)) => {
                let tensors = self
                    .params
                    .iter()
                    .map(|p| c.tensor(path, &format!("{params}{}", p.name()), self.backend))
                    .collect::<Result<Vec<_>>>()?;
                let saved_buffers = c
                    .names_with(buffers)
                    .into_iter()
                    .map(|n| {
                        let t = c.tensor(path, &format!("{buffers}{n}"), self.backend)?;
                        Ok((n, t))
                    })
                    .collect::<Result<Vec<_>>>()?;
                // A checkpoint from before best buffers were saved: the current ones.
                let buffers = if saved_buffers.is_empty() {
                    self.buffer_snapshot()?
                } else {
                    saved_buffers
                };
                (tensors, buffers)
            }
        });
        Ok(())
    }

    pub(crate) fn snapshot(&self) -> Result<Vec<Tensor<B>>> {
        Ok(self
            .params
            .iter()
            .map(|p| p.value().deep_copy())
            .collect::<kiln_tensor::Result<Vec<_>>>()?)
    }

    pub(crate) fn buffer_snapshot(&self) -> Result<Vec<(String, Tensor<B>)>> {
        Ok(self
            .model
            .buffers()
            .into_iter()
            .map(|(n, t)| t.deep_copy().map(|t| (n, t)))
            .collect::<kiln_tensor::Result<Vec<_>>>()?)
    }
}
