//! Dtype conversions on the CPU (cast.wgsl's family).

use half::slice::HalfFloatSliceExt;
use kiln_tensor::{f16, DType, HostData, KilnError, Result};
use rayon::prelude::*;

/// f16 → f32 with the slice conversions of `half` (F16C where the CPU has it), in parallel
/// chunks for large tensors.
pub fn widen_f16(v: &[f16]) -> Vec<f32> {
    let mut out = vec![0.0f32; v.len()];
    out.par_chunks_mut(CONVERT_CHUNK)
        .zip(v.par_chunks(CONVERT_CHUNK))
        .for_each(|(o, s)| s.convert_to_f32_slice(o));
    out
}

/// f32 → f16, rounding to nearest even, as `widen_f16`.
pub fn narrow_to_f16(v: &[f32]) -> Vec<f16> {
    let mut out = vec![f16::ZERO; v.len()];
    out.par_chunks_mut(CONVERT_CHUNK)
        .zip(v.par_chunks(CONVERT_CHUNK))
        .for_each(|(o, s)| o.convert_from_f32_slice(s));
    out
}

/// Elements per task of the f16 conversions.
const CONVERT_CHUNK: usize = 1 << 16;

/// Value casts. f32 → u32 saturates and truncates toward zero, as on the GPU.
pub fn cast(data: &HostData, to: DType) -> Result<HostData> {
    Ok(match (data, to) {
        (d, to) if d.dtype() == to => d.clone(),
        (HostData::F32(v), DType::F16) => HostData::F16(narrow_to_f16(v)),
        (HostData::F16(v), DType::F32) => HostData::F32(widen_f16(v)),
        (HostData::U8(v), DType::F32) => HostData::F32(v.iter().map(|&x| x as f32).collect()),
        (HostData::U32(v), DType::F32) => HostData::F32(v.iter().map(|&x| x as f32).collect()),
        (HostData::F32(v), DType::U32) => HostData::U32(v.iter().map(|&x| x as u32).collect()),
        (HostData::F32(v), DType::F64) => HostData::F64(v.iter().map(|&x| x as f64).collect()),
        (HostData::F64(v), DType::F32) => HostData::F32(v.iter().map(|&x| x as f32).collect()),
        (HostData::U8(v), DType::F64) => HostData::F64(v.iter().map(|&x| x as f64).collect()),
        (HostData::U32(v), DType::F64) => HostData::F64(v.iter().map(|&x| x as f64).collect()),
        (d, to) => {
            return Err(KilnError::InvalidArgument {
                op: "cast",
                message: format!(
                    "the CPU backend casts f32↔f16, f32↔f64, u8→f32/f64 and u32↔f32, not {}→{to}",
                    d.dtype()
                ),
            })
        }
    })
}
