//! Host side of gather.wgsl and cast.wgsl, plus upload and readback.

use super::context::Context;
use super::elementwise::{copy_strided, to_u32};
use super::grid;
use super::pipeline_cache::Specialisation;
use super::readback::{Piece, Readback};
use super::shaders::Kernel;
use super::storage::WgpuStorage;
use crate::backend::{BackendStorage, Rows};
use crate::error::{KilnError, Result};
use crate::{DType, HostData, Layout};
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GatherParams {
    count: u32,
    cols: u32,
    src_rows: u32,
    pad: u32,
}

pub(crate) fn gather_rows(
    ctx: &Arc<Context>,
    src: &WgpuStorage,
    shape: Rows,
    indices: &WgpuStorage,
) -> Result<WgpuStorage> {
    if src.dtype().size_in_bytes() != 4 {
        return Err(KilnError::UnsupportedDType {
            op: "gather_rows",
            dtype: src.dtype(),
            backend: "wgpu".into(),
            supported: "f32, u32".into(),
        });
    }
    let count = indices.len();
    let p = GatherParams {
        count: to_u32(count, "index count")?,
        cols: to_u32(shape.cols, "columns")?,
        src_rows: to_u32(shape.rows, "rows")?,
        pad: 0,
    };
    to_u32(count * shape.cols, "element count")?;
    let out = WgpuStorage::output(ctx, count * shape.cols, src.dtype(), "gather_rows")?;
    ctx.dispatch(
        Kernel::GatherRows,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[src.binding(), indices.binding(), out.binding()],
        grid((count * shape.cols).div_ceil(256)),
    )?;
    Ok(out)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CastParams {
    numel: u32,
    pad: [u32; 3],
}

pub(crate) fn cast(ctx: &Arc<Context>, src: &WgpuStorage, to: DType) -> Result<WgpuStorage> {
    let n = src.len();
    let (kernel, invocations) = match (src.dtype(), to) {
        (DType::F32, DType::F16) => (Kernel::CastF32ToF16, n.div_ceil(2)),
        (DType::F16, DType::F32) => (Kernel::CastF16ToF32, n),
        (DType::U8, DType::F32) => (Kernel::CastU8ToF32, n),
        (DType::U32, DType::F32) => (Kernel::CastU32ToF32, n),
        (DType::F32, DType::U32) => (Kernel::CastF32ToU32, n),
        (from, to) => {
            return Err(KilnError::invalid(
                "cast",
                format!("the wgpu backend casts f32↔f16, u8→f32 and u32↔f32, not {from}→{to}"),
            ));
        }
    };
    let p = CastParams {
        numel: to_u32(n, "element count")?,
        pad: [0; 3],
    };
    let out = WgpuStorage::output(ctx, n, to, "cast")?;
    ctx.dispatch(
        kernel,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[src.binding(), out.binding()],
        grid(invocations.div_ceil(256)),
    )?;
    Ok(out)
}

pub(crate) fn upload(ctx: &Arc<Context>, data: &HostData) -> Result<WgpuStorage> {
    if data.dtype() == DType::F64 {
        return Err(KilnError::UnsupportedDType {
            op: "upload",
            dtype: DType::F64,
            backend: "wgpu".into(),
            supported: "f32, f16, u8, u32".into(),
        });
    }
    let (buffer, bytes) = ctx.upload(data.as_bytes(), data.len(), data.dtype())?;
    Ok(WgpuStorage::new(
        ctx,
        buffer,
        bytes,
        data.len(),
        data.dtype(),
    ))
}

/// Records the copies for every request, submits once, and returns the pending readback.
pub(crate) fn start_download(
    ctx: &Arc<Context>,
    requests: &[(&WgpuStorage, &Layout)],
) -> Result<Readback> {
    // Strided views are first gathered into contiguous temporaries (kept alive until the
    // copies are recorded).
    let mut temporaries = Vec::new();
    let mut sources = Vec::with_capacity(requests.len());
    for &(storage, layout) in requests {
        if layout.is_contiguous() {
            sources.push((storage, layout.offset(), layout.numel()));
        } else {
            temporaries.push((sources.len(), copy_strided(ctx, storage, layout)?));
            sources.push((storage, 0, layout.numel()));
        }
    }
    let mut ranges = Vec::with_capacity(sources.len());
    let mut pieces = Vec::with_capacity(sources.len());
    for (i, &(storage, offset, len)) in sources.iter().enumerate() {
        let storage = temporaries
            .iter()
            .find(|(j, _)| *j == i)
            .map_or(storage, |(_, t)| t);
        let size = storage.dtype().size_in_bytes() as u64;
        let start = offset as u64 * size;
        let aligned_start = start / 4 * 4;
        let end = (start + len as u64 * size).next_multiple_of(4);
        ranges.push((storage.buffer(), aligned_start, end - aligned_start));
        pieces.push(Piece {
            dtype: storage.dtype(),
            len,
            skip: (start - aligned_start) as usize,
        });
    }
    let staging = ctx.record_readback(&ranges);
    drop(temporaries);
    ctx.check_errors()?;
    Ok(Readback::start(ctx.clone(), staging, pieces))
}

/// Mirrors `DataParams` in data.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct DataParams {
    count: u32,
    features: u32,
    first_row: u32,
    rows: u32,
}

/// One dispatch per chunk, all writing their rows of one output.
pub(crate) fn gather_u8_affine(
    ctx: &Arc<Context>,
    chunks: &[(&WgpuStorage, usize)],
    features: usize,
    indices: &WgpuStorage,
    scale: &WgpuStorage,
    shift: &WgpuStorage,
) -> Result<WgpuStorage> {
    for (chunk, _) in chunks {
        if chunk.dtype() != DType::U8 {
            return Err(KilnError::UnsupportedDType {
                op: "gather_u8_affine",
                dtype: chunk.dtype(),
                backend: "wgpu".into(),
                supported: "u8 dataset chunks".into(),
            });
        }
    }
    let count = indices.len();
    let total = to_u32(count * features, "element count")?;
    let out = WgpuStorage::output(ctx, count * features, DType::F32, "gather_u8_affine")?;
    if total == 0 {
        return Ok(out);
    }
    // Four features per invocation when rows are whole u32 words of pixels.
    let (kernel, invocations) = if features.is_multiple_of(4) {
        (Kernel::DataGatherU8AffineVec4, count * features / 4)
    } else {
        (Kernel::DataGatherU8Affine, count * features)
    };
    for (chunk, first_row) in chunks {
        let p = DataParams {
            count: to_u32(count, "index count")?,
            features: to_u32(features, "features")?,
            first_row: to_u32(*first_row, "first row")?,
            rows: to_u32(chunk.len() / features.max(1), "chunk rows")?,
        };
        ctx.dispatch(
            kernel,
            Specialisation::default(),
            bytemuck::bytes_of(&p),
            &[
                chunk.binding(),
                indices.binding(),
                scale.binding(),
                shift.binding(),
                out.binding(),
            ],
            grid(invocations.div_ceil(256)),
        )?;
    }
    Ok(out)
}
