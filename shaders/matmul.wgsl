// matmul.wgsl: C[b] = act(op(A[b]) · op(B[b]) + bias), f32, register- and workgroup-tiled.
//
// Layout: A is [M, K] row-major, or [K, M] when TRANS_A (read transposed, never copied);
// B is [K, N], or [N, K] when TRANS_B. C is [M, N] row-major. Matrices of a batch sit
// `batch_stride_a/b` elements apart (0 broadcasts one matrix); C's are M·N apart. bias is [N]
// (HAS_BIAS); ACTIVATION is a UnaryOp code applied last (0 = identity).
// Mapping: a workgroup of 16×16 invocations computes a 64×64 tile of C; each invocation owns
// a 4×4 block of outputs held in registers (4 vec4 accumulators). The K dimension is walked in
// steps of 16: each step stages a 64×16 slice of A and a 16×64 slice of B in workgroup memory
// (4 loads per invocation per operand), stored k-major so the inner loop reads one vec4 of A
// and one vec4 of B and does 16 FMAs. Edges (M, N, K not multiples of the tile) load zeros
// and skip out-of-range stores.
// matmul_tiled_vec4 is the same kernel with vec4 global loads; the host picks it when each
// operand's contiguous dimension is a multiple of 4.
// Work: 2·M·N·K FLOPs; each A element is loaded N/64 times and each B element M/64 times.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACTIVATION: u32 = 0u;

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// tile_a[k * 16 + m / 4][m % 4] = A(m, k) within the tile; tile_b likewise with n.
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

// A(m, k0..k0+3) or, transposed, A(m0..m0+3, k): four scalar loads with bounds checks.
fn load_a_scalar(base: u32, row: u32, col: u32, along_k: bool) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i = i + 1u) {
        var m = row;
        var kk = col;
        if (along_k) { kk = col + i; } else { m = row + i; }
        if (m < p.m && kk < p.k) {
            if (TRANS_A) { v[i] = a[base + kk * p.m + m]; } else { v[i] = a[base + m * p.k + kk]; }
        }
    }
    return v;
}

fn load_b_scalar(base: u32, row: u32, col: u32, along_k: bool) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i = i + 1u) {
        var kk = row;
        var n = col;
        if (along_k) { kk = row + i; } else { n = col + i; }
        if (kk < p.k && n < p.n) {
            if (TRANS_B) { v[i] = b[base + n * p.k + kk]; } else { v[i] = b[base + kk * p.n + n]; }
        }
    }
    return v;
}

// Stores one thread's staged values. Not transposed A: thread t holds A(m, k..k+3) with
// m = t / 4, k = (t % 4) · 4; transposed: A(m..m+3, k) with k = t / 16, m = (t % 16) · 4.
fn stage_a(t: u32, v: vec4<f32>) {
    if (TRANS_A) {
        tile_a[(t / 16u) * 16u + (t % 16u)] = v;
    } else {
        let m = t / 4u;
        let k = (t % 4u) * 4u;
        for (var i = 0u; i < 4u; i = i + 1u) {
            tile_a[(k + i) * 16u + m / 4u][m % 4u] = v[i];
        }
    }
}

// Not transposed B: thread t holds B(k, n..n+3) with k = t / 16, n = (t % 16) · 4;
// transposed: B(k..k+3, n) with n = t / 4, k = (t % 4) · 4.
fn stage_b(t: u32, v: vec4<f32>) {
    if (TRANS_B) {
        let n = t / 4u;
        let k = (t % 4u) * 4u;
        for (var i = 0u; i < 4u; i = i + 1u) {
            tile_b[(k + i) * 16u + n / 4u][n % 4u] = v[i];
        }
    } else {
        tile_b[(t / 16u) * 16u + (t % 16u)] = v;
    }
}

// Global coordinates (row, col) of the 4-vector thread t loads for A at tile origin (m0, k0).
fn a_coords(t: u32, m0: u32, k0: u32) -> vec2<u32> {
    if (TRANS_A) { return vec2<u32>(m0 + (t % 16u) * 4u, k0 + t / 16u); }
    return vec2<u32>(m0 + t / 4u, k0 + (t % 4u) * 4u);
}

// Global coordinates (k, n) of the 4-vector thread t loads for B at tile origin (k0, n0).
fn b_coords(t: u32, k0: u32, n0: u32) -> vec2<u32> {
    if (TRANS_B) { return vec2<u32>(k0 + (t % 4u) * 4u, n0 + t / 4u); }
    return vec2<u32>(k0 + t / 16u, n0 + (t % 16u) * 4u);
}

fn multiply_staged(tx: u32, ty: u32, acc: ptr<function, array<vec4<f32>, 4>>) {
    for (var kk = 0u; kk < TILE_K; kk = kk + 1u) {
        let av = tile_a[kk * 16u + ty];
        let bv = tile_b[kk * 16u + tx];
        (*acc)[0] = fma(vec4<f32>(av.x), bv, (*acc)[0]);
        (*acc)[1] = fma(vec4<f32>(av.y), bv, (*acc)[1]);
        (*acc)[2] = fma(vec4<f32>(av.z), bv, (*acc)[2]);
        (*acc)[3] = fma(vec4<f32>(av.w), bv, (*acc)[3]);
    }
}

fn store_outputs(batch: u32, m0: u32, n0: u32, tx: u32, ty: u32, acc: ptr<function, array<vec4<f32>, 4>>) {
    let base = batch * p.m * p.n;
    for (var i = 0u; i < 4u; i = i + 1u) {
        let m = m0 + ty * 4u + i;
        if (m >= p.m) { break; }
        for (var j = 0u; j < 4u; j = j + 1u) {
            let n = n0 + tx * 4u + j;
            if (n < p.n) {
                var v = (*acc)[i][j];
                if (HAS_BIAS) { v = v + bias[n]; }
                c[base + m * p.n + n] = unary_eval(ACTIVATION, v, p.alpha);
            }
        }
    }
}

@compute @workgroup_size(16, 16)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.y * 16u + lid.x;
    let m0 = wid.y * TILE;
    let n0 = wid.x * TILE;
    let base_a = wid.z * p.batch_stride_a;
    let base_b = wid.z * p.batch_stride_b;
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var k0 = 0u; k0 < p.k; k0 = k0 + TILE_K) {
        let ac = a_coords(t, m0, k0);
        stage_a(t, load_a_scalar(base_a, ac.x, ac.y, !TRANS_A));
        let bc = b_coords(t, k0, n0);
        stage_b(t, load_b_scalar(base_b, bc.x, bc.y, TRANS_B));
        workgroupBarrier();
        multiply_staged(lid.x, lid.y, &acc);
        workgroupBarrier();
    }
    store_outputs(wid.z, m0, n0, lid.x, lid.y, &acc);
}

@compute @workgroup_size(16, 16)
fn matmul_tiled_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.y * 16u + lid.x;
    let m0 = wid.y * TILE;
    let n0 = wid.x * TILE;
    let base_a = wid.z * p.batch_stride_a;
    let base_b = wid.z * p.batch_stride_b;
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var k0 = 0u; k0 < p.k; k0 = k0 + TILE_K) {
        // The contiguous dimension of each operand is a multiple of 4, so a vec4 is either
        // wholly inside the matrix or wholly outside.
        let ac = a_coords(t, m0, k0);
        var av = vec4<f32>(0.0);
        if (ac.x < p.m && ac.y < p.k) {
            if (TRANS_A) { av = a4[(base_a + ac.y * p.m + ac.x) / 4u]; } else { av = a4[(base_a + ac.x * p.k + ac.y) / 4u]; }
        }
        stage_a(t, av);
        let bc = b_coords(t, k0, n0);
        var bv = vec4<f32>(0.0);
        if (bc.x < p.k && bc.y < p.n) {
            if (TRANS_B) { bv = b4[(base_b + bc.y * p.k + bc.x) / 4u]; } else { bv = b4[(base_b + bc.x * p.n + bc.y) / 4u]; }
        }
        stage_b(t, bv);
        workgroupBarrier();
        multiply_staged(lid.x, lid.y, &acc);
        workgroupBarrier();
    }
    store_outputs(wid.z, m0, n0, lid.x, lid.y, &acc);
}
