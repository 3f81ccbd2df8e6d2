// matmul.wgsl: C[b] = act(op(A[b]) · op(B[b]) + bias), f32, register- and workgroup-tiled.
//
// Layout: A is [M, K] row-major, or [K, M] when TRANS_A (read transposed, never copied);
// B is [K, N], or [N, K] when TRANS_B. C is [M, N] row-major. Matrices of a batch sit
// `batch_stride_a/b` elements apart (0 broadcasts one matrix); C's are M·N apart. bias is [N]
// (HAS_BIAS); ACTIVATION is a UnaryOp code applied last (0 = identity).
// Mapping: a workgroup of SIDE×SIDE invocations computes a TILE×TILE tile of C, TILE =
// 4·BLOCKS·SIDE; each invocation owns BLOCKS×BLOCKS blocks of 4×4 outputs held in registers
// (4·BLOCKS² vec4 accumulators), the blocks SIDE·4 rows and columns apart so neighbouring
// invocations read neighbouring workgroup-memory slots. The host picks one of three shapes
// (matmul.rs `TileShape`): 16×16 invocations of one block (64×64 tile, the default),
// 16×16 of 2×2 blocks (128×128, for large products) and 8×8 of one block (32×32, for small
// outputs). K is walked in steps of TILE_K = 1024 / TILE: each step stages a TILE×TILE_K slice
// of A and a TILE_K×TILE slice of B in workgroup memory (256 vec4 slots each, k-major, so
// every shape fills the same arrays), 256 / SIDE² vec4 loads per invocation per operand; the
// inner loop reads BLOCKS vec4s of A and of B and does 16·BLOCKS² FMAs. Edges (M, N, K not
// multiples of the tile) load zeros and skip out-of-range stores.
// matmul_tiled_vec4 is the same kernel with vec4 global loads; the host picks it when each
// operand's contiguous dimension is a multiple of 4.
// Work: 2·M·N·K FLOPs; each A element is loaded N/TILE times and each B element M/TILE times.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACTIVATION: u32 = 0u;
// Invocations per workgroup side, and 4×4 output blocks per invocation per side.
override SIDE: u32 = 16u;
override BLOCKS: u32 = 1u;

override TILE: u32 = 4u * BLOCKS * SIDE;
override TILE_K: u32 = 1024u / TILE;
// vec4 slots per k-row of a staged tile, and per run of 4 consecutive k.
override ROW_SLOTS: u32 = TILE / 4u;
override K_SLOTS: u32 = TILE_K / 4u;
override INVOCATIONS: u32 = SIDE * SIDE;

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// tile_a[k * ROW_SLOTS + m / 4][m % 4] = A(m, k) within the tile; tile_b likewise with n.
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

// Slot q (0..256) of a staged A tile holds four values along A's contiguous dimension:
// A(m, k..k+3) with m = q / K_SLOTS, k = (q % K_SLOTS) · 4, or, transposed, A(m..m+3, k) with
// k = q / ROW_SLOTS, m = (q % ROW_SLOTS) · 4. These are their global coordinates (m, k).
fn a_coords(q: u32, m0: u32, k0: u32) -> vec2<u32> {
    if (TRANS_A) { return vec2<u32>(m0 + (q % ROW_SLOTS) * 4u, k0 + q / ROW_SLOTS); }
    return vec2<u32>(m0 + q / K_SLOTS, k0 + (q % K_SLOTS) * 4u);
}

// Likewise for B: B(k, n..n+3) with k = q / ROW_SLOTS, n = (q % ROW_SLOTS) · 4, or,
// transposed, B(k..k+3, n) with n = q / K_SLOTS, k = (q % K_SLOTS) · 4. Returns (k, n).
fn b_coords(q: u32, k0: u32, n0: u32) -> vec2<u32> {
    if (TRANS_B) { return vec2<u32>(k0 + (q % K_SLOTS) * 4u, n0 + q / K_SLOTS); }
    return vec2<u32>(k0 + q / ROW_SLOTS, n0 + (q % ROW_SLOTS) * 4u);
}

// Stores slot q's four values k-major: transposed A already is; otherwise they scatter.
fn stage_a(q: u32, v: vec4<f32>) {
    if (TRANS_A) {
        tile_a[q] = v;
    } else {
        let m = q / K_SLOTS;
        let k = (q % K_SLOTS) * 4u;
        for (var i = 0u; i < 4u; i = i + 1u) {
            tile_a[(k + i) * ROW_SLOTS + m / 4u][m % 4u] = v[i];
        }
    }
}

fn stage_b(q: u32, v: vec4<f32>) {
    if (TRANS_B) {
        let n = q / K_SLOTS;
        let k = (q % K_SLOTS) * 4u;
        for (var i = 0u; i < 4u; i = i + 1u) {
            tile_b[(k + i) * ROW_SLOTS + n / 4u][n % 4u] = v[i];
        }
    } else {
        tile_b[q] = v;
    }
}

// Accumulator (i·4 + r)·BLOCKS + j holds row r of block row i, block column j.
fn multiply_staged(tx: u32, ty: u32, acc: ptr<function, array<vec4<f32>, 16>>) {
    for (var kk = 0u; kk < TILE_K; kk = kk + 1u) {
        var bv: array<vec4<f32>, 2>;
        for (var j = 0u; j < BLOCKS; j = j + 1u) {
            bv[j] = tile_b[kk * ROW_SLOTS + tx + j * SIDE];
        }
        for (var i = 0u; i < BLOCKS; i = i + 1u) {
            let av = tile_a[kk * ROW_SLOTS + ty + i * SIDE];
            for (var j = 0u; j < BLOCKS; j = j + 1u) {
                let o = i * 4u * BLOCKS + j;
                (*acc)[o] = fma(vec4<f32>(av.x), bv[j], (*acc)[o]);
                (*acc)[o + BLOCKS] = fma(vec4<f32>(av.y), bv[j], (*acc)[o + BLOCKS]);
                (*acc)[o + 2u * BLOCKS] = fma(vec4<f32>(av.z), bv[j], (*acc)[o + 2u * BLOCKS]);
                (*acc)[o + 3u * BLOCKS] = fma(vec4<f32>(av.w), bv[j], (*acc)[o + 3u * BLOCKS]);
            }
        }
    }
}

fn store_outputs(batch: u32, m0: u32, n0: u32, tx: u32, ty: u32, acc: ptr<function, array<vec4<f32>, 16>>) {
    let base = batch * p.m * p.n;
    for (var i = 0u; i < BLOCKS; i = i + 1u) {
        for (var r = 0u; r < 4u; r = r + 1u) {
            let m = m0 + (ty + i * SIDE) * 4u + r;
            if (m >= p.m) { return; }
            for (var j = 0u; j < BLOCKS; j = j + 1u) {
                for (var col = 0u; col < 4u; col = col + 1u) {
                    let n = n0 + (tx + j * SIDE) * 4u + col;
                    if (n < p.n) {
                        var v = (*acc)[(i * 4u + r) * BLOCKS + j][col];
                        if (HAS_BIAS) { v = v + bias[n]; }
                        c[base + m * p.n + n] = unary_eval(ACTIVATION, v, p.alpha);
                    }
                }
            }
        }
    }
}

@compute @workgroup_size(SIDE, SIDE)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.y * SIDE + lid.x;
    let m0 = wid.y * TILE;
    let n0 = wid.x * TILE;
    let base_a = wid.z * p.batch_stride_a;
    let base_b = wid.z * p.batch_stride_b;
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < p.k; k0 = k0 + TILE_K) {
        for (var q = t; q < 256u; q = q + INVOCATIONS) {
            let ac = a_coords(q, m0, k0);
            stage_a(q, load_a_scalar(base_a, ac.x, ac.y, !TRANS_A));
            let bc = b_coords(q, k0, n0);
            stage_b(q, load_b_scalar(base_b, bc.x, bc.y, TRANS_B));
        }
        workgroupBarrier();
        multiply_staged(lid.x, lid.y, &acc);
        workgroupBarrier();
    }
    store_outputs(wid.z, m0, n0, lid.x, lid.y, &acc);
}

@compute @workgroup_size(SIDE, SIDE)
fn matmul_tiled_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.y * SIDE + lid.x;
    let m0 = wid.y * TILE;
    let n0 = wid.x * TILE;
    let base_a = wid.z * p.batch_stride_a;
    let base_b = wid.z * p.batch_stride_b;
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < p.k; k0 = k0 + TILE_K) {
        // The contiguous dimension of each operand is a multiple of 4, so a vec4 is either
        // wholly inside the matrix or wholly outside.
        for (var q = t; q < 256u; q = q + INVOCATIONS) {
            let ac = a_coords(q, m0, k0);
            var av = vec4<f32>(0.0);
            if (ac.x < p.m && ac.y < p.k) {
                if (TRANS_A) { av = a4[(base_a + ac.y * p.m + ac.x) / 4u]; } else { av = a4[(base_a + ac.x * p.k + ac.y) / 4u]; }
            }
            stage_a(q, av);
            let bc = b_coords(q, k0, n0);
            var bv = vec4<f32>(0.0);
            if (bc.x < p.k && bc.y < p.n) {
                if (TRANS_B) { bv = b4[(base_b + bc.y * p.k + bc.x) / 4u]; } else { bv = b4[(base_b + bc.x * p.n + bc.y) / 4u]; }
            }
            stage_b(q, bv);
        }
        workgroupBarrier();
        multiply_staged(lid.x, lid.y, &acc);
        workgroupBarrier();
    }
    store_outputs(wid.z, m0, n0, lid.x, lid.y, &acc);
}
