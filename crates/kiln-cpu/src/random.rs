//! Philox4x32-10, the counter-based generator of shaders/random.wgsl, bit for bit: element i
//! of a stream (seed, offset) reads word (offset + i) % 4 of block (offset + i) / 4.

use kiln_tensor::RngState;

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

pub fn normal(rng: RngState, i: usize, mean: f32, std: f32) -> f32 {
    let (words, lane) = block_of(rng, i);
    let pair = lane & 2;
    let u1 = ((words[pair] >> 8) + 1) as f32 * 5.960_464_5e-8;
    let u2 = to_unit(words[pair + 1]);
    let radius = (-2.0 * u1.ln()).sqrt();
    // The same f32 constants as random.wgsl: TAU = 6.2831855, PI = 3.1415927.
    let angle = std::f32::consts::TAU * u2 - std::f32::consts::PI;
    let z = if lane & 1 == 1 {
        radius * angle.sin()
    } else {
        radius * angle.cos()
    };
    mean + std * z
}

#[cfg(test)]
mod tests {
    use super::philox;

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
