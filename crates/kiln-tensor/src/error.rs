//! The one error type of Kiln's tensor layer. Every variant names what was wrong.

use crate::{DType, Shape};

pub type Result<T> = std::result::Result<T, KilnError>;

#[derive(Debug, thiserror::Error)]
pub enum KilnError {
    #[error("{op}: shapes {lhs} and {rhs} do not match ({reason})")]
    ShapeMismatch {
        op: &'static str,
        lhs: Shape,
        rhs: Shape,
        reason: String,
    },
    #[error("{op}: dtypes {lhs} and {rhs} do not match")]
    DTypeMismatch {
        op: &'static str,
        lhs: DType,
        rhs: DType,
    },
    #[error(
        "{op}: dtype {dtype} is not supported by the {backend} backend (supported: {supported})"
    )]
    UnsupportedDType {
        op: &'static str,
        dtype: DType,
        backend: String,
        supported: String,
    },
    #[error("{op}: {message}")]
    InvalidArgument { op: &'static str, message: String },
    #[error("no GPU adapter found (backends tried: {tried}){hint}")]
    NoAdapter { tried: String, hint: String },
    #[error(
        "{what} needs a buffer of {bytes} bytes, over the adapter's storage-binding limit of {limit} bytes ({adapter})"
    )]
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
        adapter: String,
    },
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    #[error("GPU error: {0}")]
    Device(String),
}

impl KilnError {
    pub fn invalid(op: &'static str, message: impl Into<String>) -> Self {
        KilnError::InvalidArgument {
            op,
            message: message.into(),
        }
    }
}
