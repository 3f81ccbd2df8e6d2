//! Kiln: train neural networks on any GPU that speaks Vulkan, Metal or DX12, with a CPU
//! backend as fallback and reference.
//!
//! This facade re-exports the workspace crates; `use kiln::prelude::*` brings in what most
//! programs need.
//!
//! ```no_run
//! use kiln::prelude::*;
//!
//! fn main() -> kiln::tensor::Result<()> {
//!     let gpu = WgpuBackend::new()?;
//!     let model = Mlp::new(&[784, 512, 512, 10]).batch_norm(true).dropout(0.2).seed(1).build(&gpu)?;
//!     let mut optimizer = Adam::new(1e-3)?;
//!     let x = Tensor::rand_normal([128, 784], 0.0, 1.0, RngState { seed: 2, offset: 0 }, &gpu)?;
//!     let labels = Tensor::from_vec((0..128u32).map(|i| i % 10).collect::<Vec<_>>(), [128], &gpu)?;
//!     for step in 0..100 {
//!         model.zero_grad();
//!         let loss = model.forward(&Var::constant(x.clone()))?.softmax_xent(&labels)?.mean_all()?;
//!         loss.backward()?;
//!         optimizer.step(&model.parameters())?;
//!         if step % 20 == 0 {
//!             println!("step {step}: loss {:.4}", loss.value().item()?); // the only readback
//!         }
//!     }
//!     Ok(())
//! }
//! ```

pub use kiln_autograd as autograd;
pub use kiln_bench as bench;
pub use kiln_cpu as cpu;
pub use kiln_data as data;
pub use kiln_nn as nn;
pub use kiln_tensor as tensor;
pub use kiln_train as train;

pub mod prelude {
    pub use kiln_autograd::{gradcheck, no_grad, GradcheckOptions, Var};
    pub use kiln_cpu::CpuBackend;
    pub use kiln_data::{Augmentation, PaddingMode, Preprocessing, Transform};
    pub use kiln_nn::optim::{adagrad, rmsprop, Adam, Lbfgs, Optimizer, OptimizerState, Sgd};
    pub use kiln_nn::{
        ActivationKind, Fan, Init, LayerOutput, LayerSpec, Linear, LossScaler, Mlp, Module,
        Parameter, Precision, Sequential,
    };
    pub use kiln_tensor::{
        AdamStep, AdaptiveStep, Backend, BinaryOp, CoreOps, DType, DataOps, Distribution,
        KilnError, LossScaleRule, NnOps, OptimOps, ReduceOp, Result, RngState, SgdStep, Shape,
        Tensor, UnaryOp, WgpuBackend,
    };
    pub use kiln_train::{Learner, OptimizerKind, RunData, ScheduleKind};
}
