//! `--save-augmented N`: a PNG grid of N training images exactly as the first epoch's
//! augmentation produces them on the device, so a person can see what the model sees.

use crate::error::{write_atomically, Result, TrainError};
use kiln_data::{
    shuffled_indices, Augmentation, Dataset, DeviceAugmentation, DeviceDataset, EpochChoices,
    Normalization, Preprocessing,
};
use kiln_tensor::{Backend, ImageShape};
use std::path::Path;

/// Pixels between tiles.
const GAP: usize = 2;

/// Writes the first `n` images of epoch 1's order after augmentation to `path` (PNG, RGB, tiles
/// enlarged to at least 64 pixels a side).
pub fn save_augmented<B: Backend>(
    path: &Path,
    train: &Dataset,
    augmentation: &Augmentation,
    n: usize,
    batch_size: usize,
    seed: u64,
    backend: &B,
) -> Result<()> {
    if n == 0 {
        return Err(TrainError::flag("--save-augmented", 0, "an integer ≥ 1"));
    }
    let n = n.min(train.len());
    let image = train.image_shape();
    augmentation.check_image(image)?;
    // Only the N images shown go to the device, in epoch 1's order.
    let order = shuffled_indices(train.len(), seed, 1);
    let shown: Vec<usize> = order[..n].iter().map(|&i| i as usize).collect();
    let sample = train.subset(&shown);
    let set = DeviceDataset::upload(
        &sample,
        &Normalization::fit(&sample, Preprocessing::PerChannel),
        backend,
        None,
    )?;
    let (unit, _) = set.raw_batch(set.in_order())?;
    let choices = EpochChoices::draw(augmentation, image, n, batch_size.min(n), seed, 1);
    let device = DeviceAugmentation::upload(augmentation, &choices, image, backend)?;
    let (augmented, _) = device.apply(&unit, 0, n)?;
    let pixels = augmented.to_vec::<f32>()?;
    let png = encode_grid(&pixels, n, image)?;
    write_atomically(path, &png)
}

/// Tiles `n` images (f32 in [0, 1], channel-major) into one RGB PNG.
fn encode_grid(pixels: &[f32], n: usize, image: ImageShape) -> Result<Vec<u8>> {
    let zoom = 64usize.div_ceil(image.height.max(image.width)).max(1);
    let (tile_w, tile_h) = (image.width * zoom, image.height * zoom);
    let columns = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(columns);
    let width = columns * (tile_w + GAP) + GAP;
    let height = rows * (tile_h + GAP) + GAP;
    let mut rgb = vec![255u8; width * height * 3];
    let plane = image.height * image.width;
    for i in 0..n {
        let img = &pixels[i * image.features()..(i + 1) * image.features()];
        let (ox, oy) = (
            GAP + (i % columns) * (tile_w + GAP),
            GAP + (i / columns) * (tile_h + GAP),
        );
        for y in 0..tile_h {
            for x in 0..tile_w {
                let k = (y / zoom) * image.width + x / zoom;
                let channel = |c: usize| {
                    let c = c.min(image.channels - 1);
                    (img[c * plane + k].clamp(0.0, 1.0) * 255.0).round() as u8
                };
                let at = ((oy + y) * width + ox + x) * 3;
                rgb[at..at + 3].copy_from_slice(&[channel(0), channel(1), channel(2)]);
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width as u32, height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let failed = |e: png::EncodingError| TrainError::file("augmented.png", e);
        let mut writer = encoder.write_header().map_err(failed)?;
        writer.write_image_data(&rgb).map_err(failed)?;
    }
    Ok(out)
}
