//! Host side of gather.wgsl: rows of a matrix picked by u32 indices.

use super::context::Context;
use super::elementwise::to_u32;
use super::grid;
use super::param_layout::param_layout;
use super::pipeline_cache::Specialisation;
use super::shaders::Kernel;
use super::shaders::ShaderFile;
use super::storage::WgpuStorage;
use crate::backend::{BackendStorage, Rows};
use crate::error::{KilnError, Result};
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

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![param_layout!(
        GatherParams,
        ShaderFile::Gather,
        "GatherParams",
        [count, cols, src_rows]
    )]
}
