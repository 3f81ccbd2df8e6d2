//! Optimiser state that can be saved and restored: the step count and, per parameter, named
//! state tensors ("slots": `velocity`; `sum_sq` or `mean_sq`; `m` and `v`).
//!
//! A snapshot holds copies, so later steps (which update state in place) do not change it.
//! Restoring checks every tensor against the model's parameters and lists each mismatch.

use crate::module::Parameter;
use kiln_tensor::{Backend, KilnError, Result, Tensor};
use std::collections::BTreeMap;

/// A snapshot of an optimiser: its kind (`"sgd"`, `"adagrad"`, `"rmsprop"`, `"adam"`, …),
/// the number of steps taken, and state tensors named `<parameter>.<slot>`.
#[derive(Clone)]
pub struct OptimizerState<B: Backend> {
    pub kind: String,
    pub step: u64,
    pub tensors: BTreeMap<String, Tensor<B>>,
}

/// Per-parameter state tensors with fixed slot names, created as zeros on first use.
pub(crate) struct Slots<B: Backend> {
    names: &'static [&'static str],
    by_parameter: BTreeMap<String, Vec<Tensor<B>>>,
}

impl<B: Backend> Slots<B> {
    pub fn new(names: &'static [&'static str]) -> Self {
        Slots {
            names,
            by_parameter: BTreeMap::new(),
        }
    }

    /// The state tensors of `parameter` (whose current value is `value`), zeros at first.
    pub fn get(&mut self, parameter: &Parameter<B>, value: &Tensor<B>) -> Result<&[Tensor<B>]> {
        if !self.by_parameter.contains_key(parameter.name()) {
            let zeros = self
                .names
                .iter()
                .map(|_| Tensor::zeros(value.shape().clone(), value.dtype(), value.backend()))
                .collect::<Result<Vec<_>>>()?;
            self.by_parameter
                .insert(parameter.name().to_string(), zeros);
        }
        Ok(&self.by_parameter[parameter.name()])
    }

    /// A snapshot of this state for an optimiser of `kind` that has taken `step` steps.
    pub fn to_state(&self, kind: &str, step: u64) -> Result<OptimizerState<B>> {
        Ok(OptimizerState {
            kind: kind.into(),
            step,
            tensors: self.snapshot()?,
        })
    }

    /// Restores a snapshot taken from an optimiser of `kind`; returns its step count.
    pub fn load(
        &mut self,
        kind: &str,
        state: &OptimizerState<B>,
        parameters: &[Parameter<B>],
    ) -> Result<u64> {
        check_kind(kind, state)?;
        self.restore(kind, &state.tensors, parameters)?;
        Ok(state.step)
    }

    /// Copies of every state tensor, named `<parameter>.<slot>`.
    fn snapshot(&self) -> Result<BTreeMap<String, Tensor<B>>> {
        let mut out = BTreeMap::new();
        for (parameter, tensors) in &self.by_parameter {
            for (slot, t) in self.names.iter().zip(tensors) {
                out.insert(format!("{parameter}.{slot}"), t.deep_copy()?);
            }
        }
        Ok(out)
    }

    /// Replaces the state with copies of `tensors`, after checking that each names a slot of
    /// one of `parameters` with the parameter's shape and dtype, and that every parameter with
    /// saved state has all its slots. Nothing changes when a check fails.
    fn restore(
        &mut self,
        optimizer: &str,
        tensors: &BTreeMap<String, Tensor<B>>,
        parameters: &[Parameter<B>],
    ) -> Result<()> {
        let mut problems = Vec::new();
        let mut restored: BTreeMap<String, Vec<Option<Tensor<B>>>> = BTreeMap::new();
        for (key, t) in tensors {
            let target = parameters.iter().find_map(|p| {
                let slot = key.strip_prefix(p.name())?.strip_prefix('.')?;
                let index = self.names.iter().position(|n| *n == slot)?;
                Some((p, index))
            });
            let Some((p, index)) = target else {
                problems.push(format!(
                    "{key}: no parameter of the model has this state (slots of {optimizer}: {})",
                    self.names.join(", ")
                ));
                continue;
            };
            let value = p.value();
            if t.shape() != value.shape() || t.dtype() != value.dtype() {
                problems.push(format!(
                    "{key}: saved {} {:?}, the model's {} is {} {:?}",
                    t.shape(),
                    t.dtype(),
                    p.name(),
                    value.shape(),
                    value.dtype()
                ));
                continue;
            }
            restored
                .entry(p.name().to_string())
                .or_insert_with(|| vec![None; self.names.len()])[index] = Some(t.deep_copy()?);
        }
        let mut complete = BTreeMap::new();
        for (parameter, slots) in restored {
            if slots.iter().any(Option::is_none) {
                let missing: Vec<_> = self
                    .names
                    .iter()
                    .zip(&slots)
                    .filter(|(_, t)| t.is_none())
                    .map(|(n, _)| format!("{parameter}.{n}"))
                    .collect();
                problems.push(format!("missing {}", missing.join(", ")));
                continue;
            }
            complete.insert(parameter, slots.into_iter().flatten().collect());
        }
        if !problems.is_empty() {
            return Err(KilnError::InvalidArgument {
                op: "load_state",
                message: format!(
                    "the saved {optimizer} state does not fit this model:\n  {}",
                    problems.join("\n  ")
                ),
            });
        }
        self.by_parameter = complete;
        Ok(())
    }
}

/// Checks that a snapshot was taken from the same kind of optimiser.
fn check_kind<B: Backend>(expected: &str, state: &OptimizerState<B>) -> Result<()> {
    if state.kind == expected {
        Ok(())
    } else {
        Err(KilnError::InvalidArgument {
            op: "load_state",
            message: format!(
                "the saved state is from a {} optimiser, this one is {expected}",
                state.kind
            ),
        })
    }
}
