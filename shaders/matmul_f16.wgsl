enable f16;

// matmul_f16.wgsl: C = act(op(A) · op(B) + bias) with A and B stored as f16, for adapters with
// `shader-f16`. Products and sums are f32 (each operand is widened as it is staged); C is
// rounded once, to f32 (matmul_f16_tiled) or f16 (matmul_f16_tiled_to_f16). The bias has C's
// dtype. The host widens through cast.wgsl and runs the f32 kernels where the feature is missing.
//
// Layout and mapping are matmul.wgsl's (one matrix or a batch, transpose flags): a workgroup of
// 16×16 invocations computes a 64×64 tile of C, each invocation a 4×4 block in four vec4 f32
// accumulators; K is walked in steps of 16, staging a 64×16 slice of A and a 16×64 slice of B
// in f32 workgroup memory (k-major), so the inner loop is matmul.wgsl's. Edges load zeros and
// skip out-of-range stores.
//
// matmul_f16_texture_pack: matmul_texture_pack (matmul_texture.wgsl) reading an f16 source, so
// CPU-type adapters read half the bytes and then multiply from the same rgba32float textures.
//
// Work: 2·M·N·K FLOPs; A and B traffic is half the f32 kernel's.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACTIVATION: u32 = 0u;
override K_CONTIGUOUS: bool = false;

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f16>;
@group(0) @binding(2) var<storage, read> b: array<f16>;
@group(0) @binding(3) var<storage, read> bias_f32: array<f32>;
@group(0) @binding(4) var<storage, read_write> c_f32: array<f32>;
@group(0) @binding(3) var<storage, read> bias_f16: array<f16>;
@group(0) @binding(4) var<storage, read_write> c_f16: array<f16>;

// tile_a[k * 16 + m / 4][m % 4] = A(m, k) within the tile; tile_b likewise with n.
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

// Thread t stages four values of each operand: A(m, k..k+3) with m = t / 4, k = (t % 4) · 4
// (transposed: A(m..m+3, k) with k = t / 16, m = (t % 16) · 4), and B(k, n..n+3) with
// k = t / 16, n = (t % 16) · 4 (transposed: B(k..k+3, n) with n = t / 4, k = (t % 4) · 4).
fn stage(t: u32, m0: u32, n0: u32, k0: u32, base_a: u32, base_b: u32) {
    for (var i = 0u; i < 4u; i = i + 1u) {
        var m: u32;
        var k: u32;
        if (TRANS_A) { m = m0 + (t % 16u) * 4u + i; k = k0 + t / 16u; } else { m = m0 + t / 4u; k = k0 + (t % 4u) * 4u + i; }
        var v = 0.0;
        if (m < p.m && k < p.k) {
            if (TRANS_A) { v = f32(a[base_a + k * p.m + m]); } else { v = f32(a[base_a + m * p.k + k]); }
        }
        let lm = m - m0;
        tile_a[(k - k0) * 16u + lm / 4u][lm % 4u] = v;
    }
    for (var i = 0u; i < 4u; i = i + 1u) {
        var k: u32;
        var n: u32;
        if (TRANS_B) { n = n0 + t / 4u; k = k0 + (t % 4u) * 4u + i; } else { k = k0 + t / 16u; n = n0 + (t % 16u) * 4u + i; }
        var v = 0.0;
        if (k < p.k && n < p.n) {
            if (TRANS_B) { v = f32(b[base_b + n * p.k + k]); } else { v = f32(b[base_b + k * p.n + n]); }
        }
        let ln = n - n0;
        tile_b[(k - k0) * 16u + ln / 4u][ln % 4u] = v;
    }
}

// The invocation's 4×4 block of A·B (rows m0 + ty·4.., columns n0 + tx·4..), in f32.
fn block_product(wid: vec3<u32>, lid: vec3<u32>) -> array<vec4<f32>, 4> {
    let t = lid.y * 16u + lid.x;
    let m0 = wid.y * TILE;
    let n0 = wid.x * TILE;
    let base_a = wid.z * p.batch_stride_a;
    let base_b = wid.z * p.batch_stride_b;
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var k0 = 0u; k0 < p.k; k0 = k0 + TILE_K) {
        stage(t, m0, n0, k0, base_a, base_b);
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk = kk + 1u) {
            let av = tile_a[kk * 16u + lid.y];
            let bv = tile_b[kk * 16u + lid.x];
            acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
            acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
            acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
            acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
        }
        workgroupBarrier();
    }
    return acc;
}

@compute @workgroup_size(16, 16)
fn matmul_f16_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let acc = block_product(wid, lid);
    let base = wid.z * p.m * p.n;
    for (var i = 0u; i < 4u; i = i + 1u) {
        let m = wid.y * TILE + lid.y * 4u + i;
        if (m >= p.m) { break; }
        for (var j = 0u; j < 4u; j = j + 1u) {
            let n = wid.x * TILE + lid.x * 4u + j;
            if (n < p.n) {
                var v = acc[i][j];
                if (HAS_BIAS) { v = v + bias_f32[n]; }
                c_f32[base + m * p.n + n] = unary_eval(ACTIVATION, v, p.alpha);
            }
        }
    }
}

@compute @workgroup_size(16, 16)
fn matmul_f16_tiled_to_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let acc = block_product(wid, lid);
    let base = wid.z * p.m * p.n;
    for (var i = 0u; i < 4u; i = i + 1u) {
        let m = wid.y * TILE + lid.y * 4u + i;
        if (m >= p.m) { break; }
        for (var j = 0u; j < 4u; j = j + 1u) {
            let n = wid.x * TILE + lid.x * 4u + j;
            if (n < p.n) {
                var v = acc[i][j];
                if (HAS_BIAS) { v = v + f32(bias_f16[n]); }
                // Rounded by rule (common.wgsl), so an overflow is inf on every driver; the
                // f16 bits reach f16 through unpack2x16float, an exact widening.
                let h = f16_bits_of_f32(bitcast<u32>(unary_eval(ACTIVATION, v, p.alpha)));
                c_f16[base + m * p.n + n] = f16(unpack2x16float(h).x);
            }
        }
    }
}

// `PackParams` in src/wgpu/matmul_texture.rs.
struct PackParams {
    k: u32,
    x: u32,
    height: u32,
    width: u32,
}

@group(0) @binding(0) var<uniform> pack: PackParams;
@group(0) @binding(1) var<storage, read> src: array<f16>;
@group(0) @binding(2) var packed: texture_storage_2d<rgba32float, write>;

@compute @workgroup_size(8, 8)
fn matmul_f16_texture_pack(@builtin(global_invocation_id) gid: vec3<u32>) {
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
                    texel[i] = f32(src[x * pack.k + k]);
                } else {
                    texel[i] = f32(src[k * pack.x + x]);
                }
            }
        }
    }
    textureStore(packed, vec2<u32>(tx, k), texel);
}
