//! Host side of data.wgsl: minibatch rows of a u8 dataset, mapped to f32 per feature.

use super::context::Context;
use super::elementwise::to_u32;
use super::grid;
use super::param_layout::param_layout;
use super::pipeline_cache::Specialisation;
use super::shaders::Kernel;
use super::shaders::ShaderFile;
use super::storage::WgpuStorage;
use crate::backend::BackendStorage;
use crate::error::{KilnError, Result};
use crate::DType;
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

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

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![param_layout!(
        DataParams,
        ShaderFile::Data,
        "DataParams",
        [count, features, first_row, rows]
    )]
}
