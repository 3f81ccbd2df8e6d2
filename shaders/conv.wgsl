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
// The pixel (or tap) decomposition of the 4 rows and 4 columns an invocation stages is fixed
// across the K loop and computed once (`Lane`); each K step decomposes its k once (`Step`).
// Work: 2·M·GEMM-N·K FLOPs per pass.
//
// With channel groups (groups > 1; depthwise when groups = C), w is [O, C/g, KH, KW] and output
// channel o reads only the C/g input channels of its group o / (O/g). A group's product is
// narrow (C/g·KH·KW taps: 9 for a depthwise 3×3), far from filling the 64×64 tiles, so these
// kernels compute directly, reading only p.batch and p.alpha of the uniform (the shape is
// override constants):
// conv_grouped_forward:         one invocation per output element (n, o, oh, ow):
//                               act(Σ over the group's channels and the taps of x · w
//                               + bias[o]).
// conv_grouped_backward_input:  one invocation per input element (n, c, ih, iw): Σ over the
//                               group's O/g output channels and the taps whose output pixel
//                               reads it (ih + padding − kh·dilation a multiple of the stride,
//                               inside the output) of dy · w: a gather, no atomics.
// conv_grouped_backward_weight: one workgroup of 256 per weight element (o, c', kh, kw): the
//                               invocations stride over the N·OH·OW output pixels summing
//                               dy · x, then a tree reduction in workgroup memory (a fixed
//                               order, so the same sum on every run).
//                               Grids are 2-D past 65535 workgroups (workgroup_linear).

override HAS_BIAS: bool = false;
override ACTIVATION: u32 = 0u;

// Mirrors `ConvParams` in src/wgpu/conv.rs.
struct ConvParams {
    g: ConvGeometry,
    batch: u32,
    m: u32,
    n: u32,
    k: u32,
    k_split: u32,
    alpha: f32,
    _pad0: u32,
    _pad1: u32,
}

const MODE_FORWARD: u32 = 0u;
const MODE_BACKWARD_INPUT: u32 = 1u;
const MODE_BACKWARD_WEIGHT: u32 = 2u;

@group(0) @binding(0) var<uniform> p: ConvParams;
// forward: x, w, bias (w again when there is none; HAS_BIAS off), y.
// backward input: dy, w, dx. backward weight: dy, x, the splits' partial dw (grouped: dw).
@group(0) @binding(1) var<storage, read> src_a: array<f32>;
@group(0) @binding(2) var<storage, read> src_b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;

var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

// What staging needs of one of an invocation's 4 rows of A (or columns of B), fixed across
// the K loop: the element's base offset in its tensor and its pixel's origin (row, col);
// `valid` is false past the edge of C.
struct Lane {
    base: u32,
    row: i32,
    col: i32,
    valid: bool,
}

// What a K index decomposes into, shared by the 4 lanes at one K step: `outer` (a channel, or
// the image of an output pixel) and the offsets `dh`, `dw` (a tap times the dilation, or an
// output pixel's origin), `rest` (the tap index within the kernel, or the pixel's offset).
struct Step {
    outer: u32,
    dh: i32,
    dw: i32,
    rest: u32,
}

fn a_lane(mode: u32, m: u32) -> Lane {
    let pixels = p.g.out_height * p.g.out_width;
    if (mode == MODE_FORWARD) {
        // Output pixel m: image n, origin (oh·stride − padding, ow·stride − padding).
        let n = m / pixels;
        let oh = (m % pixels) / p.g.out_width;
        let ow = m % p.g.out_width;
        let base = n * p.g.in_channels * p.g.height * p.g.width;
        return Lane(base, i32(oh * p.g.stride) - i32(p.g.padding), i32(ow * p.g.stride) - i32(p.g.padding), m < p.m);
    }
    if (mode == MODE_BACKWARD_INPUT) {
        // Input pixel m: image n, (h + padding, w + padding).
        let plane = p.g.height * p.g.width;
        let n = m / plane;
        let h = (m % plane) / p.g.width;
        let w = m % p.g.width;
        let base = n * p.g.out_channels * pixels;
        return Lane(base, i32(h + p.g.padding), i32(w + p.g.padding), m < p.m);
    }
    // Backward weight: row m is output channel o.
    return Lane(m * pixels, 0, 0, m < p.m);
}

fn b_lane(mode: u32, j: u32) -> Lane {
    if (mode == MODE_BACKWARD_WEIGHT) {
        // Column j is tap (c, kh, kw): channel plane c, offset (kh, kw) · dilation.
        let taps = p.g.kernel_h * p.g.kernel_w;
        let kh = (j % taps) / p.g.kernel_w;
        let kw = j % p.g.kernel_w;
        return Lane((j / taps) * p.g.height * p.g.width, i32(kh * p.g.dilation), i32(kw * p.g.dilation), j < p.n);
    }
    // Forward: column j is output channel o; backward input: input channel c.
    return Lane(j, 0, 0, j < p.n);
}

fn k_step(mode: u32, k: u32) -> Step {
    let taps = p.g.kernel_h * p.g.kernel_w;
    if (mode == MODE_BACKWARD_WEIGHT) {
        // k is output pixel (n, oh, ow).
        let pixels = p.g.out_height * p.g.out_width;
        let oh = (k % pixels) / p.g.out_width;
        let ow = k % p.g.out_width;
        return Step(k / pixels, i32(oh * p.g.stride) - i32(p.g.padding), i32(ow * p.g.stride) - i32(p.g.padding), k % pixels);
    }
    // k is (channel, kh, kw): input channel c (forward) or output channel o (backward input).
    let r = k % taps;
    return Step(k / taps, i32((r / p.g.kernel_w) * p.g.dilation), i32((r % p.g.kernel_w) * p.g.dilation), r);
}

fn a_load(mode: u32, l: Lane, s: Step, k: u32) -> f32 {
    if (mode == MODE_FORWARD) {
        // x[n, c, row + kh·d, col + kw·d], zero outside the image.
        let ih = l.row + s.dh;
        let iw = l.col + s.dw;
        if (ih < 0 || iw < 0 || ih >= i32(p.g.height) || iw >= i32(p.g.width)) { return 0.0; }
        return src_a[l.base + (s.outer * p.g.height + u32(ih)) * p.g.width + u32(iw)];
    }
    if (mode == MODE_BACKWARD_INPUT) {
        // dy[n, o, oh, ow] for the output pixel whose tap reads this input pixel, if any.
        let th = l.row - s.dh;
        let tw = l.col - s.dw;
        if (th < 0 || tw < 0) { return 0.0; }
        let st = p.g.stride;
        if (u32(th) % st != 0u || u32(tw) % st != 0u) { return 0.0; }
        let oh = u32(th) / st;
        let ow = u32(tw) / st;
        if (oh >= p.g.out_height || ow >= p.g.out_width) { return 0.0; }
        return src_a[l.base + (s.outer * p.g.out_height + oh) * p.g.out_width + ow];
    }
    // Backward weight: dy[n, o, oh, ow].
    return src_a[s.outer * p.g.out_channels * p.g.out_height * p.g.out_width + l.base + s.rest];
}

fn b_load(mode: u32, l: Lane, s: Step, k: u32) -> f32 {
    if (mode == MODE_FORWARD) {
        return src_b[l.base * p.k + k];
    }
    if (mode == MODE_BACKWARD_INPUT) {
        // w[o, c, kh, kw].
        return src_b[(s.outer * p.g.in_channels + l.base) * p.g.kernel_h * p.g.kernel_w + s.rest];
    }
    // Backward weight: x[n, c, oh·stride − padding + kh·d, ow·stride − padding + kw·d].
    let ih = s.dh + l.row;
    let iw = s.dw + l.col;
    if (ih < 0 || iw < 0 || ih >= i32(p.g.height) || iw >= i32(p.g.width)) { return 0.0; }
    return src_b[s.outer * p.g.in_channels * p.g.height * p.g.width + l.base + u32(ih) * p.g.width + u32(iw)];
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
    // Slot t stages k-row t / 16 of each slice, rows (or columns) 4·(t % 16) .. + 3: their
    // pixel decompositions are computed once, here.
    let q = (t % 16u) * 4u;
    var rows: array<Lane, 4>;
    var cols: array<Lane, 4>;
    for (var i = 0u; i < 4u; i = i + 1u) {
        rows[i] = a_lane(mode, m0 + q + i);
        cols[i] = b_lane(mode, n0 + q + i);
    }
    var acc: array<vec4<f32>, 4>;
    for (var k0 = k_begin; k0 < k_end; k0 = k0 + 16u) {
        let kk = k0 + t / 16u;
        var av = vec4<f32>(0.0);
        var bv = vec4<f32>(0.0);
        if (kk < k_end) {
            let s = k_step(mode, kk);
            for (var i = 0u; i < 4u; i = i + 1u) {
                if (rows[i].valid) { av[i] = a_load(mode, rows[i], s, kk); }
                if (cols[i].valid) { bv[i] = b_load(mode, cols[i], s, kk); }
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
    let pixels = p.g.out_height * p.g.out_width;
    for (var r = 0u; r < 4u; r = r + 1u) {
        let m = wid.y * 64u + lid.y * 4u + r;
        if (m >= p.m) { return; }
        for (var c = 0u; c < 4u; c = c + 1u) {
            let o = wid.x * 64u + lid.x * 4u + c;
            if (o < p.n) {
                var v = acc[r][c];
                if (HAS_BIAS) { v = v + bias[o]; }
                y[(m / pixels * p.g.out_channels + o) * pixels + m % pixels] = unary_eval(ACTIVATION, v, p.alpha);
            }
        }
    }
}

@compute @workgroup_size(16, 16)
fn conv_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let acc = conv_gemm(MODE_BACKWARD_INPUT, wid, lid);
    let plane = p.g.height * p.g.width;
    for (var r = 0u; r < 4u; r = r + 1u) {
        let m = wid.y * 64u + lid.y * 4u + r;
        if (m >= p.m) { return; }
        for (var c = 0u; c < 4u; c = c + 1u) {
            let ch = wid.x * 64u + lid.x * 4u + c;
            if (ch < p.n) { grad[(m / plane * p.g.in_channels + ch) * plane + m % plane] = acc[r][c]; }
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

// The grouped kernels (see the header). Their shape is override constants (the uniform holds
// the same values; only the batch is read from it): the index arithmetic divides by constants
// and the tap loops have constant bounds, where a software driver runs each division by a
// runtime value one lane at a time.
override G_IN_CHANNELS: u32 = 1u;
override G_HEIGHT: u32 = 1u;
override G_WIDTH: u32 = 1u;
override G_OUT_CHANNELS: u32 = 1u;
override G_OUT_HEIGHT: u32 = 1u;
override G_OUT_WIDTH: u32 = 1u;
override G_KERNEL_H: u32 = 1u;
override G_KERNEL_W: u32 = 1u;
override G_STRIDE: u32 = 1u;
override G_PADDING: u32 = 0u;
override G_DILATION: u32 = 1u;
override G_GROUPS: u32 = 1u;

var<workgroup> partial: array<f32, 256>;

// The input coordinate that output coordinate `o` reads at tap `t`, or -1 outside `len`.
fn source(o: u32, t: u32, len: u32) -> i32 {
    let i = i32(o * G_STRIDE + t * G_DILATION) - i32(G_PADDING);
    if (i < 0 || i >= i32(len)) { return -1; }
    return i;
}

@compute @workgroup_size(256)
fn conv_grouped_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    let pixels = G_OUT_HEIGHT * G_OUT_WIDTH;
    if (i >= p.batch * G_OUT_CHANNELS * pixels) { return; }
    let n = i / (G_OUT_CHANNELS * pixels);
    let o = (i / pixels) % G_OUT_CHANNELS;
    let oh = (i % pixels) / G_OUT_WIDTH;
    let ow = i % G_OUT_WIDTH;
    let group_in = G_IN_CHANNELS / G_GROUPS;
    let first = o / (G_OUT_CHANNELS / G_GROUPS) * group_in;
    let taps = G_KERNEL_H * G_KERNEL_W;
    var sum = 0.0;
    for (var c = 0u; c < group_in; c = c + 1u) {
        let plane = (n * G_IN_CHANNELS + first + c) * G_HEIGHT * G_WIDTH;
        let weights = (o * group_in + c) * taps;
        for (var kh = 0u; kh < G_KERNEL_H; kh = kh + 1u) {
            let ih = source(oh, kh, G_HEIGHT);
            if (ih < 0) { continue; }
            for (var kw = 0u; kw < G_KERNEL_W; kw = kw + 1u) {
                let iw = source(ow, kw, G_WIDTH);
                if (iw < 0) { continue; }
                sum = fma(src_a[plane + u32(ih) * G_WIDTH + u32(iw)], src_b[weights + kh * G_KERNEL_W + kw], sum);
            }
        }
    }
    if (HAS_BIAS) { sum = sum + bias[o]; }
    y[i] = unary_eval(ACTIVATION, sum, p.alpha);
}

// The output coordinate whose tap `t` reads input coordinate `i`, or -1 when none does.
fn reader(i: u32, t: u32, out_len: u32) -> i32 {
    let shifted = i32(i + G_PADDING) - i32(t * G_DILATION);
    if (shifted < 0 || u32(shifted) % G_STRIDE != 0u) { return -1; }
    let o = u32(shifted) / G_STRIDE;
    if (o >= out_len) { return -1; }
    return i32(o);
}

@compute @workgroup_size(256)
fn conv_grouped_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    let plane = G_HEIGHT * G_WIDTH;
    if (i >= p.batch * G_IN_CHANNELS * plane) { return; }
    let n = i / (G_IN_CHANNELS * plane);
    let c = (i / plane) % G_IN_CHANNELS;
    let ih = (i % plane) / G_WIDTH;
    let iw = i % G_WIDTH;
    let group_in = G_IN_CHANNELS / G_GROUPS;
    let group_out = G_OUT_CHANNELS / G_GROUPS;
    let first = c / group_in * group_out;
    let pixels = G_OUT_HEIGHT * G_OUT_WIDTH;
    let taps = G_KERNEL_H * G_KERNEL_W;
    var sum = 0.0;
    for (var j = 0u; j < group_out; j = j + 1u) {
        let o = first + j;
        let out_plane = (n * G_OUT_CHANNELS + o) * pixels;
        let weights = (o * group_in + c % group_in) * taps;
        for (var kh = 0u; kh < G_KERNEL_H; kh = kh + 1u) {
            let oh = reader(ih, kh, G_OUT_HEIGHT);
            if (oh < 0) { continue; }
            for (var kw = 0u; kw < G_KERNEL_W; kw = kw + 1u) {
                let ow = reader(iw, kw, G_OUT_WIDTH);
                if (ow < 0) { continue; }
                sum = fma(src_a[out_plane + u32(oh) * G_OUT_WIDTH + u32(ow)], src_b[weights + kh * G_KERNEL_W + kw], sum);
            }
        }
    }
    grad[i] = sum;
}

@compute @workgroup_size(256)
fn conv_grouped_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = workgroup_linear(wid, num);
    let group_in = G_IN_CHANNELS / G_GROUPS;
    let taps = G_KERNEL_H * G_KERNEL_W;
    if (e >= G_OUT_CHANNELS * group_in * taps) { return; }
    let o = e / (group_in * taps);
    let c = o / (G_OUT_CHANNELS / G_GROUPS) * group_in + (e / taps) % group_in;
    let kh = (e % taps) / G_KERNEL_W;
    let kw = e % G_KERNEL_W;
    let pixels = G_OUT_HEIGHT * G_OUT_WIDTH;
    var sum = 0.0;
    for (var k = lid.x; k < p.batch * pixels; k = k + 256u) {
        let n = k / pixels;
        let oh = (k % pixels) / G_OUT_WIDTH;
        let ow = k % G_OUT_WIDTH;
        let ih = source(oh, kh, G_HEIGHT);
        let iw = source(ow, kw, G_WIDTH);
        if (ih < 0 || iw < 0) { continue; }
        let x = src_b[((n * G_IN_CHANNELS + c) * G_HEIGHT + u32(ih)) * G_WIDTH + u32(iw)];
        sum = fma(src_a[(n * G_OUT_CHANNELS + o) * pixels + k % pixels], x, sum);
    }
    partial[lid.x] = sum;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half = half / 2u) {
        if (lid.x < half) { partial[lid.x] = partial[lid.x] + partial[lid.x + half]; }
        workgroupBarrier();
    }
    if (lid.x == 0u) { grad[e] = partial[0]; }
}
