//! Variables, the recorded graph, and the backward pass.

use crate::ops::Op;
use crate::rules;
use kiln_tensor::{Backend, KilnError, Result, Shape, Tensor};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static ANOMALY_DETECTION: AtomicBool = AtomicBool::new(false);

/// Anomaly mode: when on, every recorded op reads its output back and the first one holding
/// NaN or Inf is an error naming the op, its input shapes and the caller's source location.
/// When off (the default) it costs one relaxed atomic load per op and no readback.
pub fn set_anomaly_detection(enabled: bool) {
    ANOMALY_DETECTION.store(enabled, Ordering::Relaxed);
}

pub fn anomaly_detection() -> bool {
    ANOMALY_DETECTION.load(Ordering::Relaxed)
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Runs `f` without recording a graph (like `torch.no_grad()`); restores the previous mode.
pub fn no_grad<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GRAD_ENABLED.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(GRAD_ENABLED.with(|g| g.replace(false)));
    f()
}

fn grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

struct Node<B: Backend> {
    id: u64,
    value: Tensor<B>,
    requires_grad: bool,
    is_leaf: bool,
    /// How this value was computed from `inputs`; taken (set to `None`) once backward has used
    /// it, which releases the inputs this node kept alive.
    recorded: Mutex<Option<Recorded<B>>>,
    /// A leaf's accumulated gradient.
    grad: Mutex<Option<Tensor<B>>>,
}

struct Recorded<B: Backend> {
    op: Op<B>,
    inputs: Vec<Var<B>>,
}

/// A tensor that can take part in differentiation. Cloning shares the node.
pub struct Var<B: Backend> {
    node: Arc<Node<B>>,
}

impl<B: Backend> Clone for Var<B> {
    fn clone(&self) -> Self {
        Var {
            node: self.node.clone(),
        }
    }
}

impl<B: Backend> std::fmt::Debug for Var<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = self.op_name();
        write!(
            f,
            "Var({:?}, {op}, requires_grad={})",
            self.node.value, self.node.requires_grad
        )
    }
}

impl<B: Backend> Var<B> {
    fn with(value: Tensor<B>, requires_grad: bool, recorded: Option<Recorded<B>>) -> Self {
        Var {
            node: Arc::new(Node {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                value,
                requires_grad,
                is_leaf: recorded.is_none(),
                recorded: Mutex::new(recorded),
                grad: Mutex::new(None),
            }),
        }
    }

    fn recorded(&self) -> std::sync::MutexGuard<'_, Option<Recorded<B>>> {
        self.node.recorded.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn op_name(&self) -> &'static str {
        match &*self.recorded() {
            Some(r) => r.op.name(),
            None if self.node.is_leaf => "leaf",
            None => "freed",
        }
    }

    /// A leaf whose gradient is wanted (a parameter).
    pub fn parameter(value: Tensor<B>) -> Self {
        Var::with(value, true, None)
    }

    /// A leaf without gradient (data, targets).
    pub fn constant(value: Tensor<B>) -> Self {
        Var::with(value, false, None)
    }

    pub fn value(&self) -> &Tensor<B> {
        &self.node.value
    }

    pub fn shape(&self) -> &Shape {
        self.node.value.shape()
    }

    pub fn requires_grad(&self) -> bool {
        self.node.requires_grad
    }

    pub fn is_leaf(&self) -> bool {
        self.node.is_leaf
    }

    /// The same value, cut from the graph.
    pub fn detach(&self) -> Self {
        Var::constant(self.node.value.clone())
    }

    /// The accumulated gradient of a leaf, if backward has reached it.
    pub fn grad(&self) -> Option<Tensor<B>> {
        self.node
            .grad
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces a leaf's accumulated gradient.
    pub fn set_grad(&self, grad: Option<Tensor<B>>) {
        *self.node.grad.lock().unwrap_or_else(|p| p.into_inner()) = grad;
    }

    pub fn zero_grad(&self) {
        *self.node.grad.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Records `value = op(inputs)` when gradients are enabled and an input needs them.
    #[track_caller]
    pub(crate) fn record(value: Tensor<B>, op: Op<B>, inputs: Vec<Var<B>>) -> Result<Self> {
        if anomaly_detection() {
            check_finite(&value, &op, &inputs, std::panic::Location::caller())?;
        }
        let requires_grad = grad_enabled() && inputs.iter().any(Var::requires_grad);
        Ok(if requires_grad {
            Var::with(value, true, Some(Recorded { op, inputs }))
        } else {
            Var::constant(value)
        })
    }

    /// Backpropagates from a one-element variable (seed gradient 1).
    pub fn backward(&self) -> Result<()> {
        if self.node.value.numel() != 1 {
            return Err(KilnError::InvalidArgument {
                op: "backward",
                message: format!(
                    "backward needs a scalar or an explicit seed gradient; this variable ({}) has shape {}",
                    self.op_name(),
                    self.shape()
                ),
            });
        }
        let seed = Tensor::ones(
            self.shape().clone(),
            self.node.value.dtype(),
            self.node.value.backend(),
        )?;
        self.backward_with(seed)
    }

    /// Backpropagates with an explicit gradient of this variable's shape.
    pub fn backward_with(&self, seed: Tensor<B>) -> Result<()> {
        if seed.shape() != self.shape() {
            return Err(KilnError::ShapeMismatch {
                op: "backward",
                lhs: self.shape().clone(),
                rhs: seed.shape().clone(),
                reason: format!(
                    "the seed gradient must have the shape of the variable ({})",
                    self.op_name()
                ),
            });
        }
        if !self.requires_grad() {
            return Err(KilnError::InvalidArgument {
                op: "backward",
                message: "this variable does not depend on any parameter".into(),
            });
        }
        if !self.is_leaf() && self.recorded().is_none() {
            return Err(KilnError::InvalidArgument {
                op: "backward",
                message: format!("the graph of this variable (shape {}) was already freed by an earlier backward; run the forward pass again", self.shape()),
            });
        }
        let mut order: Vec<Option<Var<B>>> =
            self.topological_order().into_iter().map(Some).collect();
        let mut grads: HashMap<u64, Tensor<B>> = HashMap::new();
        grads.insert(self.node.id, seed);
        // Walk outputs before inputs. Each node's record is taken once used and the walk drops
        // its own handle, so an intermediate is released as soon as no later rule needs it.
        for slot in order.iter_mut().rev() {
            let Some(var) = slot.take() else { continue };
            let Some(grad) = grads.remove(&var.node.id) else {
                continue;
            };
            if var.node.is_leaf {
                let mut accumulated = var.node.grad.lock().unwrap_or_else(|p| p.into_inner());
                let grad = grad.contiguous()?;
                *accumulated = Some(match accumulated.take() {
                    Some(previous) => (previous + &grad)?,
                    None => grad,
                });
                continue;
            }
            let Some(Recorded { op, inputs }) = var.recorded().take() else {
                return Err(KilnError::InvalidArgument {
                    op: "backward",
                    message: format!(
                        "an intermediate of shape {} was already freed by an earlier backward",
                        var.shape()
                    ),
                });
            };
            let values: Vec<&Tensor<B>> = inputs.iter().map(|v| &v.node.value).collect();
            let needs: Vec<bool> = inputs.iter().map(Var::requires_grad).collect();
            let input_grads = rules::backward(&op, &values, &var.node.value, &grad, &needs)
                .map_err(|e| KilnError::InvalidArgument {
                    op: "backward",
                    message: format!("in the backward rule of {}: {e}", op.name()),
                })?;
            for (input, input_grad) in inputs.iter().zip(input_grads) {
                let Some(input_grad) = input_grad else {
                    continue;
                };
                if !input.requires_grad() {
                    continue;
                }
                let total = match grads.remove(&input.node.id) {
                    Some(previous) => (previous + &input_grad)?,
                    None => input_grad,
                };
                grads.insert(input.node.id, total);
            }
        }
        Ok(())
    }

    /// Every variable this one depends on that requires gradients, inputs before outputs.
    fn topological_order(&self) -> Vec<Var<B>> {
        let mut order = Vec::new();
        let mut visited = std::collections::HashSet::new();
        // Iterative depth-first search: (variable, inputs already pushed).
        let mut stack = vec![(self.clone(), false)];
        while let Some((var, expanded)) = stack.pop() {
            if expanded {
                order.push(var);
                continue;
            }
            if !visited.insert(var.node.id) {
                continue;
            }
            stack.push((var.clone(), true));
            if let Some(recorded) = &*var.recorded() {
                for input in &recorded.inputs {
                    if input.requires_grad() && !visited.contains(&input.node.id) {
                        stack.push((input.clone(), false));
                    }
                }
            }
        }
        order
    }
}

fn check_finite<B: Backend>(
    value: &Tensor<B>,
    op: &Op<B>,
    inputs: &[Var<B>],
    at: &std::panic::Location<'_>,
) -> Result<()> {
    let values = value.to_host()?.to_f64_vec();
    let Some(bad) = values.iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    let shapes: Vec<String> = inputs.iter().map(|v| v.shape().to_string()).collect();
    Err(KilnError::InvalidArgument {
        op: "anomaly detection",
        message: format!(
            "{} produced {} at element {bad} of its output {}; inputs of shapes {}; called at {}:{}",
            op.name(),
            values[bad],
            value.shape(),
            shapes.join(", "),
            at.file(),
            at.line()
        ),
    })
}
