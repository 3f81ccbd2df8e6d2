// conv.wgsl: 2-D convolution, NCHW, f32, as implicit GEMM: C = A · B where A and B are read
// straight from the tensors (no im2col buffer) and each entry of C is stored where the
// convolution puts it. x [N, C, H, W], w [O, C, KH, KW], y [N, O, OH, OW]; oh·stride + kh·
// dilation − padding is the input row tap kh of output row oh reads (outside: zero padding).
//
// conv_forward:         M = N·OH·OW (output pixels), GEMM-N = O, K = C·KH·KW;
//                       A(m, k) = x at pixel m's tap k, B(k, o) = w[o, k];
//                       y = act(A·B + bias[o]) (HAS_BIAS, ACTIVATION as in matmul.wgsl).
// conv_backward_input:  the transposed convolution. M = N·H·W (input pixels), GEMM-N = C,
//                       K = O·KH·KW; A(m, (o, kh, kw)) = dy[n, o, oh, ow] for the output pixel
//                       whose tap (kh, kw) reads input pixel m (zero when none does: a stride
//                       that does not divide, or a pixel past the edge), B((o, kh, kw), c) =
//                       w[o, c, kh, kw]; dx = A·B.
// conv_backward_weight: M = O, GEMM-N = C·KH·KW, K = N·OH·OW split into workgroup layers of
//                       `k_split` (wid.z = the split); A(o, k) = dy at output pixel k,
//                       B(k, j) = x at pixel k's tap j; each split writes its partial sums to
//                       its own [O, C·KH·KW] slice and the host sums the slices (reduce.wgsl).
//
// Mapping (the tiled matmul's tiling): a workgroup of 16×16 invocations computes a 64×64 tile
// of C, each invocation a 4×4 block in registers; K is walked 16 at a time, each step staging
// a 64×16 slice of A and a 16×64 slice of B in workgroup memory (one vec4 of each per
// invocation, gathered element by element from the tensors), then 16 rank-1 updates of 4×4.
// Work: 2·M·GEMM-N·K FLOPs per pass.

override HAS_BIAS: bool = false;
override ACTIVATION: u32 = 0u;

// Mirrors `ConvParams` in src/wgpu/conv.rs.
struct ConvParams {
    batch: u32,
    in_channels: u32,
    height: u32,
    width: u32,
    out_channels: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride: u32,
    padding: u32,
    dilation: u32,
    out_height: u32,
    out_width: u32,
    m: u32,
    n: u32,
    k: u32,
    k_split: u32,
    alpha: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const MODE_FORWARD: u32 = 0u;
const MODE_BACKWARD_INPUT: u32 = 1u;
const MODE_BACKWARD_WEIGHT: u32 = 2u;

@group(0) @binding(0) var<uniform> p: ConvParams;
// forward: x, w, bias (w again when there is none; HAS_BIAS off), y.
// backward input: dy, w, dx. backward weight: dy, x, the splits' partial dw.
@group(0) @binding(1) var<storage, read> src_a: array<f32>;
@group(0) @binding(2) var<storage, read> src_b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;

var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

// x[n, c, row, col] with zero padding (row and col may be negative or past the edge).
fn x_at(x_is_a: bool, n: u32, c: u32, row: i32, col: i32) -> f32 {
    if (row < 0 || col < 0 || row >= i32(p.height) || col >= i32(p.width)) { return 0.0; }
    let i = ((n * p.in_channels + c) * p.height + u32(row)) * p.width + u32(col);
    if (x_is_a) { return src_a[i]; }
    return src_b[i];
}

// The input pixel (row, col) tap (kh, kw) of output pixel (oh, ow) reads.
fn tap(oh: u32, ow: u32, kh: u32, kw: u32) -> vec2<i32> {
    return vec2<i32>(
        i32(oh * p.stride + kh * p.dilation) - i32(p.padding),
        i32(ow * p.stride + kw * p.dilation) - i32(p.padding),
    );
}

fn a_at(mode: u32, m: u32, k: u32) -> f32 {
    let taps = p.kernel_h * p.kernel_w;
    let pixels = p.out_height * p.out_width;
    if (mode == MODE_FORWARD) {
        let n = m / pixels;
        let oh = (m % pixels) / p.out_width;
        let ow = m % p.out_width;
        let c = k / taps;
        let t = tap(oh, ow, (k % taps) / p.kernel_w, k % p.kernel_w);
        return x_at(true, n, c, t.x, t.y);
    }
    if (mode == MODE_BACKWARD_INPUT) {
        let plane = p.height * p.width;
        let n = m / plane;
        let h = (m % plane) / p.width;
        let w = m % p.width;
        let o = k / taps;
        let kh = (k % taps) / p.kernel_w;
        let kw = k % p.kernel_w;
        let th = i32(h + p.padding) - i32(kh * p.dilation);
        let tw = i32(w + p.padding) - i32(kw * p.dilation);
        if (th < 0 || tw < 0) { return 0.0; }
        let s = p.stride;
        if (u32(th) % s != 0u || u32(tw) % s != 0u) { return 0.0; }
        let oh = u32(th) / s;
        let ow = u32(tw) / s;
        if (oh >= p.out_height || ow >= p.out_width) { return 0.0; }
        return src_a[((n * p.out_channels + o) * p.out_height + oh) * p.out_width + ow];
    }
    // Backward weight: A(o, k) = dy[n, o, oh, ow] for output pixel k.
    let n = k / pixels;
    let oh = (k % pixels) / p.out_width;
    let ow = k % p.out_width;
    return src_a[((n * p.out_channels + m) * p.out_height + oh) * p.out_width + ow];
}

fn b_at(mode: u32, k: u32, j: u32) -> f32 {
    let taps = p.kernel_h * p.kernel_w;
    if (mode == MODE_FORWARD) {
        return src_b[j * p.k + k];
    }
    if (mode == MODE_BACKWARD_INPUT) {
        let o = k / taps;
        return src_b[(o * p.in_channels + j) * taps + k % taps];
    }
    let pixels = p.out_height * p.out_width;
    let n = k / pixels;
    let oh = (k % pixels) / p.out_width;
    let ow = k % p.out_width;
    let c = j / taps;
    let t = tap(oh, ow, (j % taps) / p.kernel_w, j % p.kernel_w);
    return x_at(false, n, c, t.x, t.y);
}

// The 4×4 block of C this invocation owns (rows 4·lid.y.., columns 4·lid.x.. of the tile).
fn conv_gemm(mode: u32, wid: vec3<u32>, lid: vec3<u32>) -> array<vec4<f32>, 4> {
    let t = lid.y * 16u + lid.x;
    let m0 = wid.y * 64u;
    let n0 = wid.x * 64u;
    var k_begin = 0u;
    var k_end = p.k;
    if (mode == MODE_BACKWARD_WEIGHT) {
        k_begin = wid.z * p.k_split;
        k_end = min(k_begin + p.k_split, p.k);
    }
    var acc: array<vec4<f32>, 4>;
    for (var k0 = k_begin; k0 < k_end; k0 = k0 + 16u) {
        // Slot t: k-row t / 16 of the slice, rows (or columns) 4·(t % 16) .. + 3.
        let kk = k0 + t / 16u;
        let q = (t % 16u) * 4u;
        var av = vec4<f32>(0.0);
        var bv = vec4<f32>(0.0);
        if (kk < k_end) {
            for (var i = 0u; i < 4u; i = i + 1u) {
                if (m0 + q + i < p.m) { av[i] = a_at(mode, m0 + q + i, kk); }
                if (n0 + q + i < p.n) { bv[i] = b_at(mode, kk, n0 + q + i); }
            }
        }
        tile_a[t] = av;
        tile_b[t] = bv;
        workgroupBarrier();
        for (var s = 0u; s < 16u; s = s + 1u) {
            let a4 = tile_a[s * 16u + lid.y];
            let b4 = tile_b[s * 16u + lid.x];
            acc[0] = fma(vec4<f32>(a4.x), b4, acc[0]);
            acc[1] = fma(vec4<f32>(a4.y), b4, acc[1]);
            acc[2] = fma(vec4<f32>(a4.z), b4, acc[2]);
            acc[3] = fma(vec4<f32>(a4.w), b4, acc[3]);
        }
        workgroupBarrier();
    }
    return acc;
}

@compute @workgroup_size(16, 16)
fn conv_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let acc = conv_gemm(MODE_FORWARD, wid, lid);
    let pixels = p.out_height * p.out_width;
    for (var r = 0u; r < 4u; r = r + 1u) {
        let m = wid.y * 64u + lid.y * 4u + r;
        if (m >= p.m) { return; }
        for (var c = 0u; c < 4u; c = c + 1u) {
            let o = wid.x * 64u + lid.x * 4u + c;
            if (o < p.n) {
                var v = acc[r][c];
                if (HAS_BIAS) { v = v + bias[o]; }
                y[(m / pixels * p.out_channels + o) * pixels + m % pixels] = unary_eval(ACTIVATION, v, p.alpha);
            }
        }
    }
}

@compute @workgroup_size(16, 16)
fn conv_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let acc = conv_gemm(MODE_BACKWARD_INPUT, wid, lid);
    let plane = p.height * p.width;
    for (var r = 0u; r < 4u; r = r + 1u) {
        let m = wid.y * 64u + lid.y * 4u + r;
        if (m >= p.m) { return; }
        for (var c = 0u; c < 4u; c = c + 1u) {
            let ch = wid.x * 64u + lid.x * 4u + c;
            if (ch < p.n) { grad[(m / plane * p.in_channels + ch) * plane + m % plane] = acc[r][c]; }
        }
    }
}

@compute @workgroup_size(16, 16)
fn conv_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let acc = conv_gemm(MODE_BACKWARD_WEIGHT, wid, lid);
    for (var r = 0u; r < 4u; r = r + 1u) {
        let o = wid.y * 64u + lid.y * 4u + r;
        if (o >= p.m) { return; }
        for (var c = 0u; c < 4u; c = c + 1u) {
            let j = wid.x * 64u + lid.x * 4u + c;
            if (j < p.n) { grad[(wid.z * p.m + o) * p.n + j] = acc[r][c]; }
        }
    }
}
