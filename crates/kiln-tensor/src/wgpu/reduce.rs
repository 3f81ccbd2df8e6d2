//! Host side of reduce.wgsl: axis reductions and the two-pass global sum.

use super::context::Context;
use super::elementwise::to_u32;
use super::grid;
use super::param_layout::param_layout;
use super::pipeline_cache::Specialisation;
use super::shaders::Kernel;
use super::shaders::ShaderFile;
use super::storage::WgpuStorage;
use crate::backend::{BackendStorage, ReduceDims};
use crate::error::{KilnError, Result};
use crate::ops::ReduceOp;
use crate::DType;
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

/// Mirrors `ReduceParams` in reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceParams {
    outer: u32,
    len: u32,
    inner: u32,
    numel: u32,
}

/// Workgroups of the global sum's first pass: enough to fill a GPU, few enough that the
/// second pass is one short row.
const SUM_PARTIALS: usize = 1024;

/// Sums of at most this many elements skip the partial pass: one row reduction does it all.
const SINGLE_PASS_SUM: usize = 4096;

/// Rows of at most this many elements (inner size 1) reduce with one invocation per row.
const NARROW_ROW: usize = 64;

pub(crate) fn reduce(
    ctx: &Arc<Context>,
    op: ReduceOp,
    x: &WgpuStorage,
    dims: ReduceDims,
) -> Result<WgpuStorage> {
    if x.dtype() != DType::F32 {
        return Err(KilnError::UnsupportedDType {
            op: op.name(),
            dtype: x.dtype(),
            backend: "wgpu".into(),
            supported: "f32".into(),
        });
    }
    let p = ReduceParams {
        outer: to_u32(dims.outer, "outer size")?,
        len: to_u32(dims.len, "reduced length")?,
        inner: to_u32(dims.inner, "inner size")?,
        numel: to_u32(dims.outer * dims.len * dims.inner, "element count")?,
    };
    let out_dtype = if op == ReduceOp::ArgMax {
        DType::U32
    } else {
        DType::F32
    };
    let out = WgpuStorage::output(ctx, dims.outer * dims.inner, out_dtype, op.name())?;
    let constants = Specialisation(vec![("OP", op.code())]);
    if dims.inner == 1 && dims.len <= NARROW_ROW {
        ctx.dispatch(
            Kernel::ReduceRowsNarrow,
            constants,
            bytemuck::bytes_of(&p),
            &[x.binding(), out.binding()],
            grid(dims.outer.div_ceil(64)),
        )?;
    } else if dims.inner == 1 {
        ctx.dispatch(
            Kernel::ReduceRows,
            constants,
            bytemuck::bytes_of(&p),
            &[x.binding(), out.binding()],
            grid(dims.outer),
        )?;
    } else {
        let groups = dims.outer * dims.inner.div_ceil(64);
        ctx.dispatch(
            Kernel::ReduceColumns,
            constants,
            bytemuck::bytes_of(&p),
            &[x.binding(), out.binding()],
            grid(groups),
        )?;
    }
    Ok(out)
}

pub(crate) fn sum_all(ctx: &Arc<Context>, x: &WgpuStorage) -> Result<WgpuStorage> {
    let n = x.len();
    let whole = |len| ReduceDims {
        outer: 1,
        len,
        inner: 1,
    };
    if n <= SINGLE_PASS_SUM {
        return reduce(ctx, ReduceOp::Sum, x, whole(n));
    }
    let partials = n.div_ceil(256).clamp(1, SUM_PARTIALS);
    let p = ReduceParams {
        outer: 1,
        len: 0,
        inner: 1,
        numel: to_u32(n, "element count")?,
    };
    let partial = WgpuStorage::output(ctx, partials, DType::F32, "sum_all")?;
    ctx.dispatch(
        Kernel::ReduceSumPartial,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[x.binding(), partial.binding()],
        [partials as u32, 1, 1],
    )?;
    reduce(ctx, ReduceOp::Sum, &partial, whole(partials))
}

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![param_layout!(
        ReduceParams,
        ShaderFile::Reduce,
        "ReduceParams",
        [outer, len, inner, numel]
    )]
}
