// random.wgsl: counter-based random numbers (Philox4x32-10) for fills and dropout.
//
// Element i of a stream with (seed, offset) uses counter e = offset + i: the Philox block
// (e / 4) keyed by the 64-bit seed gives four 32-bit words, and the element takes word e % 4.
// Nothing is stored between calls, so any backend reproduces the stream from (seed, offset).
// - uniform: low + (high − low) · (word >> 8) · 2⁻²⁴, in [low, high).
// - normal: Box–Muller on the word pair (e & ~1) % 4 and its successor of the same block,
//   with the angle in [−π, π) where WGSL bounds sin/cos error:
//   even elements take the cosine branch, odd ones the sine branch.
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

@compute @workgroup_size(256)
fn random_normal(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.numel) { return; }
    let words = block_of(i);
    let lane = lane_of(i);
    let pair = lane & 2u;
    let u1 = f32((words[pair] >> 8u) + 1u) * 5.9604645e-8;
    let u2 = to_unit(words[pair + 1u]);
    let radius = sqrt(-2.0 * log(u1));
    let angle = 6.2831855 * u2 - 3.1415927;
    var z = radius * cos(angle);
    if ((lane & 1u) == 1u) {
        z = radius * sin(angle);
    }
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
