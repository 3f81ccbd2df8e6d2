//! Layout: shape + strides + offset. Views (reshape, transpose, broadcast, narrow) change only
//! the layout and never copy; kernels read the strides.

use crate::error::{KilnError, Result};
use crate::Shape;

/// Maximum rank a strided kernel accepts (the WGSL layout uniform holds 8 dimensions).
pub const MAX_RANK: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Shape,
    /// Stride of each dimension in elements; 0 for a broadcast dimension.
    strides: Vec<usize>,
    /// Element offset of the first element inside the storage.
    offset: usize,
}

impl Layout {
    pub fn contiguous(shape: impl Into<Shape>) -> Self {
        let shape = shape.into();
        let strides = shape.contiguous_strides();
        Layout {
            shape,
            strides,
            offset: 0,
        }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    pub fn strides(&self) -> &[usize] {
        &self.strides
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// True when the elements are laid out row-major without gaps (offset may be non-zero).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&dim, &stride) in self.shape.dims().iter().zip(&self.strides).rev() {
            if dim != 1 && stride != expected {
                return false;
            }
            expected *= dim;
        }
        true
    }

    /// Storage index of the element at a row-major linear index.
    pub fn storage_index(&self, mut linear: usize) -> usize {
        let mut index = self.offset;
        for (&dim, &stride) in self.shape.dims().iter().zip(&self.strides).rev() {
            index += (linear % dim) * stride;
            linear /= dim;
        }
        index
    }

    /// A new shape over the same elements; only for contiguous layouts (call `contiguous` first).
    pub fn reshape(&self, shape: Shape) -> Result<Layout> {
        if shape.numel() != self.numel() {
            return Err(KilnError::ShapeMismatch {
                op: "reshape",
                lhs: self.shape.clone(),
                rhs: shape,
                reason: "element counts differ".into(),
            });
        }
        debug_assert!(self.is_contiguous());
        let strides = shape.contiguous_strides();
        Ok(Layout {
            shape,
            strides,
            offset: self.offset,
        })
    }

    pub fn transpose(&self, a: usize, b: usize) -> Layout {
        let mut dims = self.shape.dims().to_vec();
        let mut strides = self.strides.clone();
        dims.swap(a, b);
        strides.swap(a, b);
        Layout {
            shape: Shape::new(dims),
            strides,
            offset: self.offset,
        }
    }

    /// Broadcasts to `target` (which must be a valid broadcast of this shape): new leading
    /// dimensions and stretched 1-dimensions get stride 0.
    pub fn broadcast_to(&self, target: &Shape) -> Result<Layout> {
        let rank = target.rank();
        let own = self.shape.rank();
        if own > rank {
            return Err(KilnError::ShapeMismatch {
                op: "broadcast_to",
                lhs: self.shape.clone(),
                rhs: target.clone(),
                reason: "target has fewer dimensions".into(),
            });
        }
        let mut strides = vec![0; rank];
        for i in 0..own {
            let t = rank - own + i;
            let dim = self.shape.dims()[i];
            let target_dim = target.dims()[t];
            strides[t] = if dim == target_dim {
                self.strides[i]
            } else if dim == 1 {
                0
            } else {
                return Err(KilnError::ShapeMismatch {
                    op: "broadcast_to",
                    lhs: self.shape.clone(),
                    rhs: target.clone(),
                    reason: format!("dimension {i} is {dim}, target has {target_dim}"),
                });
            };
        }
        Ok(Layout {
            shape: target.clone(),
            strides,
            offset: self.offset,
        })
    }

    /// Keeps `len` entries of dimension `dim` starting at `start`.
    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Layout> {
        let size = self.shape.dims()[dim];
        if start + len > size {
            return Err(KilnError::invalid(
                "narrow",
                format!(
                    "range {start}..{} is outside dimension {dim} of size {size} in shape {}",
                    start + len,
                    self.shape
                ),
            ));
        }
        let mut dims = self.shape.dims().to_vec();
        dims[dim] = len;
        Ok(Layout {
            shape: Shape::new(dims),
            strides: self.strides.clone(),
            offset: self.offset + start * self.strides[dim],
        })
    }

    /// If this is a plain 2-D matrix or its transpose (row stride or column stride 1), returns
    /// (transposed, leading stride); used to pass transpose flags to matmul instead of copying.
    pub fn as_matrix(&self) -> Option<(bool, usize)> {
        if self.shape.rank() != 2 {
            return None;
        }
        let (rows, cols) = (self.shape.dims()[0], self.shape.dims()[1]);
        let (rs, cs) = (self.strides[0], self.strides[1]);
        if (cs == 1 || cols == 1) && (rs == cols || rows == 1) {
            Some((false, cols))
        } else if (rs == 1 || rows == 1) && (cs == rows || cols == 1) {
            Some((true, rows))
        } else {
            None
        }
    }
}
