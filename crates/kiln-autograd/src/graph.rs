//! Variables, the recorded graph, and the backward pass.

use crate::ops::Op;
use crate::rules;
use kiln_tensor::{Backend, KilnError, Result, Shape, Tensor};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

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
    /// How this value was computed from `inputs`; `None` for leaves.
    op: Option<Op<B>>,
    inputs: Vec<Var<B>>,
    /// A leaf's accumulated gradient.
    grad: Mutex<Option<Tensor<B>>>,
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
        let op = self.node.op.as_ref().map_or("leaf", Op::name);
        write!(
            f,
            "Var({:?}, {op}, requires_grad={})",
            self.node.value, self.node.requires_grad
        )
    }
}

impl<B: Backend> Var<B> {
    fn with(value: Tensor<B>, requires_grad: bool, op: Option<Op<B>>, inputs: Vec<Var<B>>) -> Self {
        Var {
            node: Arc::new(Node {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                value,
                requires_grad,
                op,
                inputs,
                grad: Mutex::new(None),
            }),
        }
    }

    /// A leaf whose gradient is wanted (a parameter).
    pub fn parameter(value: Tensor<B>) -> Self {
        Var::with(value, true, None, Vec::new())
    }

    /// A leaf without gradient (data, targets).
    pub fn constant(value: Tensor<B>) -> Self {
        Var::with(value, false, None, Vec::new())
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
        self.node.op.is_none()
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

    pub fn zero_grad(&self) {
        *self.node.grad.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Records `value = op(inputs)` when gradients are enabled and an input needs them.
    pub(crate) fn record(value: Tensor<B>, op: Op<B>, inputs: Vec<Var<B>>) -> Self {
        let requires_grad = grad_enabled() && inputs.iter().any(Var::requires_grad);
        if requires_grad {
            Var::with(value, true, Some(op), inputs)
        } else {
            Var::constant(value)
        }
    }

    /// Backpropagates from a one-element variable (seed gradient 1).
    pub fn backward(&self) -> Result<()> {
        if self.node.value.numel() != 1 {
            return Err(KilnError::InvalidArgument {
                op: "backward",
                message: format!(
                    "backward needs a scalar or an explicit seed gradient; this variable ({}) has shape {}",
                    self.node.op.as_ref().map_or("leaf", Op::name),
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
                    self.node.op.as_ref().map_or("leaf", Op::name)
                ),
            });
        }
        if !self.requires_grad() {
            return Err(KilnError::InvalidArgument {
                op: "backward",
                message: "this variable does not depend on any parameter".into(),
            });
        }
        let order = self.topological_order();
        let mut grads: HashMap<u64, Tensor<B>> = HashMap::new();
        grads.insert(self.node.id, seed);
        for var in order.iter().rev() {
            let Some(grad) = grads.remove(&var.node.id) else {
                continue;
            };
            match &var.node.op {
                None => {
                    let mut slot = var.node.grad.lock().unwrap_or_else(|p| p.into_inner());
                    let grad = grad.contiguous()?;
                    *slot = Some(match slot.take() {
                        Some(previous) => (previous + &grad)?,
                        None => grad,
                    });
                }
                Some(op) => {
                    let values: Vec<&Tensor<B>> =
                        var.node.inputs.iter().map(|v| &v.node.value).collect();
                    let input_grads = rules::backward(op, &values, &var.node.value, &grad)
                        .map_err(|e| KilnError::InvalidArgument {
                            op: "backward",
                            message: format!("in the backward rule of {}: {e}", op.name()),
                        })?;
                    for (input, input_grad) in var.node.inputs.iter().zip(input_grads) {
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
            for input in &var.node.inputs {
                if input.requires_grad() && !visited.contains(&input.node.id) {
                    stack.push((input.clone(), false));
                }
            }
        }
        order
    }
}
