//! Host side of matmul_texture.wgsl: pack both operands into rgba32float textures, then
//! multiply from the textures. Chosen for CPU-type adapters, whose texel fetches are
//! vectorised where storage-buffer loads are not (see the shader's header).

use super::context::{Context, PackedTexture, TextureBindings};
use super::elementwise::copy_strided;
use super::matmul::MatmulParams;
use super::param_layout::param_layout;
use super::pipeline_cache::Specialisation;
use super::shaders::Kernel;
use super::shaders::ShaderFile;
use super::storage::WgpuStorage;
use crate::backend::BackendStorage;
use crate::error::Result;
use crate::ops::MatmulShape;
use crate::{DType, Layout};
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

/// Mirrors `PackParams` in matmul_texture.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PackParams {
    k: u32,
    x: u32,
    height: u32,
    width: u32,
}

/// Output rows per workgroup of matmul_texture.
pub(crate) const ROWS: usize = 32;
/// Invocations per workgroup (each owns 4 columns of C) unless the product is narrow.
const GROUP: usize = 64;

/// Invocations per workgroup of matmul_texture for this product: 64 (256 columns of C), or for
/// narrower products the fewest whole subgroups covering N, so no subgroup multiplies only
/// padding.
pub(crate) fn group(s: &MatmulShape, subgroup_size: u32) -> usize {
    let subgroup = subgroup_size as usize;
    s.n.div_ceil(4)
        .next_multiple_of(subgroup)
        .min(GROUP.max(subgroup))
}

/// Texels per row and rows of the packed texture of an operand with `x` columns and `k` rows,
/// padded to whole workgroup tiles: `tile` columns and `subgroup_size` rows.
pub(crate) fn packed_size(x: usize, k: usize, tile: usize, subgroup_size: u32) -> (usize, usize) {
    (
        x.next_multiple_of(tile) / 4,
        k.next_multiple_of(subgroup_size as usize),
    )
}

/// True when the texture kernel can run this product: one matrix (not a batch) and packed
/// operands within the adapter's texture size.
pub(crate) fn fits(ctx: &Context, s: &MatmulShape, subgroup_size: u32) -> bool {
    let limit = ctx.limits.max_texture_dimension_2d as usize;
    let columns = 4 * group(s, subgroup_size);
    let (a_width, height) = packed_size(s.m, s.k, ROWS, subgroup_size);
    let (b_width, _) = packed_size(s.n, s.k, columns, subgroup_size);
    s.batch == 1 && a_width.max(b_width).max(height) <= limit
}

/// How one operand is packed: which cached texture (0: A, 1: B), its X (M or N), whether the
/// source is K-contiguous, and the columns one workgroup reads (the padding unit).
pub(crate) struct Operand {
    pub role: u8,
    pub x: usize,
    pub k_contiguous: bool,
    pub tile: usize,
}

/// Records the pack of one operand (K rows of op) into its texture and returns the texture,
/// checked out of the cache until the caller has recorded the multiply.
/// An f16 source (adapters with `shader-f16`) is widened by matmul_f16.wgsl's pack kernel.
/// A source already in the packed layout (X-contiguous, no padding, rows a multiple of 256
/// bytes as copies require) is copied instead of run through the pack kernel.
pub(crate) fn pack<'c>(
    ctx: &'c Arc<Context>,
    source: &WgpuStorage,
    operand: Operand,
    k: usize,
    subgroup_size: u32,
) -> Result<PackedTexture<'c>> {
    let (width, height) = packed_size(operand.x, k, operand.tile, subgroup_size);
    let packed = ctx.packed_texture(operand.role, width as u32, height as u32);
    let row_bytes = operand.x * 4;
    let f16 = source.dtype() == DType::F16;
    if !f16
        && !operand.k_contiguous
        && width * 4 == operand.x
        && height == k
        && row_bytes.is_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as usize)
    {
        ctx.copy_to_texture(
            source.buffer(),
            packed.texture(),
            row_bytes as u32,
            width as u32,
            height as u32,
        );
        return Ok(packed);
    }
    let params = PackParams {
        k: k as u32,
        x: operand.x as u32,
        height: height as u32,
        width: width as u32,
    };
    ctx.dispatch_with_textures(
        if f16 {
            Kernel::MatmulF16TexturePack
        } else {
            Kernel::MatmulTexturePack
        },
        Specialisation(vec![("K_CONTIGUOUS", operand.k_contiguous as u32)]),
        bytemuck::bytes_of(&params),
        TextureBindings {
            sampled: &[],
            storage: &[packed.view()],
        },
        &[source.binding()],
        if operand.k_contiguous {
            [height.div_ceil(8) as u32, width.div_ceil(8) as u32, 1]
        } else {
            [width.div_ceil(8) as u32, height.div_ceil(8) as u32, 1]
        },
    )?;
    Ok(packed)
}

/// C = act(op(A) · op(B) + bias) as a new f32 [M, N] storage, for a product `fits` accepted.
/// The kernel stores whole vec4s, so when N is not a multiple of 4 it writes a C padded to
/// ceil(N / 4)·4 columns, which is then narrowed by a strided copy.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    ctx: &Arc<Context>,
    a: &WgpuStorage,
    b: &WgpuStorage,
    bias: &WgpuStorage,
    s: &MatmulShape,
    params: &MatmulParams,
    mut constants: Vec<(&'static str, u32)>,
    subgroup_size: u32,
) -> Result<WgpuStorage> {
    let group = group(s, subgroup_size);
    // A(m, k) is K-contiguous when stored [M, K]; B(k, n) when stored [N, K].
    let a_operand = Operand {
        role: 0,
        x: s.m,
        k_contiguous: !s.trans_a,
        tile: ROWS,
    };
    let b_operand = Operand {
        role: 1,
        x: s.n,
        k_contiguous: s.trans_b,
        tile: 4 * group,
    };
    let a_packed = pack(ctx, a, a_operand, s.k, subgroup_size)?;
    let b_packed = pack(ctx, b, b_operand, s.k, subgroup_size)?;
    constants.retain(|(name, _)| *name != "TRANS_A" && *name != "TRANS_B");
    let padded_n = s.n.next_multiple_of(4);
    let out = WgpuStorage::output(ctx, s.m * padded_n, DType::F32, "matmul")?;
    let packed = [&a_packed, &b_packed];
    let textures = Multiply {
        packed,
        group,
        subgroup_size,
    };
    multiply(ctx, textures, bias, &out, s, params, constants)?;
    drop((a_packed, b_packed));
    if padded_n == s.n {
        return Ok(out);
    }
    let narrowed = Layout::contiguous([s.m, padded_n]).narrow(1, 0, s.n)?;
    copy_strided(ctx, &out, &narrowed)
}

/// The packed operands of one multiply and the workgroup width they were padded for.
pub(crate) struct Multiply<'t, 'c> {
    pub packed: [&'t PackedTexture<'c>; 2],
    pub group: usize,
    pub subgroup_size: u32,
}

/// Records matmul_texture over packed A and B into `out` (C's rows `params.c_texels` texels
/// apart, from texel `params.c_offset` with PLANES). `constants` carries the epilogue's.
pub(crate) fn multiply(
    ctx: &Arc<Context>,
    textures: Multiply<'_, '_>,
    bias: &WgpuStorage,
    out: &WgpuStorage,
    s: &MatmulShape,
    params: &MatmulParams,
    mut constants: Vec<(&'static str, u32)>,
) -> Result<()> {
    let Multiply {
        packed: [a, b],
        group,
        subgroup_size,
    } = textures;
    constants.push(("SUBGROUP_SIZE", subgroup_size));
    constants.push(("GROUP", group as u32));
    ctx.dispatch_with_textures(
        Kernel::MatmulTexture,
        Specialisation(constants),
        bytemuck::bytes_of(params),
        TextureBindings {
            sampled: &[a.view(), b.view()],
            storage: &[],
        },
        &[bias.binding(), out.binding()],
        [s.n.div_ceil(4 * group) as u32, s.m.div_ceil(ROWS) as u32, 1],
    )
}

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![
        param_layout!(
            PackParams,
            ShaderFile::MatmulTexture,
            "PackParams",
            [k, x, height, width]
        ),
        param_layout!(
            PackParams,
            ShaderFile::MatmulF16,
            "PackParams",
            [k, x, height, width]
        ),
    ]
}
