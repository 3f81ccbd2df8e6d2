//! Data augmentation of training minibatches on the device. The random choices (a few numbers
//! per image and transform) are drawn on the host once per epoch from (seed, epoch), uploaded
//! once, and sliced per minibatch; the images themselves never leave the device. Transforms
//! run in the order crop → flip → affine → jitter → CutMix on images scaled to [0, 1], before
//! the fitted normalisation.

use crate::cowmix::{cowmix_choices, CowMixChoices, DeviceCowMix};
use crate::error::{DataError, Result};
use kiln_tensor::{Backend, ImageShape, Tensor, Warp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

/// A minibatch transform, by the name `--augment` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Transform {
    /// Horizontal flip with probability `flip_p`.
    Flip,
    /// Pad by `crop_padding`, crop back to the original size at a random offset.
    Crop,
    /// Brightness, contrast and saturation factors.
    Jitter,
    /// A box from a partner image pasted in; the labels mixed by area.
    Cutmix,
    /// Rotation, translation, scale and shear, bilinear.
    Affine,
    /// CowMix: a partner image mixed in through a CowMask (Gaussian-smoothed noise thresholded
    /// to a random proportion); the labels mixed by the mask's mean.
    Cowmix,
}

impl Transform {
    pub const ALL: [Transform; 6] = [
        Transform::Flip,
        Transform::Crop,
        Transform::Jitter,
        Transform::Cutmix,
        Transform::Affine,
        Transform::Cowmix,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Transform::Flip => "flip",
            Transform::Crop => "crop",
            Transform::Jitter => "jitter",
            Transform::Cutmix => "cutmix",
            Transform::Affine => "affine",
            Transform::Cowmix => "cowmix",
        }
    }
}

impl std::str::FromStr for Transform {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Transform::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Transform::ALL.iter().map(|t| t.name()).collect();
                format!("unknown transform `{s}`; allowed: {}", names.join(", "))
            })
    }
}

impl std::fmt::Display for Transform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the random crop pads with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum PaddingMode {
    /// Zeros (black).
    #[default]
    Zero,
    /// The image mirrored at its edge (the edge pixel not repeated).
    Reflect,
}

/// Which transforms run, and their parameters (defaults follow torchvision's usual choices).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Augmentation {
    /// Enabled transforms (applied in a fixed order whatever the order here).
    pub transforms: Vec<Transform>,
    /// Probability of a horizontal flip.
    pub flip_p: f32,
    /// Random crop: the image padded by this many pixels on each side, then cropped back.
    pub crop_padding: usize,
    pub crop_padding_mode: PaddingMode,
    /// Colour jitter factors drawn from [1 − x, 1 + x].
    pub jitter_brightness: f32,
    pub jitter_contrast: f32,
    pub jitter_saturation: f32,
    /// Probability that an image is jittered at all.
    pub jitter_p: f32,
    /// CutMix: λ ~ Beta(α, α) and the box covers 1 − λ of the image.
    pub cutmix_alpha: f32,
    pub cutmix_p: f32,
    /// Random affine: rotation in [−degrees, degrees], translation up to this fraction of the
    /// side, scale in [1 − s, 1 + s], horizontal shear in [−shear, shear] degrees.
    pub affine_degrees: f32,
    pub affine_translate: f32,
    pub affine_scale: f32,
    pub affine_shear: f32,
    pub affine_p: f32,
    /// CowMix: the Gaussian smoothing's σ in pixels, drawn log-uniformly from this range per
    /// image; the proportion taken from the partner, uniform in this range per image; the
    /// probability that an image is mixed at all.
    pub cowmix_sigma: (f32, f32),
    pub cowmix_proportion: (f32, f32),
    pub cowmix_p: f32,
}

impl Default for Augmentation {
    fn default() -> Self {
        Augmentation {
            transforms: Vec::new(),
            flip_p: 0.5,
            crop_padding: 2,
            crop_padding_mode: PaddingMode::Zero,
            jitter_brightness: 0.2,
            jitter_contrast: 0.2,
            jitter_saturation: 0.2,
            jitter_p: 1.0,
            cutmix_alpha: 1.0,
            cutmix_p: 0.5,
            affine_degrees: 10.0,
            affine_translate: 0.1,
            affine_scale: 0.1,
            affine_shear: 5.0,
            affine_p: 1.0,
            cowmix_sigma: (2.0, 6.0),
            cowmix_proportion: (0.2, 0.5),
            cowmix_p: 0.5,
        }
    }
}

impl Augmentation {
    pub fn enabled(&self, transform: Transform) -> bool {
        self.transforms.contains(&transform)
    }

    pub fn is_active(&self) -> bool {
        !self.transforms.is_empty()
    }

    /// Checks every name and parameter; messages name the option and the allowed values.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DataError::Invalid(m));
        for (flag, p) in [
            ("--flip-p", self.flip_p),
            ("--jitter-p", self.jitter_p),
            ("--cutmix-p", self.cutmix_p),
            ("--affine-p", self.affine_p),
            ("--cowmix-p", self.cowmix_p),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{flag} is a probability: got {p}, allowed [0, 1]"));
            }
        }
        for (flag, v) in [
            ("--jitter-brightness", self.jitter_brightness),
            ("--jitter-contrast", self.jitter_contrast),
            ("--jitter-saturation", self.jitter_saturation),
            ("--affine-scale", self.affine_scale),
        ] {
            if !(0.0..1.0).contains(&v) {
                return bad(format!("{flag} must lie in [0, 1), got {v}"));
            }
        }
        if !(0.0..=180.0).contains(&self.affine_degrees) {
            return bad(format!(
                "--affine-degrees must lie in [0, 180], got {}",
                self.affine_degrees
            ));
        }
        if !(0.0..=1.0).contains(&self.affine_translate) {
            return bad(format!(
                "--affine-translate is a fraction of the side in [0, 1], got {}",
                self.affine_translate
            ));
        }
        if !(0.0..90.0).contains(&self.affine_shear) {
            return bad(format!(
                "--affine-shear must lie in [0, 90) degrees, got {}",
                self.affine_shear
            ));
        }
        let (lo, hi) = self.cowmix_sigma;
        if !(lo > 0.0 && lo <= hi && hi <= 32.0) {
            return bad(format!(
                "--cowmix-sigma is LOW,HIGH pixels with 0 < LOW ≤ HIGH ≤ 32, got {lo},{hi}"
            ));
        }
        let (lo, hi) = self.cowmix_proportion;
        if !(0.0 < lo && lo <= hi && hi < 1.0) {
            return bad(format!(
                "--cowmix-proportion is LOW,HIGH with 0 < LOW ≤ HIGH < 1, got {lo},{hi}"
            ));
        }
        if self.enabled(Transform::Cowmix) && self.enabled(Transform::Cutmix) {
            return bad(
                "--augment takes cutmix or cowmix, not both: each mixes the labels with its own \
                 partner"
                    .into(),
            );
        }
        if !(self.cutmix_alpha > 0.0 && self.cutmix_alpha.is_finite()) {
            return bad(format!(
                "--cutmix-alpha must be positive, got {}",
                self.cutmix_alpha
            ));
        }
        Ok(())
    }

    /// Checks the parameters that depend on the images: the crop padding and jitter's
    /// channel count.
    pub fn check_image(&self, image: ImageShape) -> Result<()> {
        let bad = |m: String| Err(DataError::Invalid(m));
        let side = image.height.min(image.width);
        if self.enabled(Transform::Crop) && self.crop_padding >= side {
            return bad(format!(
                "--crop-padding {} must be smaller than the image side ({side})",
                self.crop_padding
            ));
        }
        if self.enabled(Transform::Jitter) && !(1..=4).contains(&image.channels) {
            return bad(format!(
                "colour jitter takes images of 1 to 4 channels, these have {}",
                image.channels
            ));
        }
        Ok(())
    }
}

/// One epoch's random choices, on the host, one row per position in the epoch's order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpochChoices {
    /// Output-to-source maps [n, 6] for each geometric transform that is enabled.
    pub crop: Option<Vec<f32>>,
    pub flip: Option<Vec<f32>>,
    pub affine: Option<Vec<f32>>,
    /// (brightness, contrast, saturation) [n, 3].
    pub jitter: Option<Vec<f32>>,
    /// (partner within the batch, x0, y0, x1, y1) [n, 5].
    pub cutmix: Option<Vec<u32>>,
    pub cowmix: Option<CowMixChoices>,
}

const IDENTITY: [f32; 6] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];

/// An independent generator per (seed, epoch, transform).
pub(crate) fn rng(seed: u64, epoch: u64, stream: u64) -> StdRng {
    StdRng::seed_from_u64(
        seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

/// The inverse (output → source) of the affine map about the image centre that rotates by
/// `angle`, shears horizontally by `shear` (radians), scales by `scale` and then translates by
/// (tx, ty) pixels, as torchvision's RandomAffine composes them.
pub fn affine_inverse(
    image: ImageShape,
    angle: f64,
    shear: f64,
    scale: f64,
    tx: f64,
    ty: f64,
) -> [f32; 6] {
    let (cx, cy) = (
        (image.width as f64 - 1.0) / 2.0,
        (image.height as f64 - 1.0) / 2.0,
    );
    // Forward linear part: rotation · shear · scale.
    let (s, c) = angle.sin_cos();
    let k = shear.tan();
    let a = [
        [c * scale, (c * k - s) * scale],
        [s * scale, (s * k + c) * scale],
    ];
    let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
    let inv = [
        [a[1][1] / det, -a[0][1] / det],
        [-a[1][0] / det, a[0][0] / det],
    ];
    // dst = A (src − c) + c + t  ⇒  src = A⁻¹ (dst − c − t) + c.
    let (ox, oy) = (-cx - tx, -cy - ty);
    [
        inv[0][0] as f32,
        inv[0][1] as f32,
        (inv[0][0] * ox + inv[0][1] * oy + cx) as f32,
        inv[1][0] as f32,
        inv[1][1] as f32,
        (inv[1][0] * ox + inv[1][1] * oy + cy) as f32,
    ]
}

impl EpochChoices {
    /// Draws the choices for `n` images in minibatches of `batch_size` (CutMix partners stay
    /// within a minibatch), a function of (seed, epoch) only.
    pub fn draw(
        aug: &Augmentation,
        image: ImageShape,
        n: usize,
        batch_size: usize,
        seed: u64,
        epoch: u64,
    ) -> EpochChoices {
        let mut choices = EpochChoices::default();
        let (w, h) = (image.width as f32, image.height as f32);
        if aug.enabled(Transform::Crop) {
            let mut r = rng(seed, epoch, 1);
            let pad = aug.crop_padding as i64;
            let mut v = Vec::with_capacity(n * 6);
            for _ in 0..n {
                let dx = r.random_range(-pad..=pad) as f32;
                let dy = r.random_range(-pad..=pad) as f32;
                v.extend_from_slice(&[1.0, 0.0, dx, 0.0, 1.0, dy]);
            }
            choices.crop = Some(v);
        }
        if aug.enabled(Transform::Flip) {
            let mut r = rng(seed, epoch, 2);
            let mut v = Vec::with_capacity(n * 6);
            for _ in 0..n {
                if r.random::<f32>() < aug.flip_p {
                    v.extend_from_slice(&[-1.0, 0.0, w - 1.0, 0.0, 1.0, 0.0]);
                } else {
                    v.extend_from_slice(&IDENTITY);
                }
            }
            choices.flip = Some(v);
        }
        if aug.enabled(Transform::Affine) {
            let mut r = rng(seed, epoch, 3);
            let mut v = Vec::with_capacity(n * 6);
            let sym = |r: &mut StdRng, x: f64| if x > 0.0 { r.random_range(-x..=x) } else { 0.0 };
            for _ in 0..n {
                let apply = r.random::<f32>() < aug.affine_p;
                let angle = sym(&mut r, aug.affine_degrees as f64).to_radians();
                let shear = sym(&mut r, aug.affine_shear as f64).to_radians();
                let scale = 1.0 + sym(&mut r, aug.affine_scale as f64);
                let tx = sym(&mut r, (aug.affine_translate * w) as f64).round();
                let ty = sym(&mut r, (aug.affine_translate * h) as f64).round();
                if apply {
                    v.extend_from_slice(&affine_inverse(image, angle, shear, scale, tx, ty));
                } else {
                    v.extend_from_slice(&IDENTITY);
                }
            }
            choices.affine = Some(v);
        }
        if aug.enabled(Transform::Jitter) {
            let mut r = rng(seed, epoch, 4);
            let mut v = Vec::with_capacity(n * 3);
            let factor = |r: &mut StdRng, x: f32| {
                if x > 0.0 {
                    r.random_range(1.0 - x..=1.0 + x)
                } else {
                    1.0
                }
            };
            for _ in 0..n {
                let apply = r.random::<f32>() < aug.jitter_p;
                let f = [
                    factor(&mut r, aug.jitter_brightness),
                    factor(&mut r, aug.jitter_contrast),
                    factor(&mut r, aug.jitter_saturation),
                ];
                v.extend_from_slice(if apply { &f } else { &[1.0; 3] });
            }
            choices.jitter = Some(v);
        }
        if aug.enabled(Transform::Cutmix) {
            let mut r = rng(seed, epoch, 5);
            let beta = Beta::new(aug.cutmix_alpha as f64, aug.cutmix_alpha as f64)
                .expect("alpha was validated positive");
            let mut v = Vec::with_capacity(n * 5);
            let batch_size = batch_size.max(1);
            for p in 0..n {
                let start = p / batch_size * batch_size;
                let len = batch_size.min(n - start);
                let own = (p - start) as u32;
                let apply = r.random::<f32>() < aug.cutmix_p;
                let lambda = beta.sample(&mut r);
                let cx = r.random_range(0..image.width) as i64;
                let cy = r.random_range(0..image.height) as i64;
                let offset = if len > 1 { r.random_range(1..len) } else { 0 };
                if !apply || len < 2 {
                    v.extend_from_slice(&[own, 0, 0, 0, 0]);
                    continue;
                }
                let ratio = (1.0 - lambda).sqrt();
                let cut_w = (image.width as f64 * ratio) as i64;
                let cut_h = (image.height as f64 * ratio) as i64;
                let clip = |v: i64, hi: usize| v.clamp(0, hi as i64) as u32;
                let partner = ((p - start + offset) % len) as u32;
                v.extend_from_slice(&[
                    partner,
                    clip(cx - cut_w / 2, image.width),
                    clip(cy - cut_h / 2, image.height),
                    clip(cx + cut_w / 2, image.width),
                    clip(cy + cut_h / 2, image.height),
                ]);
            }
            choices.cutmix = Some(v);
        }
        if aug.enabled(Transform::Cowmix) {
            choices.cowmix = Some(cowmix_choices(aug, n, batch_size, seed, epoch));
        }
        choices
    }
}

/// The CutMix label mixing of a minibatch: targets = (1 − w) · onehot(y) + w · onehot(y[partner]).
pub struct LabelMix<B: Backend> {
    /// u32 [len]: each image's partner within the batch.
    pub partner: Tensor<B>,
    /// f32 [len, 1]: the fraction of the image taken from the partner (the box's area).
    pub weight: Tensor<B>,
}

/// An epoch's choices on the device, sliced per minibatch by position in the epoch order.
pub struct DeviceAugmentation<B: Backend> {
    image: ImageShape,
    reflect: bool,
    crop: Option<Tensor<B>>,
    flip: Option<Tensor<B>>,
    affine: Option<Tensor<B>>,
    jitter: Option<Tensor<B>>,
    cutmix: Option<Tensor<B>>,
    partner: Option<Tensor<B>>,
    weight: Option<Tensor<B>>,
    cowmix: Option<DeviceCowMix<B>>,
}

impl<B: Backend> DeviceAugmentation<B> {
    /// Uploads one epoch's choices (one upload per enabled transform).
    pub fn upload(
        aug: &Augmentation,
        choices: &EpochChoices,
        image: ImageShape,
        backend: &B,
    ) -> Result<Self> {
        let maps = |v: &Option<Vec<f32>>, cols: usize| -> Result<Option<Tensor<B>>> {
            v.as_ref()
                .map(|v| Tensor::from_slice(v, [v.len() / cols, cols], backend))
                .transpose()
                .map_err(DataError::from)
        };
        let (mut cutmix, mut partner, mut weight) = (None, None, None);
        if let Some(boxes) = &choices.cutmix {
            let n = boxes.len() / 5;
            let area = (image.width * image.height).max(1) as f32;
            let w: Vec<f32> = boxes
                .chunks(5)
                .map(|b| (b[3] - b[1]) as f32 * (b[4] - b[2]) as f32 / area)
                .collect();
            let p: Vec<u32> = boxes.chunks(5).map(|b| b[0]).collect();
            cutmix = Some(Tensor::from_slice(boxes, [n, 5], backend)?);
            partner = Some(Tensor::from_vec(p, [n], backend)?);
            weight = Some(Tensor::from_vec(w, [n, 1], backend)?);
        }
        Ok(DeviceAugmentation {
            image,
            reflect: aug.crop_padding_mode == PaddingMode::Reflect,
            crop: maps(&choices.crop, 6)?,
            flip: maps(&choices.flip, 6)?,
            affine: maps(&choices.affine, 6)?,
            jitter: maps(&choices.jitter, 3)?,
            cutmix,
            partner,
            weight,
            cowmix: choices
                .cowmix
                .as_ref()
                .map(|c| DeviceCowMix::upload(c, image, backend))
                .transpose()?,
        })
    }

    /// Augments the minibatch `x` (f32 [len, features] in [0, 1]) at epoch positions
    /// [start, start + len); returns the images and, with CutMix, the label mixing.
    pub fn apply(
        &self,
        x: &Tensor<B>,
        start: usize,
        len: usize,
    ) -> Result<(Tensor<B>, Option<LabelMix<B>>)> {
        let slice = |t: &Tensor<B>| t.narrow(0, start, len);
        let mut x = x.clone();
        let nearest = |reflect| Warp {
            bilinear: false,
            reflect,
        };
        if let Some(m) = &self.crop {
            x = x.warp_images(self.image, &slice(m)?, nearest(self.reflect))?;
        }
        if let Some(m) = &self.flip {
            x = x.warp_images(self.image, &slice(m)?, nearest(false))?;
        }
        if let Some(m) = &self.affine {
            let bilinear = Warp {
                bilinear: true,
                reflect: false,
            };
            x = x.warp_images(self.image, &slice(m)?, bilinear)?;
        }
        if let Some(f) = &self.jitter {
            x = x.jitter_images(self.image, &slice(f)?)?;
        }
        let mut mix = None;
        if let (Some(b), Some(p), Some(w)) = (&self.cutmix, &self.partner, &self.weight) {
            x = x.cutmix_images(self.image, &slice(b)?)?;
            mix = Some(LabelMix {
                partner: slice(p)?.contiguous()?,
                weight: slice(w)?,
            });
        }
        if let Some(c) = &self.cowmix {
            let partner = slice(&c.partner)?.contiguous()?;
            let (mixed, weight) = c.mix(&x, self.image, &partner, start, len)?;
            x = mixed;
            mix = Some(LabelMix { partner, weight });
        }
        Ok((x, mix))
    }
}
