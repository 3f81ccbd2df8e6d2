//! CowMix (French et al.): a partner image mixed in through a CowMask, Gaussian-smoothed noise
//! thresholded so that a drawn share of the pixels comes from the partner; the labels are mixed
//! by the mask's mean. The epoch's choices (partners, thresholds, each mask's smoothing σ, the
//! noise seed) are drawn on the host and uploaded once; each batch's masks are made on the
//! device from counter-based noise and two batched matmuls (the Gaussian is separable), the
//! same on every backend.

use crate::augment::{rng, Augmentation};
use crate::error::Result;
use kiln_tensor::{Backend, ImageShape, Tensor};
use rand::Rng;

/// An epoch's CowMix choices: each image's partner within its batch, the z-score of its mask
/// threshold (Φ⁻¹(1 − proportion)), whether it is mixed and its mask's smoothing σ in pixels,
/// and the seed of the noise.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CowMixChoices {
    pub partners: Vec<u32>,
    pub z: Vec<f32>,
    pub apply: Vec<f32>,
    pub sigma: Vec<f32>,
    pub noise_seed: u64,
}

/// Φ⁻¹(p), the standard normal quantile (Acklam's rational approximation, relative error
/// below 1.2·10⁻⁹), for p in (0, 1).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The radius of a Gaussian of standard deviation `sigma` cut at 2σ: ⌈2σ⌉ pixels.
fn radius(sigma: f64) -> f64 {
    (2.0 * sigma).ceil()
}

/// The sum of the 1-D Gaussian's taps e^(−t²/2σ²) for t in [−r, r]: the normaliser of the
/// kernel, so that the 2-D kernel (the outer product of two) sums to 1.
fn taps_sum(sigma: f64) -> f64 {
    let r = radius(sigma) as i64;
    (-r..=r)
        .map(|t| (-((t * t) as f64) / (2.0 * sigma * sigma)).exp())
        .sum()
}

/// CowMix's epoch: partners as CutMix draws them (another image of the same batch), each
/// image's threshold for a proportion uniform in the range and its σ log-uniform in its range.
pub(crate) fn cowmix_choices(
    aug: &Augmentation,
    n: usize,
    batch_size: usize,
    seed: u64,
    epoch: u64,
) -> CowMixChoices {
    let mut r = rng(seed, epoch, 6);
    let batch_size = batch_size.max(1);
    let (s_lo, s_hi) = (aug.cowmix_sigma.0 as f64, aug.cowmix_sigma.1 as f64);
    let mut c = CowMixChoices {
        noise_seed: r.random(),
        ..CowMixChoices::default()
    };
    let (p_lo, p_hi) = aug.cowmix_proportion;
    for p in 0..n {
        let start = p / batch_size * batch_size;
        let len = batch_size.min(n - start);
        let offset = if len > 1 { r.random_range(1..len) } else { 0 };
        let proportion = if p_hi > p_lo {
            r.random_range(p_lo..=p_hi)
        } else {
            p_lo
        };
        let sigma = if s_hi > s_lo {
            r.random_range(s_lo.ln()..=s_hi.ln()).exp()
        } else {
            s_lo
        };
        let apply = len > 1 && r.random::<f32>() < aug.cowmix_p;
        c.partners.push(((p - start + offset) % len.max(1)) as u32);
        c.z.push(normal_quantile(1.0 - proportion as f64) as f32);
        c.apply.push(if apply { 1.0 } else { 0.0 });
        c.sigma.push(sigma as f32);
    }
    c
}

/// CowMix's epoch on the device: partners u32 [n]; the thresholds' z and the apply flags f32
/// [n, 1]; per mask, −1/2σ², the squared radius plus ½ (the taps kept are those with
/// t² < r² + ½) and 1/Σtaps, each [n, 1, 1]; the squared offsets (a − b)² between the rows
/// and between the columns, [1, H, H] and [1, W, W]; and the noise's seed.
pub(crate) struct DeviceCowMix<B: Backend> {
    pub(crate) partner: Tensor<B>,
    z: Tensor<B>,
    apply: Tensor<B>,
    exponent: Tensor<B>,
    reach: Tensor<B>,
    scale: Tensor<B>,
    row_offsets: Tensor<B>,
    column_offsets: Tensor<B>,
    noise_seed: u64,
}

/// (a − b)² for a, b in [0, side): [1, side, side].
fn squared_offsets<B: Backend>(side: usize, backend: &B) -> Result<Tensor<B>> {
    let squares: Vec<f32> = (0..side * side)
        .map(|i| {
            let d = (i / side) as f32 - (i % side) as f32;
            d * d
        })
        .collect();
    Ok(Tensor::from_slice(&squares, [1, side, side], backend)?)
}

impl<B: Backend> DeviceCowMix<B> {
    /// Uploads an epoch's choices for images of shape `image`.
    pub(crate) fn upload(c: &CowMixChoices, image: ImageShape, backend: &B) -> Result<Self> {
        let n = c.partners.len();
        let per_mask = |f: &dyn Fn(f64) -> f64| -> Result<Tensor<B>> {
            let v: Vec<f32> = c.sigma.iter().map(|&s| f(s as f64) as f32).collect();
            Ok(Tensor::from_slice(&v, [n, 1, 1], backend)?)
        };
        Ok(DeviceCowMix {
            partner: Tensor::from_slice(&c.partners, [n], backend)?,
            z: Tensor::from_slice(&c.z, [n, 1], backend)?,
            apply: Tensor::from_slice(&c.apply, [n, 1], backend)?,
            exponent: per_mask(&|s| -1.0 / (2.0 * s * s))?,
            reach: per_mask(&|s| radius(s) * radius(s) + 0.5)?,
            scale: per_mask(&|s| 1.0 / taps_sum(s))?,
            row_offsets: squared_offsets(image.height, backend)?,
            column_offsets: squared_offsets(image.width, backend)?,
            noise_seed: c.noise_seed,
        })
    }

    /// The masks' 1-D blur along an axis whose squared offsets are `d2` for images
    /// [start, start + len): [len, side, side], entry (a, b) the normalised tap e^(−(a−b)²/2σ²)
    /// when |a − b| ≤ r, else 0, so that G·v is v convolved with the Gaussian, zero-padded.
    /// Symmetric.
    fn blur(&self, d2: &Tensor<B>, start: usize, len: usize) -> Result<Tensor<B>> {
        let taps = (d2 * &self.exponent.narrow(0, start, len)?)?.exp()?;
        let kept = self.reach.narrow(0, start, len)?.gt(d2)?;
        Ok((&(&taps * &kept)? * &self.scale.narrow(0, start, len)?)?)
    }

    /// Mixes images [start, start + len) of the epoch with their partners through CowMasks:
    /// noise N(0, 1) per pixel (counter-based: the same on every backend), smoothed by the
    /// image's Gaussian (G_h · noise · G_w, the zero-padded 2-D convolution with the outer
    /// product of the 1-D kernels), thresholded at the image's mean + z·std (so about the
    /// drawn proportion of pixels is set), times the apply flag; x + mask · (partner − x) in
    /// every channel. Returns the images and each image's weight (the mask's mean: the
    /// partner's share).
    pub(crate) fn mix(
        &self,
        x: &Tensor<B>,
        image: ImageShape,
        partner: &Tensor<B>,
        start: usize,
        len: usize,
    ) -> Result<(Tensor<B>, Tensor<B>)> {
        let plane = image.height * image.width;
        let rng = kiln_tensor::RngState {
            seed: self.noise_seed,
            offset: (start * plane) as u64,
        };
        let noise =
            Tensor::rand_normal([len, image.height, image.width], 0.0, 1.0, rng, x.backend())?;
        let rows = self.blur(&self.row_offsets, start, len)?;
        let columns = self.blur(&self.column_offsets, start, len)?;
        let smooth = rows
            .matmul(&noise)?
            .matmul(&columns)?
            .reshape([len, plane])?;
        let mean = smooth.mean(1)?.reshape([len, 1])?;
        let square = (&smooth * &smooth)?.mean(1)?.reshape([len, 1])?;
        let std = (square - &(&mean * &mean)?)?
            .binary_scalar(kiln_tensor::BinaryOp::Max, 0.0)?
            .sqrt()?;
        let z = self.z.narrow(0, start, len)?;
        let threshold = (&mean + &(&std * &z)?)?;
        let apply = self.apply.narrow(0, start, len)?;
        let mask = (smooth.gt(&threshold)? * &apply)?;
        let weight = mask.mean(1)?.reshape([len, 1])?;
        let channels = [len, image.channels, plane];
        let own = x.reshape(channels)?;
        let other = x.gather_rows(partner)?.reshape(channels)?;
        let m = mask.reshape([len, 1, plane])?;
        // own · (1 − m) + other · m: exactly one of the two for a 0/1 mask.
        let keep = ((&m * -1.0)? + 1.0)?;
        let mixed = (&(&own * &keep)? + &(&other * &m)?)?.reshape([len, image.features()])?;
        Ok((mixed, weight))
    }
}
