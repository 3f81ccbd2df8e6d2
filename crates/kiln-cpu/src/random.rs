//! Philox4x32-10, the counter-based generator of shaders/random.wgsl, bit for bit: element i
//! of a stream (seed, offset) reads word (offset + i) % 4 of block (offset + i) / 4.

use kiln_tensor::{Distribution, HostData, Result, RngState};

pub fn philox(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for _ in 0..10 {
        let p0 = 0xD2511F53u64 * c[0] as u64;
        let p1 = 0xCD9E8D57u64 * c[2] as u64;
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k = [k[0].wrapping_add(0x9E3779B9), k[1].wrapping_add(0xBB67AE85)];
    }
    c
}

/// The Philox block and lane of element i.
pub fn block_of(rng: RngState, i: usize) -> ([u32; 4], usize) {
    let e = rng.offset.wrapping_add(i as u64);
    let block = e >> 2;
    let words = philox(
        [block as u32, (block >> 32) as u32, 0, 0],
        [rng.seed as u32, (rng.seed >> 32) as u32],
    );
    (words, (e & 3) as usize)
}

pub fn to_unit(word: u32) -> f32 {
    (word >> 8) as f32 * 5.960_464_5e-8
}

pub fn uniform(rng: RngState, i: usize, low: f32, high: f32) -> f32 {
    let (words, lane) = block_of(rng, i);
    low + (high - low) * to_unit(words[lane])
}

/// A normal draw: `mean + std · z`, with z the standard normal of the element's word pair
/// (`standard_normal`). z is the same bits on every backend; the scale and shift are one f32
/// multiply and add.
pub fn normal(rng: RngState, i: usize, mean: f32, std: f32) -> f32 {
    let (words, lane) = block_of(rng, i);
    let pair = lane & 2;
    mean + std * standard_normal(words[pair] >> 8, words[pair + 1] >> 8, lane & 1 == 1)
}

/// The Box–Muller transform of two 24-bit words in integer fixed-point arithmetic, so that
/// every backend and driver computes the same bits (WGSL gives its float built-ins loose
/// error bounds, lets drivers round either way, fuse and flush denormals; integer operations
/// it defines exactly). shaders/random.wgsl runs the same steps.
///
/// With u1 = (w1 + 1)·2⁻²⁴ ∈ (0, 1] and t = w2·2⁻²⁴ ∈ [0, 1):
///   z = sqrt(−2 ln u1) · cos(2πt)   (`sine` false: even elements)
///   z = sqrt(−2 ln u1) · sin(2πt)   (`sine` true: odd elements)
/// The result is a multiple of 2⁻²¹ (|z| ≤ 5.77), within 1.2·10⁻⁶ of the exact transform of
/// the same words (the unit test sweeps it).
pub fn standard_normal(w1: u32, w2: u32, sine: bool) -> f32 {
    let radius = fixed::sqrt_q26(fixed::neg2_ln_q26(w1 + 1));
    let (cos, sin) = fixed::cos_sin_of_turn(w2);
    let t = if sine { sin } else { cos };
    let magnitude = ((radius as u64 * t.unsigned_abs() as u64) >> 35) as i32;
    let z = if t < 0 { -magnitude } else { magnitude };
    z as f32 * fixed::Z_UNIT
}

/// Fixed-point helpers of `standard_normal`. Q2.30 values are i32 with 30 fraction bits,
/// Q6.26 and Q3.26 values u32 with 26. Polynomials are least-squares fits on Chebyshev nodes.
mod fixed {
    /// One unit of z: 2⁻²¹.
    pub const Z_UNIT: f32 = 1.0 / 2_097_152.0;
    /// ln 2 in Q6.26.
    const LN2_Q26: u32 = 46_516_320;
    /// √2 in Q1.31.
    const SQRT2_Q31: u32 = 3_037_000_500;
    /// ln(1 + x) / x for x ∈ [√½ − 1, √2 − 1], ascending powers of x (error of x·P(x): 2.3e-10).
    const LN1P: [i32; 11] = [
        1_073_741_825,
        -536_870_909,
        357_913_600,
        -268_435_710,
        214_776_033,
        -178_971_740,
        152_606_711,
        -133_135_620,
        128_032_180,
        -125_920_164,
        72_372_697,
    ];
    /// sin(πy/2) / y and cos(πy/2) for y ∈ [0, 1], ascending powers of y² (error 2.5e-10).
    const SIN: [i32; 6] = [
        1_686_629_713,
        -693_598_667,
        85_569_285,
        -5_026_900,
        172_080,
        -3_688,
    ];
    const COS: [i32; 6] = [
        1_073_741_824,
        -1_324_675_866,
        272_375_386,
        -22_401_204,
        985_466,
        -25_607,
    ];

    /// a·b in Q2.30, truncated toward zero (|a·b| < 2).
    pub fn mul_q30(a: i32, b: i32) -> i32 {
        let m = ((a.unsigned_abs() as u64 * b.unsigned_abs() as u64) >> 30) as i32;
        if (a < 0) != (b < 0) {
            -m
        } else {
            m
        }
    }

    /// Horner's rule from the highest coefficient down, as random.wgsl unrolls it.
    fn horner(coefficients: &[i32], x: i32) -> i32 {
        let (last, rest) = coefficients.split_last().expect("a polynomial");
        rest.iter().rev().fold(*last, |acc, &c| mul_q30(acc, x) + c)
    }

    /// −2 ln(m·2⁻²⁴) in Q6.26 for m ∈ [1, 2²⁴]: m = 2ᵉ·f with f ∈ [√½, √2), so
    /// −2 ln u = 2(24 − e) ln 2 − 2 ln f, the last by the polynomial in x = f − 1.
    pub fn neg2_ln_q26(m: u32) -> u32 {
        let mut e = 31 - m.leading_zeros();
        let mut f = m << (31 - e);
        if f >= SQRT2_Q31 {
            e += 1;
            f >>= 1;
        }
        let x = (f >> 1) as i32 - (1 << 30);
        let ln_f = mul_q30(x, horner(&LN1P, x));
        (2 * (24 - e) * LN2_Q26).wrapping_sub((2 * (ln_f >> 4)) as u32)
    }

    /// sqrt(l) in Q3.26 for l in Q6.26: the integer square root of l·2²⁶, two radicand bits
    /// per step (29 steps; the remainder stays below 2³¹).
    pub fn sqrt_q26(l: u32) -> u32 {
        let (mut root, mut rem) = (0u32, 0u32);
        for step in 0..29 {
            let bits = if step < 16 {
                (l >> (30 - 2 * step)) & 3
            } else {
                0
            };
            rem = (rem << 2) | bits;
            let trial = (root << 2) | 1;
            if rem >= trial {
                rem -= trial;
                root = (root << 1) | 1;
            } else {
                root <<= 1;
            }
        }
        root
    }

    /// (cos 2πt, sin 2πt) in Q2.30 for t = w·2⁻²⁴: the top two bits pick the quadrant, the
    /// other 22 give y ∈ [0, 1) of the angle πy/2 within it.
    pub fn cos_sin_of_turn(w: u32) -> (i32, i32) {
        let y = ((w & 0x3f_ffff) << 8) as i32;
        let y2 = mul_q30(y, y);
        let s = mul_q30(y, horner(&SIN, y2)).max(0);
        let c = horner(&COS, y2).max(0);
        match w >> 22 {
            0 => (c, s),
            1 => (-s, c),
            2 => (-c, -s),
            _ => (s, -c),
        }
    }
}

/// `numel` f32 values of the stream (seed, offset), element i from counter offset + i.
pub fn random(numel: usize, distribution: Distribution, rng: RngState) -> HostData {
    let mut out = vec![0.0f32; numel];
    match distribution {
        Distribution::Uniform { low, high } => {
            crate::elementwise::fill_indexed(&mut out, |i| uniform(rng, i, low, high))
        }
        Distribution::Normal { mean, std } => {
            crate::elementwise::fill_indexed(&mut out, |i| normal(rng, i, mean, std))
        }
    }
    HostData::F32(out)
}

pub fn dropout(x: &HostData, p: f32, rng: RngState) -> Result<(HostData, HostData)> {
    let scale = 1.0 / (1.0 - p);
    let mut mask = vec![0.0f32; x.len()];
    crate::elementwise::fill_indexed(&mut mask, |i| {
        if uniform(rng, i, 0.0, 1.0) >= p {
            scale
        } else {
            0.0
        }
    });
    Ok(match x {
        HostData::F32(v) => (
            HostData::F32(v.iter().zip(&mask).map(|(a, m)| a * m).collect()),
            HostData::F32(mask),
        ),
        HostData::F64(v) => {
            let mask: Vec<f64> = mask.iter().map(|&m| m as f64).collect();
            (
                HostData::F64(v.iter().zip(&mask).map(|(a, m)| a * m).collect()),
                HostData::F64(mask),
            )
        }
        other => return Err(crate::unsupported("dropout", other.dtype())),
    })
}

#[cfg(test)]
mod tests {
    use super::{philox, standard_normal};

    fn exact(w1: u32, w2: u32, sine: bool) -> f64 {
        let u1 = (w1 as f64 + 1.0) / 16_777_216.0;
        let angle = std::f64::consts::TAU * w2 as f64 / 16_777_216.0;
        let radius = (-2.0 * u1.ln()).sqrt();
        radius * if sine { angle.sin() } else { angle.cos() }
    }

    #[test]
    fn the_fixed_point_transform_is_within_its_stated_error_of_box_muller() {
        let mut worst = 0.0f64;
        let mut check = |w1: u32, w2: u32, sine: bool| {
            let z = standard_normal(w1, w2, sine) as f64;
            worst = worst.max((z - exact(w1, w2, sine)).abs());
        };
        // Every radius word at a few angles, every angle word at a few radii, and the ends.
        for w1 in (0..1u32 << 24).step_by(97) {
            check(w1, w1.wrapping_mul(7919) & 0xff_ffff, w1 & 1 == 1);
        }
        for w2 in (0..1u32 << 24).step_by(89) {
            for w1 in [0, 1, 1 << 23, (1 << 24) - 2, (1 << 24) - 1] {
                check(w1, w2, w2 & 1 == 1);
            }
        }
        assert!(worst < 1.2e-6, "worst error {worst:e}");
    }

    #[test]
    fn the_fixed_point_transform_has_fixed_answers() {
        // u1 = 2⁻²⁴ (the largest radius, sqrt(48 ln 2) = 5.76811) at the four quarter turns.
        assert_eq!(standard_normal(0, 0, false), 5.768_107_4);
        assert_eq!(standard_normal(0, 0, true), 0.0);
        assert_eq!(standard_normal(0, 1 << 22, false), 0.0);
        assert_eq!(standard_normal(0, 1 << 22, true), 5.768_107_4);
        assert_eq!(standard_normal(0, 2 << 22, false), -5.768_107_4);
        assert_eq!(standard_normal(0, 3 << 22, true), -5.768_107_4);
        // u1 = 1: radius 0.
        assert_eq!(standard_normal((1 << 24) - 1, 12345, false), 0.0);
        // A word pair in the third quadrant: −4 241 745 units of 2⁻²¹ (exact: −2.02262181).
        assert_eq!(
            standard_normal(0x123456, 0xabcdef, true),
            -4_241_745.0 * 2f32.powi(-21)
        );
    }

    // Known-answer vectors from the Random123 distribution (kat_vectors, philox4x32 10 rounds).
    #[test]
    fn philox_matches_random123_known_answers() {
        assert_eq!(
            philox([0, 0, 0, 0], [0, 0]),
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
        );
        assert_eq!(
            philox([0xffffffff; 4], [0xffffffff; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }
}
