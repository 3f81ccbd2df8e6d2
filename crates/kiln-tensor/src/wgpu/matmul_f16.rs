//! Host side of matmul_f16.wgsl: products of f16 operands, accumulated in f32, with an f16 or
//! f32 result. With `shader-f16`, the tiled kernel reads the f16 operands directly, and CPU-type
//! adapters pack them into the texture kernel's f32 textures straight from f16. Without the
//! feature, the operands are widened by cast.wgsl's packed kernels and the f32 path runs.

use super::cast::cast;
use super::context::Context;
use super::matmul::{self, constants, params, tiled_grid};
use super::matmul_texture;
use super::pipeline_cache::Specialisation;
use super::shaders::Kernel;
use super::storage::WgpuStorage;
use crate::backend::{BackendStorage, Epilogue};
use crate::error::Result;
use crate::ops::MatmulShape;
use crate::wgpu::MatmulKernel;
use crate::DType;
use std::sync::Arc;

/// Outputs per workgroup side of matmul_f16_tiled (one tile shape: f16 products are not tuned).
const F16_TILE: usize = 64;

/// C = act(op(A) · op(B) + bias) for f16 A and B; C and the bias have dtype `output`.
pub(crate) fn matmul(
    ctx: &Arc<Context>,
    a: &WgpuStorage,
    b: &WgpuStorage,
    s: &MatmulShape,
    epilogue: Epilogue<'_, WgpuStorage>,
    output: DType,
) -> Result<WgpuStorage> {
    let texture = match ctx.matmul.subgroup_size {
        Some(subgroup_size)
            if ctx.matmul.kernel == MatmulKernel::Texture
                && matmul_texture::fits(ctx, s, subgroup_size) =>
        {
            Some(subgroup_size)
        }
        _ => None,
    };
    if !ctx.native_f16 {
        return widened(ctx, a, b, s, epilogue, output);
    }
    let p = params(s, &epilogue)?;
    let constants = constants(s, &epilogue);
    if let Some(subgroup_size) = texture {
        // The texture kernel writes f32: an f16 bias is widened first and C rounded after.
        let widened_bias = widen_f16_bias(ctx, epilogue.bias)?;
        // Without a bias, bind B in its place: the kernel never reads it.
        let bias = widened_bias.as_ref().or(epilogue.bias).unwrap_or(b);
        let out = matmul_texture::matmul(ctx, a, b, bias, s, &p, constants, subgroup_size)?;
        return if output == DType::F16 {
            cast(ctx, &out, DType::F16)
        } else {
            Ok(out)
        };
    }
    let out = WgpuStorage::output(ctx, s.batch * s.m * s.n, output, "matmul")?;
    let kernel = match output {
        DType::F16 => Kernel::MatmulF16TiledToF16,
        _ => Kernel::MatmulF16Tiled,
    };
    // Without a bias, bind B in its place: the kernel never reads it.
    let bias = epilogue.bias.unwrap_or(b);
    ctx.dispatch(
        kernel,
        Specialisation(constants),
        bytemuck::bytes_of(&p),
        &[a.binding(), b.binding(), bias.binding(), out.binding()],
        tiled_grid(s, F16_TILE),
    )?;
    Ok(out)
}

/// The fallback without `shader-f16`: widen both operands (and an f16 bias), multiply in f32,
/// round C to f16 when asked.
fn widened(
    ctx: &Arc<Context>,
    a: &WgpuStorage,
    b: &WgpuStorage,
    s: &MatmulShape,
    epilogue: Epilogue<'_, WgpuStorage>,
    output: DType,
) -> Result<WgpuStorage> {
    let a = cast(ctx, a, DType::F32)?;
    let b = cast(ctx, b, DType::F32)?;
    let widened_bias = widen_f16_bias(ctx, epilogue.bias)?;
    let widened = Epilogue {
        bias: widened_bias.as_ref().or(epilogue.bias),
        activation: epilogue.activation,
        output: None,
    };
    let out = matmul::matmul(ctx, &a, &b, s, widened)?;
    if output == DType::F16 {
        cast(ctx, &out, DType::F16)
    } else {
        Ok(out)
    }
}

/// An f16 bias widened to f32 (None when there is no bias or it is already f32).
fn widen_f16_bias(ctx: &Arc<Context>, bias: Option<&WgpuStorage>) -> Result<Option<WgpuStorage>> {
    match bias {
        Some(bias) if bias.dtype() == DType::F16 => Ok(Some(cast(ctx, bias, DType::F32)?)),
        _ => Ok(None),
    }
}
