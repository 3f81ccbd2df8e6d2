//! Host side of conv_texture.wgsl: the convolution's three passes through the texture matmul,
//! on devices whose matmul is the texture kernel (CPU-type adapters) and wherever the tuner
//! measured it faster than the implicit GEMM (conv.rs chooses). Each chunk of images has its unfolded operand
//! packed straight into the texture the multiply samples, then matmul_texture multiplies it
//! and stores into the NCHW planes (forward, input gradient) or a partial weight gradient.
//! Chunks keep every packed texture within the adapter's 2-D texture size; a shape that
//! cannot fit even one image returns `None` and runs the implicit GEMM (conv.rs) instead.

use super::context::Context;
use super::conv::ConvGeometry;
use super::elementwise::{copy_strided, to_u32};
use super::matmul::MatmulParams;
use super::matmul_texture::{group, multiply, pack, packed_size, Multiply, Operand, ROWS};
use super::param_layout::param_layout;
use super::pipeline_cache::Specialisation;
use super::reduce::reduce;
use super::shaders::{Kernel, ShaderFile};
use super::storage::WgpuStorage;
use crate::backend::{Epilogue, ReduceDims};
use crate::error::Result;
use crate::ops::{Conv2dShape, MatmulShape, ReduceOp, UnaryOp};
use crate::{DType, Layout};
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

/// Mirrors `PackParams` in conv_texture.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PackParams {
    g: ConvGeometry,
    first_image: u32,
    images: u32,
    k: u32,
    x: u32,
    plane_texels: u32,
    tex_width: u32,
    tex_height: u32,
    pad: u32,
}

/// The texels one workgroup of matmul_texture reads along X at most (64 invocations × 1).
const WIDEST_GROUP: usize = 64;

fn shape_params(s: &Conv2dShape) -> Result<PackParams> {
    Ok(PackParams {
        g: ConvGeometry::new(s)?,
        first_image: 0,
        images: 0,
        k: 0,
        x: 0,
        plane_texels: 1,
        tex_width: 0,
        tex_height: 0,
        pad: 0,
    })
}

/// The shape's divisors as pipeline constants: the shaders divide by them, and as constants
/// the divisions become multiplies.
fn divisors(p: &PackParams) -> Specialisation {
    Specialisation(vec![
        ("KERNEL_H", p.g.kernel_h),
        ("KERNEL_W", p.g.kernel_w),
        ("STRIDE", p.g.stride),
        ("WIDTH", p.g.width),
        ("OUT_WIDTH", p.g.out_width),
        ("OUT_PLANE", p.g.out_height * p.g.out_width),
        ("PLANE_TEXELS", p.plane_texels),
    ])
}

/// Records one pack kernel filling `texture` (width × height texels); `k_fastest` when the
/// invocations' x walks K (the K-contiguous operands).
fn record_pack(
    ctx: &Arc<Context>,
    kernel: Kernel,
    mut params: PackParams,
    source: &WgpuStorage,
    texture: &wgpu::TextureView,
    (width, height): (usize, usize),
    k_fastest: bool,
) -> Result<()> {
    params.tex_width = width as u32;
    params.tex_height = height as u32;
    let (x, y) = if k_fastest {
        (height, width)
    } else {
        (width, height)
    };
    ctx.dispatch_with_textures(
        kernel,
        divisors(&params),
        bytemuck::bytes_of(&params),
        super::context::TextureBindings {
            sampled: &[],
            storage: &[texture],
        },
        &[source.binding()],
        [x.div_ceil(8) as u32, y.div_ceil(8) as u32, 1],
    )
}

/// A product's shape for matmul_texture: one matrix, nothing transposed.
fn gemm(m: usize, n: usize, k: usize) -> MatmulShape {
    MatmulShape {
        batch: 1,
        m,
        n,
        k,
        trans_a: false,
        trans_b: false,
        batch_stride_a: 0,
        batch_stride_b: 0,
    }
}

/// matmul_texture's parameters: C's rows `c_texels` apart from texel `c_offset` on.
fn matmul_params(
    s: &MatmulShape,
    activation: Option<UnaryOp>,
    c_texels: usize,
    c_offset: usize,
) -> Result<MatmulParams> {
    let epilogue = Epilogue::<WgpuStorage> {
        bias: None,
        activation,
        output: None,
    };
    let mut p = super::matmul::params(s, &epilogue)?;
    p.c_texels = to_u32(c_texels, "plane texels")?;
    p.c_offset = to_u32(c_offset, "output offset")?;
    Ok(p)
}

/// Images per chunk when each image adds `texels` texels along X of a packed texture.
fn images_per_chunk(ctx: &Context, texels: usize) -> usize {
    let limit = ctx.limits.max_texture_dimension_2d as usize;
    (limit / WIDEST_GROUP * WIDEST_GROUP) / texels.max(1)
}

/// A [rows, padded] result narrowed to [rows, len] when the planes were padded to texels.
fn narrow_planes(
    ctx: &Arc<Context>,
    out: WgpuStorage,
    rows: usize,
    len: usize,
) -> Result<WgpuStorage> {
    let padded = len.next_multiple_of(4);
    if padded == len {
        return Ok(out);
    }
    let narrowed = Layout::contiguous([rows, padded]).narrow(1, 0, len)?;
    copy_strided(ctx, &out, &narrowed)
}

/// The input gradient's multiply over every chunk of images, stored into dx's NCHW planes:
/// A packed once by the caller, B packed per chunk by `kernel` from `source`.
struct PlanePass<'a> {
    kernel: Kernel,
    source: &'a WgpuStorage,
    params: PackParams,
    m: usize,
    k: usize,
    plane: usize,
}

fn plane_pass(
    ctx: &Arc<Context>,
    a_packed: &super::context::PackedTexture<'_>,
    pass: PlanePass<'_>,
    batch: usize,
    subgroup_size: u32,
    label: &'static str,
) -> Result<Option<WgpuStorage>> {
    let plane_texels = pass.plane.div_ceil(4);
    let per_chunk = images_per_chunk(ctx, plane_texels);
    if per_chunk == 0 {
        return Ok(None);
    }
    let out = WgpuStorage::output(ctx, batch * pass.m * plane_texels * 4, DType::F32, label)?;
    let constants = vec![("HAS_BIAS", 0), ("ACTIVATION", 0), ("PLANES", 1)];
    for first in (0..batch).step_by(per_chunk) {
        let images = per_chunk.min(batch - first);
        let shape = gemm(pass.m, images * plane_texels * 4, pass.k);
        let group = group(&shape, subgroup_size);
        let size = packed_size(shape.n, pass.k, 4 * group, subgroup_size);
        let b_packed = ctx.packed_texture(1, size.0 as u32, size.1 as u32);
        let mut p = pass.params;
        p.first_image = to_u32(first, "image")?;
        p.images = to_u32(images, "images")?;
        p.k = to_u32(pass.k, "GEMM depth")?;
        p.plane_texels = to_u32(plane_texels, "plane texels")?;
        record_pack(
            ctx,
            pass.kernel,
            p,
            pass.source,
            b_packed.view(),
            size,
            false,
        )?;
        let c_offset = first * pass.m * plane_texels;
        let params = matmul_params(&shape, None, plane_texels, c_offset)?;
        let textures = Multiply {
            packed: [a_packed, &b_packed],
            group,
            subgroup_size,
        };
        // No bias: the source is bound in its place and never read.
        let bias = pass.source;
        multiply(
            ctx,
            textures,
            bias,
            &out,
            &shape,
            &params,
            constants.clone(),
        )?;
    }
    narrow_planes(ctx, out, batch * pass.m, pass.plane).map(Some)
}

/// y = act(conv(x, w) + bias), or `None` when the shape does not fit the textures. The
/// product runs with the output pixels as rows (as the plain matmul of the same shape) into
/// [N, OH·OW padded to 4, O], and one strided copy transposes it to NCHW.
pub(crate) fn conv2d(
    ctx: &Arc<Context>,
    (x, w, bias): (&WgpuStorage, &WgpuStorage, Option<&WgpuStorage>),
    activation: Option<UnaryOp>,
    s: &Conv2dShape,
    subgroup_size: u32,
) -> Result<Option<WgpuStorage>> {
    let (o, k) = (s.out_channels, s.patch_len());
    let plane = s.out_height() * s.out_width();
    let plane_texels = plane.div_ceil(4);
    let per_chunk = images_per_chunk(ctx, plane_texels);
    let o_padded = o.next_multiple_of(4);
    let group = group(&gemm(1, o, k), subgroup_size);
    let b_width = packed_size(o, k, 4 * group, subgroup_size).0;
    // rows_to_planes runs one workgroup layer per image and one row per 4 channels.
    let grid = ctx.limits.max_compute_workgroups_per_dimension as usize;
    let fits_grid = s.batch <= grid && o_padded / 4 <= grid;
    let fits_textures = fits_depth(ctx, k, subgroup_size) && per_chunk > 0;
    if !fits_textures || b_width > texture_limit(ctx) || !fits_grid {
        return Ok(None);
    }
    // B(k, o) = w[o, k]: w is K-contiguous.
    let b = Operand {
        role: 1,
        x: o,
        k_contiguous: true,
        tile: 4 * group,
    };
    let b_packed = pack(ctx, w, b, k, subgroup_size)?;
    let rows = s.batch * plane_texels * 4;
    let out = WgpuStorage::output(ctx, rows * o_padded, DType::F32, "conv2d")?;
    let constants = vec![
        ("HAS_BIAS", bias.is_some() as u32),
        ("ACTIVATION", activation.map_or(0, |op| op.code())),
    ];
    let mut p = shape_params(s)?;
    p.k = to_u32(k, "GEMM depth")?;
    p.plane_texels = to_u32(plane_texels, "plane texels")?;
    for first in (0..s.batch).step_by(per_chunk) {
        let images = per_chunk.min(s.batch - first);
        let shape = gemm(images * plane_texels * 4, o, k);
        let a_size = packed_size(shape.m, k, ROWS, subgroup_size);
        let a_packed = ctx.packed_texture(0, a_size.0 as u32, a_size.1 as u32);
        p.first_image = to_u32(first, "image")?;
        p.images = to_u32(images, "images")?;
        let kernel = Kernel::ConvTexturePackPatches;
        record_pack(ctx, kernel, p, x, a_packed.view(), a_size, false)?;
        let c_offset = first * plane_texels * o_padded;
        let params = matmul_params(&shape, activation, o_padded / 4, c_offset)?;
        let textures = Multiply {
            packed: [&a_packed, &b_packed],
            group,
            subgroup_size,
        };
        multiply(
            ctx,
            textures,
            bias.unwrap_or(w),
            &out,
            &shape,
            &params,
            constants.clone(),
        )?;
    }
    // [N, plane padded, O padded] → [N, O, plane].
    let y = WgpuStorage::output(ctx, s.output_len(), DType::F32, "conv2d")?;
    p.x = to_u32(o_padded, "output channels")?;
    ctx.dispatch(
        Kernel::ConvTextureRowsToPlanes,
        divisors(&p),
        bytemuck::bytes_of(&p),
        &[out.binding(), y.binding()],
        [
            plane.div_ceil(64) as u32,
            (o_padded / 4) as u32,
            s.batch as u32,
        ],
    )?;
    Ok(Some(y))
}

fn texture_limit(ctx: &Context) -> usize {
    ctx.limits.max_texture_dimension_2d as usize
}

/// dx = the transposed convolution of dy with w, or `None` when it does not fit the textures.
pub(crate) fn conv2d_backward_input(
    ctx: &Arc<Context>,
    dy: &WgpuStorage,
    w: &WgpuStorage,
    s: &Conv2dShape,
    subgroup_size: u32,
) -> Result<Option<WgpuStorage>> {
    let (m, k) = (s.in_channels, s.out_channels * s.kernel_h * s.kernel_w);
    if !fits_depth(ctx, k, subgroup_size) {
        return Ok(None);
    }
    let params = shape_params(s)?;
    let size = packed_size(m, k, ROWS, subgroup_size);
    let a_packed = ctx.packed_texture(0, size.0 as u32, size.1 as u32);
    let mut p = params;
    p.k = to_u32(k, "GEMM depth")?;
    p.x = to_u32(m, "input channels")?;
    record_pack(
        ctx,
        Kernel::ConvTexturePackWeightsT,
        p,
        w,
        a_packed.view(),
        size,
        true,
    )?;
    let pass = PlanePass {
        kernel: Kernel::ConvTexturePackGradPatches,
        source: dy,
        params,
        m,
        k,
        plane: s.height * s.width,
    };
    plane_pass(
        ctx,
        &a_packed,
        pass,
        s.batch,
        subgroup_size,
        "conv2d_backward_input",
    )
}

/// dw = Σ over the batch and the output pixels of dy · the input taps, or `None` when one
/// image's pixels do not fit a texture's rows. Each chunk of images writes its partial sums
/// to its own slice; the slices are summed with the reduce kernel.
pub(crate) fn conv2d_backward_weight(
    ctx: &Arc<Context>,
    x: &WgpuStorage,
    dy: &WgpuStorage,
    s: &Conv2dShape,
    subgroup_size: u32,
) -> Result<Option<WgpuStorage>> {
    let (m, n) = (s.out_channels, s.patch_len());
    let plane = s.out_height() * s.out_width();
    let limit = ctx.limits.max_texture_dimension_2d as usize;
    let rows = limit / subgroup_size as usize * subgroup_size as usize;
    let per_chunk = rows / plane.max(1);
    let wide = packed_size(n, 1, 4 * WIDEST_GROUP, subgroup_size).0;
    if per_chunk == 0 || wide > limit || packed_size(m, 1, ROWS, subgroup_size).0 > limit {
        return Ok(None);
    }
    let n_texels = n.div_ceil(4);
    let chunks = s.batch.div_ceil(per_chunk);
    let slice = m * n_texels * 4;
    let partial = WgpuStorage::output(ctx, chunks * slice, DType::F32, "conv2d_backward_weight")?;
    let params = shape_params(s)?;
    for chunk in 0..chunks {
        let first = chunk * per_chunk;
        let images = per_chunk.min(s.batch - first);
        let k = images * plane;
        let shape = gemm(m, n, k);
        let group = group(&shape, subgroup_size);
        let mut p = params;
        p.first_image = to_u32(first, "image")?;
        p.images = to_u32(images, "images")?;
        p.k = to_u32(k, "GEMM depth")?;
        let a_size = packed_size(m, k, ROWS, subgroup_size);
        let a_packed = ctx.packed_texture(0, a_size.0 as u32, a_size.1 as u32);
        p.x = to_u32(m, "output channels")?;
        record_pack(
            ctx,
            Kernel::ConvTexturePackGradRows,
            p,
            dy,
            a_packed.view(),
            a_size,
            true,
        )?;
        let b_size = packed_size(n, k, 4 * group, subgroup_size);
        let b_packed = ctx.packed_texture(1, b_size.0 as u32, b_size.1 as u32);
        p.x = to_u32(n, "patch length")?;
        record_pack(
            ctx,
            Kernel::ConvTexturePackPatchRows,
            p,
            x,
            b_packed.view(),
            b_size,
            false,
        )?;
        let params = matmul_params(&shape, None, n_texels, chunk * m * n_texels)?;
        let textures = Multiply {
            packed: [&a_packed, &b_packed],
            group,
            subgroup_size,
        };
        let constants = vec![("HAS_BIAS", 0), ("ACTIVATION", 0)];
        multiply(ctx, textures, dy, &partial, &shape, &params, constants)?;
    }
    let summed = if chunks == 1 {
        partial
    } else {
        let dims = ReduceDims {
            outer: 1,
            len: chunks,
            inner: slice,
        };
        reduce(ctx, ReduceOp::Sum, &partial, dims)?
    };
    narrow_planes(ctx, summed, m, n).map(Some)
}

/// True when a GEMM depth of `k` rows fits a texture (and the texture path can take it).
fn fits_depth(ctx: &Context, k: usize, subgroup_size: u32) -> bool {
    k.next_multiple_of(subgroup_size as usize) <= ctx.limits.max_texture_dimension_2d as usize
}

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![param_layout!(
        PackParams,
        ShaderFile::ConvTexture,
        "PackParams",
        [
            g,
            first_image,
            images,
            k,
            x,
            plane_texels,
            tex_width,
            tex_height
        ]
    )]
}
