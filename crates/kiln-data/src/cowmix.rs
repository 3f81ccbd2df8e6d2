//! CowMix (French et al.): a partner image mixed in through a CowMask, Gaussian-smoothed noise
//! thresholded so that a drawn share of the pixels comes from the partner; the labels are mixed
//! by the mask's mean. The epoch's choices (partners, thresholds, the smoothing kernel, the
//! noise seed) are drawn on the host and uploaded once; each batch's masks are made on the
//! device from counter-based noise and the conv family's kernel, the same on every backend.

use crate::augment::{rng, Augmentation};
use crate::error::Result;
use kiln_tensor::{Backend, ImageShape, Tensor};
use rand::Rng;

/// An epoch's CowMix choices: each image's partner within its batch, the z-score of its mask
/// threshold (Φ⁻¹(1 − proportion)) and whether it is mixed, the epoch's Gaussian kernel (odd
/// side, normalised) and the seed of its noise.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CowMixChoices {
    pub partners: Vec<u32>,
    pub z: Vec<f32>,
    pub apply: Vec<f32>,
    pub kernel: Vec<f32>,
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

/// A normalised 2-D Gaussian kernel of standard deviation `sigma`, side 2·⌈2σ⌉ + 1.
fn gaussian_kernel(sigma: f64) -> Vec<f32> {
    let radius = (2.0 * sigma).ceil() as i64;
    let side = (2 * radius + 1) as usize;
    let mut k: Vec<f64> = (0..side * side)
        .map(|i| {
            let (y, x) = ((i / side) as i64 - radius, (i % side) as i64 - radius);
            (-((x * x + y * y) as f64) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let total: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= total);
    k.into_iter().map(|v| v as f32).collect()
}

/// CowMix's epoch: partners as CutMix draws them (another image of the same batch), each
/// image's threshold for a proportion uniform in the range, σ log-uniform in its range.
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
    let sigma = if s_hi > s_lo {
        r.random_range(s_lo.ln()..=s_hi.ln()).exp()
    } else {
        s_lo
    };
    let mut c = CowMixChoices {
        kernel: gaussian_kernel(sigma),
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
        let apply = len > 1 && r.random::<f32>() < aug.cowmix_p;
        c.partners.push(((p - start + offset) % len.max(1)) as u32);
        c.z.push(normal_quantile(1.0 - proportion as f64) as f32);
        c.apply.push(if apply { 1.0 } else { 0.0 });
    }
    c
}

/// CowMix's epoch on the device: partners u32 [n], thresholds' z and the apply flags f32
/// [n, 1], the Gaussian kernel [1, 1, k, k], and the noise's seed.
pub(crate) struct DeviceCowMix<B: Backend> {
    pub(crate) partner: Tensor<B>,
    z: Tensor<B>,
    apply: Tensor<B>,
    kernel: Tensor<B>,
    noise_seed: u64,
}

impl<B: Backend> DeviceCowMix<B> {
    /// Uploads an epoch's choices.
    pub(crate) fn upload(c: &CowMixChoices, backend: &B) -> Result<Self> {
        let n = c.partners.len();
        let side = (c.kernel.len() as f64).sqrt() as usize;
        Ok(DeviceCowMix {
            partner: Tensor::from_slice(&c.partners, [n], backend)?,
            z: Tensor::from_slice(&c.z, [n, 1], backend)?,
            apply: Tensor::from_slice(&c.apply, [n, 1], backend)?,
            kernel: Tensor::from_slice(&c.kernel, [1, 1, side, side], backend)?,
            noise_seed: c.noise_seed,
        })
    }

    /// Mixes images [start, start + len) of the epoch with their partners through CowMasks:
    /// noise N(0, 1) per pixel (counter-based: the same on every backend), smoothed by the
    /// Gaussian kernel, thresholded at the image's mean + z·std (so about the drawn proportion
    /// of pixels is set), times the apply flag; x + mask · (partner − x) in every channel.
    /// Returns the images and each image's weight (the mask's mean: the partner's share).
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
        let noise = Tensor::rand_normal(
            [len, 1, image.height, image.width],
            0.0,
            1.0,
            rng,
            x.backend(),
        )?;
        let radius = self.kernel.dims()[2] / 2;
        let options = kiln_tensor::Conv2dOptions {
            stride: 1,
            padding: radius,
            dilation: 1,
        };
        let smooth = noise
            .conv2d(&self.kernel, None, None, options)?
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
