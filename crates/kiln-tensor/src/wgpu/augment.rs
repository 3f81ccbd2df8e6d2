//! Dispatch of the augmentation kernels in augment.wgsl: warp (flip, crop, affine), colour
//! jitter and CutMix over a minibatch of images.

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
use crate::ops::{ImageBatch, Warp};
use crate::DType;
use bytemuck::{Pod, Zeroable};
use std::sync::Arc;

/// Mirrors `ImageParams` in augment.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ImageParams {
    count: u32,
    channels: u32,
    height: u32,
    width: u32,
    bilinear: u32,
    reflect: u32,
    _pad: [u32; 2],
}

fn params(shape: ImageBatch, warp: Warp) -> Result<ImageParams> {
    to_u32(shape.numel(), "image batch elements")?;
    Ok(ImageParams {
        count: to_u32(shape.count, "images")?,
        channels: to_u32(shape.channels, "channels")?,
        height: to_u32(shape.height, "height")?,
        width: to_u32(shape.width, "width")?,
        bilinear: warp.bilinear as u32,
        reflect: warp.reflect as u32,
        _pad: [0; 2],
    })
}

fn check_f32(op: &'static str, s: &WgpuStorage) -> Result<()> {
    if s.dtype() != DType::F32 {
        return Err(KilnError::UnsupportedDType {
            op,
            dtype: s.dtype(),
            backend: "wgpu".into(),
            supported: "f32 images".into(),
        });
    }
    Ok(())
}

/// One dispatch of `kernel`: a workgroup per image for jitter, an invocation per output
/// element otherwise.
fn run(
    ctx: &Arc<Context>,
    kernel: Kernel,
    images: &WgpuStorage,
    shape: ImageBatch,
    choices: &WgpuStorage,
    warp: Warp,
) -> Result<WgpuStorage> {
    let op = kernel.entry_point();
    let workgroups = match kernel {
        Kernel::AugmentJitter => shape.count,
        _ => shape.numel().div_ceil(256),
    };
    check_f32(op, images)?;
    let p = params(shape, warp)?;
    let out = WgpuStorage::output(ctx, shape.numel(), DType::F32, op)?;
    if shape.numel() == 0 {
        return Ok(out);
    }
    ctx.dispatch(
        kernel,
        Specialisation::default(),
        bytemuck::bytes_of(&p),
        &[images.binding(), choices.binding(), out.binding()],
        grid(workgroups),
    )?;
    Ok(out)
}

const NO_WARP: Warp = Warp {
    bilinear: false,
    reflect: false,
};

pub(crate) fn warp_images(
    ctx: &Arc<Context>,
    images: &WgpuStorage,
    shape: ImageBatch,
    matrices: &WgpuStorage,
    warp: Warp,
) -> Result<WgpuStorage> {
    run(ctx, Kernel::AugmentWarp, images, shape, matrices, warp)
}

pub(crate) fn jitter_images(
    ctx: &Arc<Context>,
    images: &WgpuStorage,
    shape: ImageBatch,
    factors: &WgpuStorage,
) -> Result<WgpuStorage> {
    run(ctx, Kernel::AugmentJitter, images, shape, factors, NO_WARP)
}

pub(crate) fn cutmix_images(
    ctx: &Arc<Context>,
    images: &WgpuStorage,
    shape: ImageBatch,
    boxes: &WgpuStorage,
) -> Result<WgpuStorage> {
    run(ctx, Kernel::AugmentCutmix, images, shape, boxes, NO_WARP)
}

/// This file's parameter blocks, for the layout test (see `param_layout`).
pub(super) fn param_layouts() -> Vec<super::param_layout::ParamLayout> {
    vec![param_layout!(
        ImageParams,
        ShaderFile::Augment,
        "ImageParams",
        [count, channels, height, width, bilinear, reflect]
    )]
}
