//! Host side of cast.wgsl: dtype conversions (f32↔f16, u8→f32, u32↔f32).

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

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![param_layout!(
        CastParams,
        ShaderFile::Cast,
        "CastParams",
        [numel]
    )]
}
