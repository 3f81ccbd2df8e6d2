// matmul_subgroup.wgsl: C[b] = act(op(A[b]) · op(B[b]) + bias) for CPU-type adapters.
//
// Why a second matmul: software drivers such as lavapipe run invocations as SIMD lanes, and
// every storage or workgroup-memory access there is a per-lane scalar operation (about 4 ns per
// float on the reference machine), while a subgroup shuffle is one vector instruction. The
// tiled kernel spends most of its time re-reading workgroup memory; this one reads each input
// element from memory once per tile and shares it between lanes with subgroupShuffle.
//
// Layout: as matmul.wgsl (A [M, K] or [K, M] with TRANS_A, B [K, N] or [N, K] with TRANS_B,
// batches `batch_stride_a/b` apart, bias [N], ACTIVATION a UnaryOp code).
// Mapping: a workgroup of 64 invocations is 64 / SUBGROUP_SIZE subgroups; each invocation owns
// 4 adjacent columns and 32 rows of C (32 vec4 accumulators), so a workgroup covers 32 rows ×
// 256 columns. K is walked in blocks of SUBGROUP_SIZE: lane l loads A(m, k0 + l) for its
// subgroup's 32 rows (4 rows per vec4), then for each k of the block every lane takes that
// k's A values from lane k − k0 with subgroupShuffle and multiplies them with its own B(k, n..n+3).
// Requires a fixed subgroup size (SUBGROUP_SIZE) laid out along local_invocation_index.
// Work: 2·M·N·K FLOPs; each A element is loaded N/256 times and each B element M/32 times.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACTIVATION: u32 = 0u;
override SUBGROUP_SIZE: u32 = 8u;

const ROWS: u32 = 32u;

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> c4: array<vec4<f32>>;

// A(m, k), or 0 outside the matrix. Indices are clamped rather than branched on, so every
// lane runs the same loads (branches are per-lane work on a software driver).
fn a_at(base: u32, m: u32, k: u32) -> f32 {
    let inside = select(0.0, 1.0, m < p.m && k < p.k);
    let mc = min(m, p.m - 1u);
    let kc = min(k, p.k - 1u);
    if (TRANS_A) { return a[base + kc * p.m + mc] * inside; }
    return a[base + mc * p.k + kc] * inside;
}

// B(k, n..n+3), zeros outside the matrix; 4-aligned rows are read as one vec4.
fn b_row(base: u32, k: u32, n: u32) -> vec4<f32> {
    let kc = min(k, p.k - 1u);
    let inside = select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<bool>(k < p.k) & (vec4<u32>(n) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.n)));
    let last = p.n - 1u;
    if (TRANS_B) {
        return vec4<f32>(b[base + min(n, last) * p.k + kc], b[base + min(n + 1u, last) * p.k + kc], b[base + min(n + 2u, last) * p.k + kc], b[base + min(n + 3u, last) * p.k + kc]) * inside;
    }
    let row = base + kc * p.n;
    return vec4<f32>(b[row + min(n, last)], b[row + min(n + 1u, last)], b[row + min(n + 2u, last)], b[row + min(n + 3u, last)]) * inside;
}

// One invocation's part: C rows m0..m0+31, columns n..n+3. Stores go through `store`, which
// the two entry points implement with scalar or vec4 writes. No early `return` or `break`:
// on a software driver a divergent exit makes the whole loop nest slower (measured 3×).
fn multiply(wid: vec3<u32>, n: u32, lane: u32) -> array<vec4<f32>, 32> {
    let m0 = wid.y * ROWS;
    let base_a = wid.z * p.batch_stride_a;
    let base_b = wid.z * p.batch_stride_b;
    var acc: array<vec4<f32>, 32>;
    for (var k0 = 0u; k0 < p.k; k0 = k0 + SUBGROUP_SIZE) {
        // Lane l holds A(m0 + 4q .. m0 + 4q + 3, k0 + l) in a_rows[q].
        var a_rows: array<vec4<f32>, 8>;
        for (var q = 0u; q < 8u; q = q + 1u) {
            let r = m0 + q * 4u;
            let k = k0 + lane;
            a_rows[q] = vec4<f32>(a_at(base_a, r, k), a_at(base_a, r + 1u, k), a_at(base_a, r + 2u, k), a_at(base_a, r + 3u, k));
        }
        for (var j = 0u; j < SUBGROUP_SIZE; j = j + 1u) {
            let bv = b_row(base_b, k0 + j, n);
            for (var q = 0u; q < 8u; q = q + 1u) {
                let av = subgroupShuffle(a_rows[q], j);
                acc[q * 4u] = fma(vec4<f32>(av.x), bv, acc[q * 4u]);
                acc[q * 4u + 1u] = fma(vec4<f32>(av.y), bv, acc[q * 4u + 1u]);
                acc[q * 4u + 2u] = fma(vec4<f32>(av.z), bv, acc[q * 4u + 2u]);
                acc[q * 4u + 3u] = fma(vec4<f32>(av.w), bv, acc[q * 4u + 3u]);
            }
        }
    }
    return acc;
}

// act(v + bias[n..n+3]) for one row of the block.
fn epilogue(v: vec4<f32>, n: u32) -> vec4<f32> {
    var x = v;
    if (HAS_BIAS) {
        let last = p.n - 1u;
        x = x + vec4<f32>(bias[min(n, last)], bias[min(n + 1u, last)], bias[min(n + 2u, last)], bias[min(n + 3u, last)]);
    }
    return vec4<f32>(unary_eval(ACTIVATION, x.x, p.alpha), unary_eval(ACTIVATION, x.y, p.alpha), unary_eval(ACTIVATION, x.z, p.alpha), unary_eval(ACTIVATION, x.w, p.alpha));
}

// Any N: scalar stores, each guarded.
@compute @workgroup_size(64)
fn matmul_subgroup(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let n = (wid.x * 64u + lid.x) * 4u;
    let acc = multiply(wid, n, lane);
    let m0 = wid.y * ROWS;
    let base_c = wid.z * p.m * p.n;
    for (var r = 0u; r < ROWS; r = r + 1u) {
        let m = m0 + r;
        let v = epilogue(acc[r], n);
        for (var i = 0u; i < 4u; i = i + 1u) {
            if (m < p.m && n + i < p.n) {
                c[base_c + m * p.n + n + i] = v[i];
            }
        }
    }
}

// N a multiple of 4: one vec4 store per row.
@compute @workgroup_size(64)
fn matmul_subgroup_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let n = (wid.x * 64u + lid.x) * 4u;
    let acc = multiply(wid, n, lane);
    let m0 = wid.y * ROWS;
    let row4 = p.n / 4u;
    let base_c4 = wid.z * p.m * row4;
    for (var r = 0u; r < ROWS; r = r + 1u) {
        let m = m0 + r;
        if (m < p.m && n < p.n) {
            c4[base_c4 + m * row4 + n / 4u] = epilogue(acc[r], n);
        }
    }
}
