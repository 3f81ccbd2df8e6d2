// matmul_texture.wgsl: C = act(op(A) · op(B) + bias) for CPU-type adapters, with both operands
// read from sampled textures.
//
// Why textures: software drivers such as lavapipe (Mesa 22.x) load from storage buffers one
// lane at a time, with a bounds check each (about 5 ns per float on the reference machine),
// while a texel fetch is a vectorised gather of four floats (about 1.2 ns per float). So the
// operands are first packed into rgba32float textures (`matmul_texture_pack`, one pass over each
// operand), then multiplied from there with the subgroup scheme of matmul_subgroup.wgsl.
//
// Packed layout: a texture of Kp rows (K rounded up to SUBGROUP_SIZE) and ceil(X / 4) texels
// per row rounded up to the texels one workgroup reads (8 for A, GROUP for B), texel (x, k) =
// (op(k, 4x), …, op(k, 4x + 3)), zero past K and X, so the multiply reads without bounds checks.
// For A, X = M and op(k, m) = A(m, k); for B, X = N and op(k, n) = B(k, n).
//
// matmul_texture_pack: one invocation per texel of the packed texture (8×8 per workgroup).
// The source is stored [K, X] (element (k, x) at k·X + x) or, with K_CONTIGUOUS, [X, K]
// (at x·K + k): A is K-contiguous unless transposed, B is X-contiguous unless transposed.
// Neighbouring invocations (global_invocation_id.x) walk the source's contiguous dimension —
// texels along x, or along k with K_CONTIGUOUS — so each load instruction reads adjacent
// floats (the other order made the transposing pack several times slower on lavapipe).
//
// matmul_texture: a workgroup of GROUP invocations (a multiple of SUBGROUP_SIZE; 64 by default,
// fewer for narrow products) covers 32 rows × 4·GROUP columns of C; each invocation owns
// texel column n4 of B (4 columns of C) and 32 rows (32 vec4 accumulators). K is walked in
// blocks of SUBGROUP_SIZE: lane l fetches the 8 A texels (32 rows) of k0 + l, then for each k of
// the block every lane takes that k's rows from lane k − k0 with subgroupShuffle and multiplies
// them with its B texel (k, n4). Every fetch lands inside the padded textures (an index clamp
// there cost 25 % on lavapipe); results past M and N are computed from the zero padding and
// never stored. C rows are `c_texels` vec4s apart: N rounded up to 4, so when N is not a
// multiple of 4 the host passes a padded C and narrows it after.
// With PLANES (convolutions, conv_texture.wgsl), C's columns are images' planes side by side,
// `c_texels` texels each: column texel n4 of row m is stored at c_offset + (g·M + m)·c_texels
// + (n4 − g·c_texels) with g = n4 / c_texels, which is [images, M, plane] (NCHW), and
// without it at c_offset + m·c_texels + n4 (c_offset is 0 for a plain product).
// Work: 2·M·N·K FLOPs; each A texel is fetched N/(4·GROUP) times and each B texel M/32 times.

override K_CONTIGUOUS: bool = false;
override HAS_BIAS: bool = false;
override ACTIVATION: u32 = 0u;
override SUBGROUP_SIZE: u32 = 8u;
override GROUP: u32 = 64u;
override PLANES: bool = false;

const ROWS: u32 = 32u;

// `PackParams` in src/wgpu/matmul_texture.rs.
struct PackParams {
    k: u32,
    x: u32,
    height: u32,
    width: u32,
}

@group(0) @binding(0) var<uniform> pack: PackParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var packed: texture_storage_2d<rgba32float, write>;

@compute @workgroup_size(8, 8)
fn matmul_texture_pack(@builtin(global_invocation_id) gid: vec3<u32>) {
    let tx = select(gid.x, gid.y, K_CONTIGUOUS);
    let k = select(gid.y, gid.x, K_CONTIGUOUS);
    if (tx >= pack.width || k >= pack.height) {
        return;
    }
    var texel = vec4<f32>(0.0);
    if (k < pack.k) {
        for (var i = 0u; i < 4u; i = i + 1u) {
            let x = tx * 4u + i;
            if (x < pack.x) {
                if (K_CONTIGUOUS) {
                    texel[i] = src[x * pack.k + k];
                } else {
                    texel[i] = src[k * pack.x + x];
                }
            }
        }
    }
    textureStore(packed, vec2<u32>(tx, k), texel);
}

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var a_packed: texture_2d<f32>;
@group(0) @binding(2) var b_packed: texture_2d<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c4: array<vec4<f32>>;

// act(v + bias[n..n+3]) for one row of the block.
fn epilogue(v: vec4<f32>, n: u32) -> vec4<f32> {
    var x = v;
    if (HAS_BIAS) {
        let last = p.n - 1u;
        x = x + vec4<f32>(bias[min(n, last)], bias[min(n + 1u, last)], bias[min(n + 2u, last)], bias[min(n + 3u, last)]);
    }
    return vec4<f32>(unary_eval(ACTIVATION, x.x, p.alpha), unary_eval(ACTIVATION, x.y, p.alpha), unary_eval(ACTIVATION, x.z, p.alpha), unary_eval(ACTIVATION, x.w, p.alpha));
}

// C(m, n..n+3) = epilogue(v), one vec4 store at column texel n4's `base` + m·c_texels,
// skipped past M or N.
fn store_row(m: u32, n4: u32, base: u32, v: vec4<f32>) {
    let n = n4 * 4u;
    if (m < p.m && n < p.n) {
        c4[base + m * p.c_texels] = epilogue(v, n);
    }
}

// One invocation: C rows m0..m0+31, columns 4·n4..4·n4+3. Shaped for a software driver's
// compiler, each point measured on lavapipe:
// - the loop nest is written in the entry point, not in a function returning the accumulators
//   (returning the 32-vec4 array cost 35 % of the run time);
// - the 32 row stores are written out one by one with constant indices: a store loop indexing
//   `acc` by the loop counter made the accumulators live in memory whenever the loop body grew
//   (a bias or an activation), 5× slower;
// - stores are vec4s (scalar stores were 5× slower too), so a product whose N is not a
//   multiple of 4 is stored into a padded C;
// - no early `return` or `break`: a divergent exit slows the whole loop nest.
@compute @workgroup_size(GROUP)
fn matmul_texture(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let n4 = wid.x * GROUP + lid.x;
    let m0 = wid.y * ROWS;
    var base = p.c_offset + n4;
    if (PLANES) {
        let g = n4 / p.c_texels;
        base = p.c_offset + g * p.m * p.c_texels + (n4 - g * p.c_texels);
    }
    let k_padded = (p.k + SUBGROUP_SIZE - 1u) / SUBGROUP_SIZE * SUBGROUP_SIZE;
    var acc: array<vec4<f32>, 32>;
    for (var k0 = 0u; k0 < k_padded; k0 = k0 + SUBGROUP_SIZE) {
        // Lane l holds A(m0 + 4q .. m0 + 4q + 3, k0 + l) in a_rows[q].
        var a_rows: array<vec4<f32>, 8>;
        for (var q = 0u; q < 8u; q = q + 1u) {
            a_rows[q] = textureLoad(a_packed, vec2<u32>(m0 / 4u + q, k0 + lane), 0);
        }
        for (var j = 0u; j < SUBGROUP_SIZE; j = j + 1u) {
            let bv = textureLoad(b_packed, vec2<u32>(n4, k0 + j), 0);
            for (var q = 0u; q < 8u; q = q + 1u) {
                let av = subgroupShuffle(a_rows[q], j);
                acc[q * 4u] = fma(vec4<f32>(av.x), bv, acc[q * 4u]);
                acc[q * 4u + 1u] = fma(vec4<f32>(av.y), bv, acc[q * 4u + 1u]);
                acc[q * 4u + 2u] = fma(vec4<f32>(av.z), bv, acc[q * 4u + 2u]);
                acc[q * 4u + 3u] = fma(vec4<f32>(av.w), bv, acc[q * 4u + 3u]);
            }
        }
    }
    store_row(m0 + 0u, n4, base, acc[0]);
    store_row(m0 + 1u, n4, base, acc[1]);
    store_row(m0 + 2u, n4, base, acc[2]);
    store_row(m0 + 3u, n4, base, acc[3]);
    store_row(m0 + 4u, n4, base, acc[4]);
    store_row(m0 + 5u, n4, base, acc[5]);
    store_row(m0 + 6u, n4, base, acc[6]);
    store_row(m0 + 7u, n4, base, acc[7]);
    store_row(m0 + 8u, n4, base, acc[8]);
    store_row(m0 + 9u, n4, base, acc[9]);
    store_row(m0 + 10u, n4, base, acc[10]);
    store_row(m0 + 11u, n4, base, acc[11]);
    store_row(m0 + 12u, n4, base, acc[12]);
    store_row(m0 + 13u, n4, base, acc[13]);
    store_row(m0 + 14u, n4, base, acc[14]);
    store_row(m0 + 15u, n4, base, acc[15]);
    store_row(m0 + 16u, n4, base, acc[16]);
    store_row(m0 + 17u, n4, base, acc[17]);
    store_row(m0 + 18u, n4, base, acc[18]);
    store_row(m0 + 19u, n4, base, acc[19]);
    store_row(m0 + 20u, n4, base, acc[20]);
    store_row(m0 + 21u, n4, base, acc[21]);
    store_row(m0 + 22u, n4, base, acc[22]);
    store_row(m0 + 23u, n4, base, acc[23]);
    store_row(m0 + 24u, n4, base, acc[24]);
    store_row(m0 + 25u, n4, base, acc[25]);
    store_row(m0 + 26u, n4, base, acc[26]);
    store_row(m0 + 27u, n4, base, acc[27]);
    store_row(m0 + 28u, n4, base, acc[28]);
    store_row(m0 + 29u, n4, base, acc[29]);
    store_row(m0 + 30u, n4, base, acc[30]);
    store_row(m0 + 31u, n4, base, acc[31]);
}
