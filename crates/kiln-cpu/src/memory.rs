//! Fill, strided copy, casts and row gathers on the CPU.

use crate::elementwise::{fill_indexed, reader};
use half::slice::HalfFloatSliceExt;
use kiln_tensor::{f16, DType, HostData, KilnError, Layout, Result, Rows};
use rayon::prelude::*;

pub fn fill(numel: usize, dtype: DType, value: f64) -> HostData {
    match dtype {
        DType::F32 => HostData::F32(vec![value as f32; numel]),
        DType::F16 => HostData::F16(vec![f16::from_f64(value); numel]),
        DType::U8 => HostData::U8(vec![value as u8; numel]),
        DType::U32 => HostData::U32(vec![value as u32; numel]),
        DType::F64 => HostData::F64(vec![value; numel]),
    }
}

fn gather_view<T: Copy + Default + Send + Sync>(data: &[T], layout: &Layout) -> Vec<T> {
    if layout.is_contiguous() {
        return data[layout.offset()..layout.offset() + layout.numel()].to_vec();
    }
    let read = reader(data, layout);
    let mut out = vec![T::default(); layout.numel()];
    fill_indexed(&mut out, read);
    out
}

pub fn copy_strided(data: &HostData, layout: &Layout) -> Result<HostData> {
    Ok(match data {
        HostData::F32(v) => HostData::F32(gather_view(v, layout)),
        HostData::F16(v) => HostData::F16(gather_view(v, layout)),
        HostData::U8(v) => HostData::U8(gather_view(v, layout)),
        HostData::U32(v) => HostData::U32(gather_view(v, layout)),
        HostData::F64(v) => HostData::F64(gather_view(v, layout)),
    })
}

/// Elements per parallel chunk of `copy_into` (smaller copies run on one thread).
const COPY_CHUNK: usize = 1 << 16;

fn copy_slice<T: Copy + Send + Sync>(src: &[T], dst: &mut [T]) {
    use rayon::prelude::*;
    if src.len() <= COPY_CHUNK {
        dst.copy_from_slice(src);
    } else {
        dst.par_chunks_mut(COPY_CHUNK)
            .zip(src.par_chunks(COPY_CHUNK))
            .for_each(|(d, s)| d.copy_from_slice(s));
    }
}

/// Copies `src` over `dst` (same dtype and length, checked by the caller).
pub fn copy_into(src: &HostData, dst: &mut HostData) {
    match (src, dst) {
        (HostData::F32(s), HostData::F32(d)) => copy_slice(s, d),
        (HostData::F16(s), HostData::F16(d)) => copy_slice(s, d),
        (HostData::U8(s), HostData::U8(d)) => copy_slice(s, d),
        (HostData::U32(s), HostData::U32(d)) => copy_slice(s, d),
        (HostData::F64(s), HostData::F64(d)) => copy_slice(s, d),
        (s, d) => unreachable!(
            "copy_into checks dtypes first ({} vs {})",
            s.dtype(),
            d.dtype()
        ),
    }
}

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

pub fn gather_rows(src: &HostData, shape: Rows, indices: &HostData) -> Result<HostData> {
    let HostData::U32(indices) = indices else {
        return Err(KilnError::InvalidArgument {
            op: "gather_rows",
            message: format!("indices must be u32, got {}", indices.dtype()),
        });
    };
    if let Some((pos, &bad)) = indices
        .iter()
        .enumerate()
        .find(|(_, &i)| i as usize >= shape.rows)
    {
        return Err(KilnError::InvalidArgument {
            op: "gather_rows",
            message: format!(
                "index {bad} at position {pos} is out of range for {} rows",
                shape.rows
            ),
        });
    }
    fn go<T: Copy + Default + Send + Sync>(src: &[T], cols: usize, indices: &[u32]) -> Vec<T> {
        let mut out = vec![T::default(); indices.len() * cols];
        fill_indexed(&mut out, |i| {
            src[indices[i / cols] as usize * cols + i % cols]
        });
        out
    }
    if shape.cols == 0 {
        return Ok(fill(0, src.dtype(), 0.0));
    }
    let cols = shape.cols;
    Ok(match src {
        HostData::F32(v) => HostData::F32(go(v, cols, indices)),
        HostData::F16(v) => HostData::F16(go(v, cols, indices)),
        HostData::U8(v) => HostData::U8(go(v, cols, indices)),
        HostData::U32(v) => HostData::U32(go(v, cols, indices)),
        HostData::F64(v) => HostData::F64(go(v, cols, indices)),
    })
}

/// out[i, c] = data[indices[i], c] · scale[c] + shift[c] over u8 chunks of whole rows.
pub fn gather_u8_affine(
    chunks: &[(&HostData, usize)],
    features: usize,
    indices: &HostData,
    scale: &HostData,
    shift: &HostData,
) -> Result<HostData> {
    let invalid = |message: String| KilnError::InvalidArgument {
        op: "gather_u8_affine",
        message,
    };
    let HostData::U32(indices) = indices else {
        return Err(invalid(format!(
            "indices must be u32, got {}",
            indices.dtype()
        )));
    };
    let (HostData::F32(scale), HostData::F32(shift)) = (scale, shift) else {
        return Err(invalid("scale and shift must be f32".into()));
    };
    let mut rows: Vec<(&[u8], usize)> = Vec::with_capacity(chunks.len());
    for (data, first) in chunks {
        let HostData::U8(bytes) = data else {
            return Err(invalid(format!(
                "dataset chunks must be u8, got {}",
                data.dtype()
            )));
        };
        rows.push((bytes, *first));
    }
    let row = |index: u32| -> Option<&[u8]> {
        let index = index as usize;
        rows.iter().find_map(|(bytes, first)| {
            let local = index.checked_sub(*first)?;
            bytes.get(local * features..(local + 1) * features)
        })
    };
    if let Some((pos, bad)) = indices.iter().enumerate().find(|(_, &i)| row(i).is_none()) {
        return Err(invalid(format!(
            "index {bad} at position {pos} is in no chunk of the dataset"
        )));
    }
    let mut out = vec![0.0f32; indices.len() * features];
    if features > 0 {
        // Each output row finds its source row once, then maps it feature by feature.
        let map_row = |(out_row, &index): (&mut [f32], &u32)| {
            let src = row(index).unwrap_or(&[]);
            for (((o, &b), &s), &t) in out_row.iter_mut().zip(src).zip(scale).zip(shift) {
                *o = b as f32 * s + t;
            }
        };
        if out.len() >= crate::PARALLEL_THRESHOLD {
            use rayon::prelude::*;
            out.par_chunks_mut(features)
                .zip(indices.par_iter())
                .for_each(map_row);
        } else {
            out.chunks_mut(features)
                .zip(indices.iter())
                .for_each(map_row);
        }
    }
    Ok(HostData::F32(out))
}
