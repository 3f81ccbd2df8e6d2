//! Element types a tensor can hold.

use std::fmt;

/// The element type of a tensor. Every backend stores f32, f16, u8 and u32; f64 is available
/// where [`crate::Backend::supports_dtype`] says so (the CPU backend, for gradient checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    U8,
    U32,
    F64,
}

impl DType {
    /// Bytes one element occupies in host memory.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 => 2,
            DType::U8 => 1,
            DType::F64 => 8,
        }
    }

    /// True for the types arithmetic ops accept (f32, f64).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::U8 => "u8",
            DType::U32 => "u32",
            DType::F64 => "f64",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
