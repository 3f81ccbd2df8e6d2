//! Uploads and readbacks.

use super::context::Context;
use super::elementwise::copy_strided;
use super::readback::{Piece, Readback};
use super::storage::WgpuStorage;
use crate::backend::BackendStorage;
use crate::error::{KilnError, Result};
use crate::{DType, HostData, Layout};
use std::sync::Arc;

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
