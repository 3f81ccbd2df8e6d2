//! Reverse-mode automatic differentiation over any [`Backend`].
//!
//! A [`Var`] wraps a tensor. Operations on variables that require gradients record a node:
//! the op (one enum, [`Op`]) and its inputs. [`Var::backward`] walks the recorded graph from a
//! scalar in reverse topological order, applies each op's backward rule (one file per op family
//! under `rules/`), and accumulates the gradients of the leaves, which stay until
//! [`Var::zero_grad`]. Backward records no graph of its own and reads nothing back: it only
//! launches kernels.

mod gradcheck;
mod graph;
mod ops;
mod rules;
mod var_ops;

pub use gradcheck::{gradcheck, GradcheckOptions, GradcheckReport, InputReport};
pub use graph::{anomaly_detection, no_grad, set_anomaly_detection, Var};
pub use ops::Op;

pub use kiln_tensor::{Backend, KilnError, Result, Tensor};
