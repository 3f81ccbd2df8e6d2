//! Layers, initialisers and optimisers on top of kiln-autograd.
//!
//! A [`Module`] maps a [`Var`] to a [`Var`] and lists its [`Parameter`]s by name. Parameters
//! are shared handles: the module reads them in `forward`, an optimiser replaces or updates
//! their values in `step`.

mod activation;
mod batch_norm;
mod conv;
mod dropout;
mod ema;
mod error;
pub use init::Fan;
pub mod init;
mod linear;
pub mod loss;
mod loss_scale;
mod mlp;
mod module;
pub mod optim;
mod pool;
mod precision;
pub mod regularization;
pub mod schedule;
mod sequential;
mod spec;

pub use activation::{Activation, ActivationKind, Maxout, Prelu};
pub use batch_norm::{BatchNorm1d, BatchNorm2d};
pub use conv::{Conv2d, Conv2dConfig};
pub use dropout::Dropout;
pub use ema::Ema;
pub use error::invalid;
pub use init::Init;
pub use linear::Linear;
pub use loss_scale::LossScaler;
pub use mlp::Mlp;
pub use module::{LayerOutput, Module, Parameter};
pub use pool::{Flatten, GlobalAvgPool, Pool2d, PoolKind};
pub use precision::Precision;
pub use sequential::Sequential;
pub use spec::{sequential, BoxedModule, LayerSpec};

pub use kiln_autograd::Var;
pub use kiln_tensor::{Backend, KilnError, Result, Tensor};
