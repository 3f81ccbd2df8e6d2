// random.wgsl: counter-based random numbers (Philox4x32-10) for fills and dropout.
//
// Element i of a stream with (seed, offset) uses counter e = offset + i: the Philox block
// (e / 4) keyed by the 64-bit seed gives four 32-bit words, and the element takes word e % 4.
// Nothing is stored between calls, so any backend reproduces the stream from (seed, offset).
// - uniform: low + (high − low) · (word >> 8) · 2⁻²⁴, in [low, high).
// - normal: Box–Muller on the word pair (e & ~1) % 4 and its successor of the same block, in
//   integer fixed-point arithmetic (no float built-ins, whose error WGSL bounds loosely and
//   drivers differ in), so z is the same bits on every driver and on the CPU backend
//   (crates/kiln-cpu/src/random.rs, `standard_normal`, documents each step):
//   u1 = ((w1 >> 8) + 1)·2⁻²⁴, t = (w2 >> 8)·2⁻²⁴, z = sqrt(−2 ln u1)·cos(2πt) for even
//   elements and ·sin(2πt) for odd ones, a multiple of 2⁻²¹; the fill is mean + std·z.
// - dropout: keep when uniform ≥ p; mask = keep / (1 − p); y = x · mask.
// Mapping: one invocation per element (2-D grid of 256-wide workgroups); 10 Philox rounds each.

struct RandomParams {
    numel: u32,
    seed_lo: u32,
    seed_hi: u32,
    offset_lo: u32,
    offset_hi: u32,
    a: f32,
    b: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: RandomParams;
@group(0) @binding(1) var<storage, read_write> random_out: array<f32>;
@group(0) @binding(1) var<storage, read> dropout_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> dropout_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> dropout_mask: array<f32>;

// High 32 bits of a 32×32-bit product, from 16-bit halves (WGSL has no 64-bit integers).
fn mul_hi(a: u32, b: u32) -> u32 {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    let lo_hi = a_lo * b_hi;
    let cross = (lo_lo >> 16u) + (hi_lo & 0xffffu) + (lo_hi & 0xffffu);
    return a_hi * b_hi + (hi_lo >> 16u) + (lo_hi >> 16u) + (cross >> 16u);
}

fn philox(counter_in: vec4<u32>, key_in: vec2<u32>) -> vec4<u32> {
    var c = counter_in;
    var k = key_in;
    for (var round = 0u; round < 10u; round = round + 1u) {
        let hi0 = mul_hi(0xD2511F53u, c.x);
        let lo0 = 0xD2511F53u * c.x;
        let hi1 = mul_hi(0xCD9E8D57u, c.z);
        let lo1 = 0xCD9E8D57u * c.z;
        c = vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

// The Philox block of element i and the lane (0..3) it reads.
fn block_of(i: u32) -> vec4<u32> {
    // e = offset + i as a 64-bit number in (lo, hi).
    let lo = p.offset_lo + i;
    let carry = select(0u, 1u, lo < i);
    let hi = p.offset_hi + carry;
    let block_lo = (lo >> 2u) | (hi << 30u);
    let block_hi = hi >> 2u;
    return philox(vec4<u32>(block_lo, block_hi, 0u, 0u), vec2<u32>(p.seed_lo, p.seed_hi));
}

fn lane_of(i: u32) -> u32 {
    return (p.offset_lo + i) & 3u;
}

fn to_unit(word: u32) -> f32 {
    return f32(word >> 8u) * 5.9604645e-8;
}

fn element_id(wid: vec3<u32>, num: vec3<u32>, lid: vec3<u32>) -> u32 {
    return workgroup_linear(wid, num) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn random_uniform(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.numel) { return; }
    let words = block_of(i);
    random_out[i] = p.a + (p.b - p.a) * to_unit(words[lane_of(i)]);
}

// a·b of two Q2.30 numbers in Q2.30, truncated toward zero (|a·b| < 2).
fn mul_q30(a: i32, b: i32) -> i32 {
    let ua = u32(abs(a));
    let ub = u32(abs(b));
    let m = i32((mul_hi(ua, ub) << 2u) | ((ua * ub) >> 30u));
    return select(m, -m, (a < 0) != (b < 0));
}

// −2 ln(m·2⁻²⁴) in Q6.26 for m in [1, 2²⁴]: m = 2^e·f with f in [√½, √2), and ln f = x·P(x),
// x = f − 1, P a degree-10 fit of ln(1 + x)/x (Horner's rule, highest power first).
fn neg2_ln_q26(m: u32) -> u32 {
    var e = 31u - countLeadingZeros(m);
    var f = m << (31u - e);
    if (f >= 3037000500u) {
        e = e + 1u;
        f = f >> 1u;
    }
    let x = i32(f >> 1u) - 1073741824;
    var acc = 72372697;
    acc = mul_q30(acc, x) - 125920164;
    acc = mul_q30(acc, x) + 128032180;
    acc = mul_q30(acc, x) - 133135620;
    acc = mul_q30(acc, x) + 152606711;
    acc = mul_q30(acc, x) - 178971740;
    acc = mul_q30(acc, x) + 214776033;
    acc = mul_q30(acc, x) - 268435710;
    acc = mul_q30(acc, x) + 357913600;
    acc = mul_q30(acc, x) - 536870909;
    acc = mul_q30(acc, x) + 1073741825;
    let ln_f = mul_q30(x, acc);
    return 2u * (24u - e) * 46516320u - u32(2 * (ln_f >> 4u));
}

// sqrt(l) in Q3.26 for l in Q6.26: the integer square root of l·2²⁶, two radicand bits a step.
fn sqrt_q26(l: u32) -> u32 {
    var root = 0u;
    var rem = 0u;
    for (var step = 0u; step < 29u; step = step + 1u) {
        var bits = 0u;
        if (step < 16u) {
            bits = (l >> (30u - 2u * step)) & 3u;
        }
        rem = (rem << 2u) | bits;
        let trial = (root << 2u) | 1u;
        if (rem >= trial) {
            rem = rem - trial;
            root = (root << 1u) | 1u;
        } else {
            root = root << 1u;
        }
    }
    return root;
}

// (cos 2πt, sin 2πt) in Q2.30 for t = w·2⁻²⁴: the top two bits of w pick the quadrant, the
// other 22 give y in [0, 1); sin(πy/2) = y·S(y²) and cos(πy/2) = C(y²), degree-5 fits in y².
fn cos_sin_of_turn(w: u32) -> vec2<i32> {
    let y = i32((w & 0x3fffffu) << 8u);
    let y2 = mul_q30(y, y);
    var s = -3688;
    s = mul_q30(s, y2) + 172080;
    s = mul_q30(s, y2) - 5026900;
    s = mul_q30(s, y2) + 85569285;
    s = mul_q30(s, y2) - 693598667;
    s = mul_q30(s, y2) + 1686629713;
    s = max(mul_q30(y, s), 0);
    var c = -25607;
    c = mul_q30(c, y2) + 985466;
    c = mul_q30(c, y2) - 22401204;
    c = mul_q30(c, y2) + 272375386;
    c = mul_q30(c, y2) - 1324675866;
    c = mul_q30(c, y2) + 1073741824;
    c = max(c, 0);
    switch (w >> 22u) {
        case 0u: { return vec2<i32>(c, s); }
        case 1u: { return vec2<i32>(-s, c); }
        case 2u: { return vec2<i32>(-c, -s); }
        default: { return vec2<i32>(s, -c); }
    }
}

// The standard normal z of 24-bit words w1, w2: sqrt(−2 ln u1) times the cosine (or sine) of
// the turn, |z| < 2²⁴ units of 2⁻²¹, so the conversion to f32 and the scaling are exact.
fn standard_normal(w1: u32, w2: u32, sine: bool) -> f32 {
    let radius = sqrt_q26(neg2_ln_q26(w1 + 1u));
    let cs = cos_sin_of_turn(w2);
    let t = select(cs.x, cs.y, sine);
    let magnitude = i32(mul_hi(radius, u32(abs(t))) >> 3u);
    return f32(select(magnitude, -magnitude, t < 0)) * 4.76837158203125e-7;
}

@compute @workgroup_size(256)
fn random_normal(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.numel) { return; }
    let words = block_of(i);
    let lane = lane_of(i);
    let pair = lane & 2u;
    let z = standard_normal(words[pair] >> 8u, words[pair + 1u] >> 8u, (lane & 1u) == 1u);
    random_out[i] = p.a + p.b * z;
}

@compute @workgroup_size(256)
fn random_dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.numel) { return; }
    let u = to_unit(block_of(i)[lane_of(i)]);
    // p.a = drop probability, p.b = 1 / (1 − p).
    let mask = select(0.0, p.b, u >= p.a);
    dropout_mask[i] = mask;
    dropout_out[i] = dropout_in[i] * mask;
}
