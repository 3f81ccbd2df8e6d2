//! The augmentation kernels on the CPU, mirroring augment.wgsl operation for operation: warp
//! (flip, crop, affine), colour jitter and CutMix over f32 images [count, channels · height ·
//! width]. One image per task when the batch is large enough to split.

use crate::PARALLEL_THRESHOLD;
use kiln_tensor::{HostData, ImageBatch, KilnError, Result, Warp};
use rayon::prelude::*;

fn f32_slice<'a>(op: &'static str, what: &str, data: &'a HostData) -> Result<&'a [f32]> {
    match data {
        HostData::F32(v) => Ok(v),
        other => Err(KilnError::InvalidArgument {
            op,
            message: format!("{what} must be f32, got {}", other.dtype()),
        }),
    }
}

/// Runs `per_image(b, out_image)` over every image, in parallel for large batches.
fn for_each_image(
    shape: ImageBatch,
    per_image: impl Fn(usize, &mut [f32]) -> Result<()> + Sync,
) -> Result<HostData> {
    let features = shape.features();
    let mut out = vec![0f32; shape.numel()];
    if features > 0 {
        if shape.numel() >= PARALLEL_THRESHOLD {
            out.par_chunks_mut(features)
                .enumerate()
                .try_for_each(|(b, image)| per_image(b, image))?;
        } else {
            for (b, image) in out.chunks_mut(features).enumerate() {
                per_image(b, image)?;
            }
        }
    }
    Ok(HostData::F32(out))
}

/// An integer coordinate reflected into [0, size) about the edge pixels.
fn reflect_index(i: i32, size: i32) -> i32 {
    if size == 1 {
        return 0;
    }
    let period = 2 * (size - 1);
    let r = i.abs() % period;
    if r >= size {
        period - r
    } else {
        r
    }
}

fn tap(plane: &[f32], shape: ImageBatch, reflect: bool, x: i32, y: i32) -> f32 {
    let (w, h) = (shape.width as i32, shape.height as i32);
    let (x, y) = if reflect {
        (reflect_index(x, w), reflect_index(y, h))
    } else if x < 0 || x >= w || y < 0 || y >= h {
        return 0.0;
    } else {
        (x, y)
    };
    plane[y as usize * shape.width + x as usize]
}

pub fn warp_images(
    images: &HostData,
    shape: ImageBatch,
    matrices: &HostData,
    warp: Warp,
) -> Result<HostData> {
    let op = "warp_images";
    let images = f32_slice(op, "images", images)?;
    let matrices = f32_slice(op, "matrices", matrices)?;
    let plane_len = shape.height * shape.width;
    for_each_image(shape, |b, out| {
        let m = &matrices[b * 6..b * 6 + 6];
        let image = &images[b * shape.features()..(b + 1) * shape.features()];
        for (c, out_plane) in out.chunks_mut(plane_len).enumerate() {
            let plane = &image[c * plane_len..(c + 1) * plane_len];
            for (k, o) in out_plane.iter_mut().enumerate() {
                let x = (k % shape.width) as f32;
                let y = (k / shape.width) as f32;
                let sx = m[0] * x + m[1] * y + m[2];
                let sy = m[3] * x + m[4] * y + m[5];
                *o = if !warp.bilinear {
                    let (ix, iy) = ((sx + 0.5).floor() as i32, (sy + 0.5).floor() as i32);
                    tap(plane, shape, warp.reflect, ix, iy)
                } else {
                    let (x0, y0) = (sx.floor(), sy.floor());
                    let (fx, fy) = (sx - x0, sy - y0);
                    let (ix, iy) = (x0 as i32, y0 as i32);
                    let t = |dx, dy| tap(plane, shape, warp.reflect, ix + dx, iy + dy);
                    let top = t(0, 0) * (1.0 - fx) + t(1, 0) * fx;
                    let bottom = t(0, 1) * (1.0 - fx) + t(1, 1) * fx;
                    top * (1.0 - fy) + bottom * fy
                };
            }
        }
        Ok(())
    })
}

/// Grey-level weights: ITU-R 601 for three channels, the plain mean otherwise.
fn grey_weight(channels: usize, c: usize) -> f32 {
    if channels == 3 {
        [0.299, 0.587, 0.114][c]
    } else {
        1.0 / channels as f32
    }
}

pub fn jitter_images(images: &HostData, shape: ImageBatch, factors: &HostData) -> Result<HostData> {
    let op = "jitter_images";
    let images = f32_slice(op, "images", images)?;
    let factors = f32_slice(op, "factors", factors)?;
    let (channels, plane) = (shape.channels, shape.height * shape.width);
    for_each_image(shape, |b, out| {
        let image = &images[b * shape.features()..(b + 1) * shape.features()];
        let [brightness, contrast, saturation] = [0, 1, 2].map(|i| factors[b * 3 + i]);
        let bright = |c: usize, k: usize| (image[c * plane + k] * brightness).clamp(0.0, 1.0);
        let mut sum = 0f32;
        for k in 0..plane {
            if channels == 3 {
                sum += 0.299 * bright(0, k) + 0.587 * bright(1, k) + 0.114 * bright(2, k);
            } else {
                sum += (0..channels).map(|c| bright(c, k)).sum::<f32>() / channels as f32;
            }
        }
        let mean = sum / plane as f32;
        let mut v = [0f32; 4];
        for k in 0..plane {
            let mut grey = 0f32;
            for (c, v) in v.iter_mut().enumerate().take(channels) {
                *v = ((bright(c, k) - mean) * contrast + mean).clamp(0.0, 1.0);
                grey += grey_weight(channels, c) * *v;
            }
            for (c, v) in v.iter().enumerate().take(channels) {
                out[c * plane + k] = ((v - grey) * saturation + grey).clamp(0.0, 1.0);
            }
        }
        Ok(())
    })
}

pub fn cutmix_images(images: &HostData, shape: ImageBatch, boxes: &HostData) -> Result<HostData> {
    let op = "cutmix_images";
    let images = f32_slice(op, "images", images)?;
    let HostData::U32(boxes) = boxes else {
        return Err(KilnError::InvalidArgument {
            op,
            message: format!("boxes must be u32, got {}", boxes.dtype()),
        });
    };
    let features = shape.features();
    for_each_image(shape, |b, out| {
        let [partner, x0, y0, x1, y1] = [0, 1, 2, 3, 4].map(|i| boxes[b * 5 + i] as usize);
        if partner >= shape.count {
            return Err(KilnError::InvalidArgument {
                op,
                message: format!(
                    "image {b} names partner {partner}, outside the batch of {}",
                    shape.count
                ),
            });
        }
        out.copy_from_slice(&images[b * features..(b + 1) * features]);
        let source = &images[partner * features..(partner + 1) * features];
        for c in 0..shape.channels {
            for y in y0..y1.min(shape.height) {
                let row = c * shape.height * shape.width + y * shape.width;
                let (from, to) = (row + x0.min(shape.width), row + x1.min(shape.width));
                if from < to {
                    out[from..to].copy_from_slice(&source[from..to]);
                }
            }
        }
        Ok(())
    })
}
