//! Host side of matmul.wgsl and matmul_subgroup.wgsl, and the choice between the kernels: the
//! device's chosen kernel (the texture kernel on CPU-type adapters, falling back to the
//! subgroup kernel where it does not fit), or, when tuned, the fastest measured for the shape
//! class (matmul_tuning.rs). The tiled kernel comes in three tile shapes, each with vec4 loads
//! when every operand allows.

use super::context::Context;
use super::elementwise::to_u32;
use super::matmul_f16;
use super::matmul_texture;
use super::matmul_tuning::Tuner;
use super::param_layout::param_layout;
use super::pipeline_cache::Specialisation;
use super::shaders::Kernel;
use super::shaders::ShaderFile;
use super::storage::WgpuStorage;
use crate::backend::{BackendStorage, Epilogue};
use crate::error::{KilnError, Result};
use crate::ops::MatmulShape;
use crate::wgpu::MatmulKernel;
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
    /// Texels of C's binding before its first element (the texture kernel's PLANES stores).
    pub c_offset: u32,
}

/// Output tile of matmul_subgroup: 32 rows × 256 columns per workgroup.
const SUBGROUP_ROWS: usize = 32;
const SUBGROUP_COLUMNS: usize = 256;

/// Which matmul kernel a device runs, and what the subgroup, texture and tuned choices need.
pub(crate) struct MatmulChoice {
    /// The kernel asked for (never `Auto`).
    pub kernel: MatmulKernel,
    /// The subgroup size the subgroup and texture kernels run with, when they can run.
    pub subgroup_size: Option<u32>,
    /// Measures and remembers the fastest kernel per shape class, when `kernel` is `Tuned`.
    pub tuner: Option<Tuner>,
}

/// One of matmul.wgsl's tile shapes: `side`×`side` invocations per workgroup, each owning
/// `blocks`×`blocks` blocks of 4×4 outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TileShape {
    pub side: u32,
    pub blocks: u32,
}

impl TileShape {
    /// Outputs per workgroup side.
    pub(crate) fn tile(self) -> usize {
        (4 * self.blocks * self.side) as usize
    }

    fn of(kernel: MatmulKernel) -> Option<TileShape> {
        match kernel {
            MatmulKernel::Tiled32 => Some(TileShape { side: 8, blocks: 1 }),
            MatmulKernel::Tiled => Some(TileShape {
                side: 16,
                blocks: 1,
            }),
            MatmulKernel::Tiled128 => Some(TileShape {
                side: 16,
                blocks: 2,
            }),
            _ => None,
        }
    }
}

/// True when each operand's contiguous dimension (and batch stride) is a multiple of 4.
pub(crate) fn vec4_aligned(s: &MatmulShape) -> bool {
    let a_inner = if s.trans_a { s.m } else { s.k };
    let b_inner = if s.trans_b { s.k } else { s.n };
    [a_inner, b_inner, s.batch_stride_a, s.batch_stride_b]
        .iter()
        .all(|d| d.is_multiple_of(4))
}

/// The f32 product's operands, bias, shape and pipeline settings, as every kernel takes them.
pub(crate) struct Product<'a> {
    pub a: &'a WgpuStorage,
    pub b: &'a WgpuStorage,
    pub bias: &'a WgpuStorage,
    pub shape: &'a MatmulShape,
    pub params: MatmulParams,
    pub constants: Vec<(&'static str, u32)>,
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
    let product = Product {
        a,
        b,
        // Without a bias, bind B in its place: the kernel never reads it.
        bias: epilogue.bias.unwrap_or(b),
        shape: s,
        params: params(s, &epilogue)?,
        constants: constants(s, &epilogue),
    };
    let kernel = match &ctx.matmul.tuner {
        Some(tuner) => tuner.choose(ctx, &product)?,
        None => ctx.matmul.kernel,
    };
    run(ctx, &product, kernel)
}

/// Records `kernel` computing the product into a new output. The texture kernel runs only
/// where it fits (else the subgroup kernel); the subgroup ones need a subgroup size.
pub(crate) fn run(
    ctx: &Arc<Context>,
    product: &Product<'_>,
    kernel: MatmulKernel,
) -> Result<WgpuStorage> {
    let Product {
        a,
        b,
        bias,
        shape: s,
        ..
    } = *product;
    let mut constants = product.constants.clone();
    let subgroup_size = ctx.matmul.subgroup_size;
    if let (MatmulKernel::Texture, Some(subgroup_size)) = (kernel, subgroup_size) {
        if matmul_texture::fits(ctx, s, subgroup_size) {
            let p = &product.params;
            return matmul_texture::matmul(ctx, a, b, bias, s, p, constants, subgroup_size);
        }
    }
    let out = WgpuStorage::output(ctx, s.batch * s.m * s.n, DType::F32, "matmul")?;
    let batch = s.batch as u32;
    let (kernel, workgroups) = match (TileShape::of(kernel), subgroup_size) {
        (Some(tile), _) => {
            constants.push(("SIDE", tile.side));
            constants.push(("BLOCKS", tile.blocks));
            let kernel = if vec4_aligned(s) {
                Kernel::MatmulTiledVec4
            } else {
                Kernel::MatmulTiled
            };
            (kernel, tiled_grid(s, tile.tile()))
        }
        (None, Some(subgroup_size)) => {
            constants.push(("SUBGROUP_SIZE", subgroup_size));
            let x = s.n.div_ceil(SUBGROUP_COLUMNS) as u32;
            let kernel = if s.n.is_multiple_of(4) {
                Kernel::MatmulSubgroupVec4
            } else {
                Kernel::MatmulSubgroup
            };
            (kernel, [x, s.m.div_ceil(SUBGROUP_ROWS) as u32, batch])
        }
        (None, None) => {
            return Err(KilnError::Device(format!(
                "the {kernel:?} matmul needs subgroups of a fixed size, which this device was not opened with"
            )))
        }
    };
    ctx.dispatch(
        kernel,
        Specialisation(constants),
        bytemuck::bytes_of(&product.params),
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
        c_offset: 0,
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

/// Workgroups of a tiled kernel with `tile`×`tile` outputs per workgroup.
pub(crate) fn tiled_grid(s: &MatmulShape, tile: usize) -> [u32; 3] {
    [
        s.n.div_ceil(tile) as u32,
        s.m.div_ceil(tile) as u32,
        s.batch as u32,
    ]
}

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![param_layout!(
        MatmulParams,
        ShaderFile::Matmul,
        "MatmulParams",
        [
            m,
            n,
            k,
            alpha,
            batch_stride_a,
            batch_stride_b,
            c_texels,
            c_offset
        ]
    )]
}
