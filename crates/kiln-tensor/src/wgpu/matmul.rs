//! Host side of matmul.wgsl and matmul_subgroup.wgsl, and the choice between the kernels: the
//! texture kernel (matmul_texture.rs) or the subgroup kernel when the device chose them
//! (CPU-type adapters), else the tiled kernel, with vec4 loads when every operand allows.

use super::context::Context;
use super::elementwise::to_u32;
use super::matmul_f16;
use super::matmul_texture;
use super::pipeline_cache::Specialisation;
use super::shaders::Kernel;
use super::storage::WgpuStorage;
use crate::backend::{BackendStorage, Epilogue};
use crate::error::{KilnError, Result};
use crate::ops::MatmulShape;
use crate::DType;
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

/// Mirrors `MatmulParams` in matmul.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    alpha: f32,
    batch_stride_a: u32,
    batch_stride_b: u32,
    /// Texels (vec4s) per row of C for kernels that store vec4s: ceil(n / 4).
    pub c_texels: u32,
    pad: u32,
}

/// Output tile of matmul_tiled (square).
const TILE: usize = 64;
/// Output tile of matmul_subgroup: 32 rows × 256 columns per workgroup.
const SUBGROUP_ROWS: usize = 32;
const SUBGROUP_COLUMNS: usize = 256;

/// True when each operand's contiguous dimension (and batch stride) is a multiple of 4.
fn vec4_aligned(s: &MatmulShape) -> bool {
    let a_inner = if s.trans_a { s.m } else { s.k };
    let b_inner = if s.trans_b { s.k } else { s.n };
    [a_inner, b_inner, s.batch_stride_a, s.batch_stride_b]
        .iter()
        .all(|d| d.is_multiple_of(4))
}

pub(crate) fn matmul(
    ctx: &Arc<Context>,
    a: &WgpuStorage,
    b: &WgpuStorage,
    s: &MatmulShape,
    epilogue: Epilogue<'_, WgpuStorage>,
) -> Result<WgpuStorage> {
    let output = epilogue.output.unwrap_or(a.dtype());
    match (a.dtype(), b.dtype(), output) {
        (DType::F32, DType::F32, DType::F32) => {}
        (DType::F16, DType::F16, DType::F16 | DType::F32) => {
            return matmul_f16::matmul(ctx, a, b, s, epilogue, output)
        }
        _ => {
            return Err(KilnError::UnsupportedDType {
                op: "matmul",
                dtype: a.dtype(),
                backend: "wgpu".into(),
                supported: "f32 · f32 → f32, f16 · f16 → f16 or f32".into(),
            })
        }
    }
    let p = params(s, &epilogue)?;
    let mut constants = constants(s, &epilogue);
    // Without a bias, bind B in its place: the kernel never reads it.
    let bias = epilogue.bias.unwrap_or(b);
    if let Some(subgroup_size) = ctx.subgroup_matmul {
        if ctx.texture_matmul && matmul_texture::fits(ctx, s, subgroup_size) {
            return matmul_texture::matmul(ctx, a, b, bias, s, &p, constants, subgroup_size);
        }
    }
    let out = WgpuStorage::output(ctx, s.batch * s.m * s.n, DType::F32, "matmul")?;
    let batch = s.batch as u32;
    let (kernel, workgroups) = match ctx.subgroup_matmul {
        Some(subgroup_size) => {
            constants.push(("SUBGROUP_SIZE", subgroup_size));
            let x = s.n.div_ceil(SUBGROUP_COLUMNS) as u32;
            let kernel = if s.n.is_multiple_of(4) {
                Kernel::MatmulSubgroupVec4
            } else {
                Kernel::MatmulSubgroup
            };
            (kernel, [x, s.m.div_ceil(SUBGROUP_ROWS) as u32, batch])
        }
        None if vec4_aligned(s) => (Kernel::MatmulTiledVec4, tiled_grid(s)),
        None => (Kernel::MatmulTiled, tiled_grid(s)),
    };
    let constants = Specialisation(constants);
    ctx.dispatch(
        kernel,
        constants,
        bytemuck::bytes_of(&p),
        &[a.binding(), b.binding(), bias.binding(), out.binding()],
        workgroups,
    )?;
    Ok(out)
}

/// The uniform parameters shared by every matmul kernel.
pub(crate) fn params<S>(s: &MatmulShape, epilogue: &Epilogue<'_, S>) -> Result<MatmulParams> {
    if s.batch > 65535 {
        return Err(KilnError::invalid(
            "matmul",
            format!("batch of {} exceeds the 65535 a dispatch allows", s.batch),
        ));
    }
    Ok(MatmulParams {
        m: to_u32(s.m, "m")?,
        n: to_u32(s.n, "n")?,
        k: to_u32(s.k, "k")?,
        alpha: epilogue.activation.map_or(0.0, |op| op.param()),
        batch_stride_a: to_u32(s.batch_stride_a, "batch stride")?,
        batch_stride_b: to_u32(s.batch_stride_b, "batch stride")?,
        c_texels: to_u32(s.n.div_ceil(4), "n")?,
        pad: 0,
    })
}

/// The transpose flags and epilogue as pipeline constants.
pub(crate) fn constants<S>(
    s: &MatmulShape,
    epilogue: &Epilogue<'_, S>,
) -> Vec<(&'static str, u32)> {
    vec![
        ("TRANS_A", s.trans_a as u32),
        ("TRANS_B", s.trans_b as u32),
        ("HAS_BIAS", epilogue.bias.is_some() as u32),
        ("ACTIVATION", epilogue.activation.map_or(0, |op| op.code())),
    ]
}

pub(crate) fn tiled_grid(s: &MatmulShape) -> [u32; 3] {
    [
        s.n.div_ceil(TILE) as u32,
        s.m.div_ceil(TILE) as u32,
        s.batch as u32,
    ]
}
