//! Kiln: train neural networks on any GPU that speaks Vulkan, Metal or DX12, with a CPU
//! backend as fallback and reference.
//!
//! This facade re-exports the workspace crates; `use kiln::prelude::*` brings in what most
//! programs need.

pub use kiln_autograd as autograd;
pub use kiln_cpu as cpu;
pub use kiln_nn as nn;
pub use kiln_tensor as tensor;

pub mod prelude {
    pub use kiln_autograd::{gradcheck, no_grad, GradcheckOptions, Var};
    pub use kiln_cpu::CpuBackend;
    pub use kiln_nn::optim::{Adam, Optimizer, Sgd};
    pub use kiln_nn::{Init, Linear, Mlp, Module, Parameter, Sequential};
    pub use kiln_tensor::{
        AdamStep, Backend, BinaryOp, DType, Distribution, KilnError, ReduceOp, Result, RngState,
        Shape, Tensor, UnaryOp, WgpuBackend,
    };
}
