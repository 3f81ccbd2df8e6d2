//! `Tensor<B>`: a storage on a backend plus a layout. Cloning a tensor shares its storage.

use crate::backend::{Backend, BackendStorage};
use crate::error::{KilnError, Result};
use crate::ops::{Distribution, RngState};
use crate::{DType, Element, HostData, Layout, Shape};
use std::fmt;
use std::sync::Arc;

pub struct Tensor<B: Backend> {
    pub(crate) storage: Arc<B::Storage>,
    pub(crate) layout: Layout,
    pub(crate) backend: B,
}

impl<B: Backend> Clone for Tensor<B> {
    fn clone(&self) -> Self {
        Tensor {
            storage: self.storage.clone(),
            layout: self.layout.clone(),
            backend: self.backend.clone(),
        }
    }
}

impl<B: Backend> fmt::Debug for Tensor<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor({}, {}, {})",
            self.shape(),
            self.dtype(),
            self.backend.name()
        )
    }
}

impl<B: Backend> Tensor<B> {
    /// Wraps a contiguous storage of the given shape.
    pub fn from_storage(storage: B::Storage, shape: impl Into<Shape>, backend: &B) -> Result<Self> {
        let shape = shape.into();
        if storage.len() < shape.numel() {
            return Err(KilnError::invalid(
                "from_storage",
                format!(
                    "storage of {} elements is too small for shape {shape}",
                    storage.len()
                ),
            ));
        }
        Ok(Tensor {
            storage: Arc::new(storage),
            layout: Layout::contiguous(shape),
            backend: backend.clone(),
        })
    }

    pub(crate) fn wrap(&self, storage: B::Storage, shape: impl Into<Shape>) -> Self {
        Tensor {
            storage: Arc::new(storage),
            layout: Layout::contiguous(shape),
            backend: self.backend.clone(),
        }
    }

    /// Uploads host data; `data.len()` must equal the shape's element count.
    pub fn from_host(data: &HostData, shape: impl Into<Shape>, backend: &B) -> Result<Self> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(KilnError::invalid(
                "from_vec",
                format!(
                    "{} elements given for shape {shape} ({} elements)",
                    data.len(),
                    shape.numel()
                ),
            ));
        }
        check_dtype(backend, data.dtype(), "from_vec")?;
        let storage = backend.upload(data)?;
        Tensor::from_storage(storage, shape, backend)
    }

    pub fn from_vec<T: Element>(
        data: Vec<T>,
        shape: impl Into<Shape>,
        backend: &B,
    ) -> Result<Self> {
        Tensor::from_host(&T::into_host(data), shape, backend)
    }

    pub fn from_slice<T: Element>(
        data: &[T],
        shape: impl Into<Shape>,
        backend: &B,
    ) -> Result<Self> {
        Tensor::from_vec(data.to_vec(), shape, backend)
    }

    pub fn full(shape: impl Into<Shape>, value: f64, dtype: DType, backend: &B) -> Result<Self> {
        let shape = shape.into();
        check_dtype(backend, dtype, "full")?;
        let storage = backend.fill(shape.numel(), dtype, value)?;
        Tensor::from_storage(storage, shape, backend)
    }

    pub fn zeros(shape: impl Into<Shape>, dtype: DType, backend: &B) -> Result<Self> {
        Tensor::full(shape, 0.0, dtype, backend)
    }

    pub fn ones(shape: impl Into<Shape>, dtype: DType, backend: &B) -> Result<Self> {
        Tensor::full(shape, 1.0, dtype, backend)
    }

    /// f32 values uniform in [low, high), from a counter-based stream (same on every backend).
    pub fn rand_uniform(
        shape: impl Into<Shape>,
        low: f32,
        high: f32,
        rng: RngState,
        backend: &B,
    ) -> Result<Self> {
        let shape = shape.into();
        let storage = backend.random(shape.numel(), Distribution::Uniform { low, high }, rng)?;
        Tensor::from_storage(storage, shape, backend)
    }

    /// f32 values from N(mean, std²), from a counter-based stream.
    pub fn rand_normal(
        shape: impl Into<Shape>,
        mean: f32,
        std: f32,
        rng: RngState,
        backend: &B,
    ) -> Result<Self> {
        let shape = shape.into();
        let storage = backend.random(shape.numel(), Distribution::Normal { mean, std }, rng)?;
        Tensor::from_storage(storage, shape, backend)
    }

    // ---- accessors ---------------------------------------------------------------------
    pub fn shape(&self) -> &Shape {
        self.layout.shape()
    }

    pub fn dims(&self) -> &[usize] {
        self.layout.shape().dims()
    }

    pub fn rank(&self) -> usize {
        self.layout.shape().rank()
    }

    pub fn numel(&self) -> usize {
        self.layout.numel()
    }

    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn storage(&self) -> &B::Storage {
        &self.storage
    }

    // ---- readback ----------------------------------------------------------------------
    /// Reads the elements back in row-major order (a sync point on the GPU).
    pub fn to_host(&self) -> Result<HostData> {
        Ok(self
            .backend
            .download(&[(&self.storage, &self.layout)])?
            .remove(0))
    }

    /// Reads the elements as `T`, converting values if the dtype differs.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        Ok(T::from_host(self.to_host()?))
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(KilnError::invalid(
                "item",
                format!(
                    "tensor of shape {} has {} elements, item needs exactly 1",
                    self.shape(),
                    self.numel()
                ),
            ));
        }
        Ok(self.to_host()?.to_f64_vec()[0])
    }

    /// Reads several tensors of one backend in a single flush.
    pub fn read_many(tensors: &[&Tensor<B>]) -> Result<Vec<HostData>> {
        let Some(first) = tensors.first() else {
            return Ok(Vec::new());
        };
        let requests: Vec<_> = tensors.iter().map(|t| (&*t.storage, &t.layout)).collect();
        first.backend.download(&requests)
    }

    // ---- views -------------------------------------------------------------------------
    /// True when the tensor is its whole storage, contiguous from 0: what in-place ops update
    /// and what backends expect (they size their work by the storage).
    pub fn is_whole(&self) -> bool {
        self.layout.is_contiguous()
            && self.layout.offset() == 0
            && self.storage.len() == self.numel()
    }

    /// The same elements in a storage of their own, contiguous from 0 (no copy if already so).
    /// A prefix view (`narrow` from 0) is copied too: backends size their work by the storage.
    pub fn contiguous(&self) -> Result<Self> {
        if self.is_whole() {
            return Ok(self.clone());
        }
        let storage = self.backend.copy_strided(&self.storage, &self.layout)?;
        Ok(self.wrap(storage, self.shape().clone()))
    }

    /// Checks that `self` can be copied into `dst` in place (the backends' `copy_into`): one
    /// dtype, one shape, both whole contiguous tensors.
    pub fn check_copy_into(&self, dst: &Tensor<B>) -> Result<()> {
        if self.shape() != dst.shape() || self.dtype() != dst.dtype() {
            return Err(KilnError::ShapeMismatch {
                op: "copy_into",
                lhs: self.shape().clone(),
                rhs: dst.shape().clone(),
                reason: format!(
                    "source ({}) and destination ({}) must have one shape and dtype",
                    self.dtype(),
                    dst.dtype()
                ),
            });
        }
        for (name, t) in [("source", self), ("destination", dst)] {
            if !t.is_whole() {
                return Err(KilnError::invalid(
                    "copy_into",
                    format!("the {name} must be a whole contiguous tensor, not a view"),
                ));
            }
        }
        Ok(())
    }

    /// A copy in a storage of its own (`clone` shares the storage). Use it to snapshot a
    /// tensor that is updated in place, such as optimiser state.
    pub fn deep_copy(&self) -> Result<Self> {
        let storage = self.backend.copy_strided(&self.storage, &self.layout)?;
        Ok(self.wrap(storage, self.shape().clone()))
    }

    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Self> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(KilnError::ShapeMismatch {
                op: "reshape",
                lhs: self.shape().clone(),
                rhs: shape,
                reason: "element counts differ".into(),
            });
        }
        let base = if self.layout.is_contiguous() {
            self.clone()
        } else {
            self.contiguous()?
        };
        Ok(Tensor {
            layout: base.layout.reshape(shape)?,
            ..base
        })
    }

    /// Swaps two dimensions (negative indices count from the end). A view: no copy.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Self> {
        let a = self.shape().axis("transpose", a)?;
        let b = self.shape().axis("transpose", b)?;
        Ok(Tensor {
            layout: self.layout.transpose(a, b),
            ..self.clone()
        })
    }

    /// Transpose of a matrix (swaps the last two dimensions).
    pub fn t(&self) -> Result<Self> {
        if self.rank() < 2 {
            return Err(KilnError::invalid(
                "t",
                format!("needs rank ≥ 2, got shape {}", self.shape()),
            ));
        }
        self.transpose(-2, -1)
    }

    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Self> {
        Ok(Tensor {
            layout: self.layout.broadcast_to(&shape.into())?,
            ..self.clone()
        })
    }

    /// Keeps `len` entries of dimension `dim` from `start`. A view: no copy.
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Self> {
        let dim = self.shape().axis("narrow", dim)?;
        Ok(Tensor {
            layout: self.layout.narrow(dim, start, len)?,
            ..self.clone()
        })
    }

    /// Converts to another dtype.
    pub fn cast(&self, to: DType) -> Result<Self> {
        if to == self.dtype() {
            return Ok(self.clone());
        }
        check_dtype(&self.backend, to, "cast")?;
        let src = self.contiguous()?;
        let storage = self.backend.cast(&src.storage, to)?;
        Ok(self.wrap(storage, self.shape().clone()))
    }
}

pub(crate) fn check_dtype<B: Backend>(backend: &B, dtype: DType, op: &'static str) -> Result<()> {
    if backend.supports_dtype(dtype) {
        return Ok(());
    }
    let supported: Vec<&str> = [DType::F32, DType::F16, DType::U8, DType::U32, DType::F64]
        .into_iter()
        .filter(|&d| backend.supports_dtype(d))
        .map(DType::name)
        .collect();
    Err(KilnError::UnsupportedDType {
        op,
        dtype,
        backend: backend.name(),
        supported: supported.join(", "),
    })
}
