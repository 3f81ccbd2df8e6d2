//! Host-side tensor data: what moves between the program and a backend.

use crate::DType;
use half::f16;

/// A flat, row-major buffer of elements on the host.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    U8(Vec<u8>),
    U32(Vec<u32>),
    F64(Vec<f64>),
}

impl HostData {
    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::F16(_) => DType::F16,
            HostData::U8(_) => DType::U8,
            HostData::U32(_) => DType::U32,
            HostData::F64(_) => DType::F64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            HostData::F32(v) => v.len(),
            HostData::F16(v) => v.len(),
            HostData::U8(v) => v.len(),
            HostData::U32(v) => v.len(),
            HostData::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Raw bytes in native (little-endian on every supported target) order.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            HostData::F32(v) => bytemuck::cast_slice(v),
            HostData::F16(v) => bytemuck::cast_slice(v),
            HostData::U8(v) => v,
            HostData::U32(v) => bytemuck::cast_slice(v),
            HostData::F64(v) => bytemuck::cast_slice(v),
        }
    }

    /// Rebuilds data of `dtype` from its first `len` elements' bytes.
    pub fn from_bytes(dtype: DType, bytes: &[u8], len: usize) -> HostData {
        let bytes = &bytes[..len * dtype.size_in_bytes()];
        match dtype {
            DType::F32 => HostData::F32(bytemuck::pod_collect_to_vec(bytes)),
            DType::F16 => HostData::F16(bytemuck::pod_collect_to_vec(bytes)),
            DType::U8 => HostData::U8(bytes.to_vec()),
            DType::U32 => HostData::U32(bytemuck::pod_collect_to_vec(bytes)),
            DType::F64 => HostData::F64(bytemuck::pod_collect_to_vec(bytes)),
        }
    }

    /// Every element as f64 (exact for all element types); used by tests and `item`.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            HostData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::F16(v) => v.iter().map(|&x| x.to_f64()).collect(),
            HostData::U8(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::U32(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::F64(v) => v.clone(),
        }
    }
}

/// Rust element types a tensor can be built from and read into.
pub trait Element: Copy + Send + Sync + 'static {
    const DTYPE: DType;
    fn into_host(data: Vec<Self>) -> HostData;
    /// Converts host data of any dtype into this type (a value cast, as `as` does).
    fn from_host(data: HostData) -> Vec<Self>;
}

macro_rules! element {
    ($t:ty, $variant:ident, $from_f64:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            fn into_host(data: Vec<Self>) -> HostData {
                HostData::$variant(data)
            }
            fn from_host(data: HostData) -> Vec<Self> {
                match data {
                    HostData::$variant(v) => v,
                    other => other.to_f64_vec().into_iter().map($from_f64).collect(),
                }
            }
        }
    };
}

element!(f32, F32, |x| x as f32);
element!(f16, F16, f16::from_f64);
element!(u8, U8, |x| x as u8);
element!(u32, U32, |x| x as u32);
element!(f64, F64, |x| x);
