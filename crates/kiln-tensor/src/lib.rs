//! Kiln's tensor layer: shapes, dtypes, `Tensor<B>`, the `Backend` trait and the wgpu backend.
//!
//! ```no_run
//! use kiln_tensor::{DType, Tensor, WgpuBackend};
//! # fn main() -> kiln_tensor::Result<()> {
//! let gpu = WgpuBackend::new()?;
//! let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2], &gpu)?;
//! let b = Tensor::ones([2, 2], DType::F32, &gpu)?;
//! let c = ((a.matmul(&b)? + 1.0)? * &a)?;
//! println!("{:?}", c.to_vec::<f32>()?);
//! # Ok(()) }
//! ```

pub mod backend;
mod dtype;
mod error;
mod host;
pub mod layout;
pub mod ops;
pub mod precision;
mod shape;
mod tensor;
mod tensor_batch_norm;
mod tensor_conv;
mod tensor_elementwise;
mod tensor_fused;
mod tensor_image;
pub mod wgpu;

pub use backend::{
    Backend, BackendStorage, BatchNormShape, CoreOps, DataOps, Epilogue, NnOps, OptimOps,
    ReduceDims, Rows,
};
pub use dtype::DType;
pub use error::{KilnError, Result};
pub use half::f16;
pub use host::{Element, HostData};
pub use layout::Layout;
pub use ops::{
    AdamStep, AdaptiveStep, BinaryOp, Conv2dShape, Distribution, ImageBatch, LossScaleRule,
    MatmulShape, Pool2dShape, ReduceOp, RngState, SgdStep, UnaryOp, Warp, XentTargets,
};
pub use shape::Shape;
pub use tensor::Tensor;
pub use tensor_conv::Conv2dOptions;
pub use tensor_image::ImageShape;
pub use wgpu::WgpuBackend;
