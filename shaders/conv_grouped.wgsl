// conv_grouped.wgsl: 2-D convolution with channel groups (groups > 1; depthwise when groups
// equals the input channels), NCHW, f32, computed directly. x [N, C, H, W], w [O, C/g, KH, KW],
// y [N, O, OH, OW] (the geometry in `p.g`, common.wgsl's ConvGeometry); output channel o reads
// only the C/g input channels of its group o / (O/g). A group's product is narrow (C/g·KH·KW
// taps: 9 for a depthwise 3×3), far from filling the implicit GEMM's 64×64 tiles, so each
// invocation sums its taps in a loop. Output pixel (oh, ow) tap (kh, kw) reads input pixel
// (oh·stride + kh·dilation − padding, ...), zero outside the image.
//
// conv_grouped_forward:         one invocation per output element (n, o, oh, ow):
//                               act(Σ over the group's channels and the taps of x · w
//                               + bias[o]) (HAS_BIAS, ACTIVATION as in conv.wgsl).
// conv_grouped_backward_input:  one invocation per input element (n, c, ih, iw): Σ over the
//                               group's O/g output channels and the taps whose output pixel
//                               reads it (ih + padding − kh·dilation a multiple of the stride,
//                               inside the output) of dy · w: a gather, no atomics.
// conv_grouped_backward_weight: one workgroup of 256 per weight element (o, c', kh, kw): the
//                               invocations stride over the N·OH·OW output pixels summing
//                               dy · x, then a tree reduction in workgroup memory (a fixed
//                               order, so the same sum on every run).
// Grids are 2-D past 65535 workgroups (workgroup_linear).

override HAS_BIAS: bool = false;
override ACTIVATION: u32 = 0u;

// Mirrors `GroupedParams` in src/wgpu/conv_grouped.rs.
struct GroupedParams {
    g: ConvGeometry,
    batch: u32,
    alpha: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: GroupedParams;
// forward: x, w, bias (w again when there is none; HAS_BIAS off), y.
// backward input: dy, w, dx. backward weight: x, dy, dw.
@group(0) @binding(1) var<storage, read> src_a: array<f32>;
@group(0) @binding(2) var<storage, read> src_b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;

var<workgroup> partial: array<f32, 256>;

// The input coordinate that output coordinate `o` reads at tap `t`, or -1 outside `len`.
fn source(o: u32, t: u32, len: u32) -> i32 {
    let i = i32(o * p.g.stride + t * p.g.dilation) - i32(p.g.padding);
    if (i < 0 || i >= i32(len)) { return -1; }
    return i;
}

@compute @workgroup_size(256)
fn conv_grouped_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    let pixels = p.g.out_height * p.g.out_width;
    if (i >= p.batch * p.g.out_channels * pixels) { return; }
    let n = i / (p.g.out_channels * pixels);
    let o = (i / pixels) % p.g.out_channels;
    let oh = (i % pixels) / p.g.out_width;
    let ow = i % p.g.out_width;
    let group_in = p.g.in_channels / p.g.groups;
    let first = o / (p.g.out_channels / p.g.groups) * group_in;
    let taps = p.g.kernel_h * p.g.kernel_w;
    var sum = 0.0;
    for (var c = 0u; c < group_in; c = c + 1u) {
        let plane = (n * p.g.in_channels + first + c) * p.g.height * p.g.width;
        let weights = (o * group_in + c) * taps;
        for (var kh = 0u; kh < p.g.kernel_h; kh = kh + 1u) {
            let ih = source(oh, kh, p.g.height);
            if (ih < 0) { continue; }
            for (var kw = 0u; kw < p.g.kernel_w; kw = kw + 1u) {
                let iw = source(ow, kw, p.g.width);
                if (iw < 0) { continue; }
                sum = fma(src_a[plane + u32(ih) * p.g.width + u32(iw)], src_b[weights + kh * p.g.kernel_w + kw], sum);
            }
        }
    }
    if (HAS_BIAS) { sum = sum + bias[o]; }
    y[i] = unary_eval(ACTIVATION, sum, p.alpha);
}

// The output coordinate whose tap `t` reads input coordinate `i`, or -1 when none does.
fn reader(i: u32, t: u32, out_len: u32) -> i32 {
    let shifted = i32(i + p.g.padding) - i32(t * p.g.dilation);
    if (shifted < 0 || u32(shifted) % p.g.stride != 0u) { return -1; }
    let o = u32(shifted) / p.g.stride;
    if (o >= out_len) { return -1; }
    return i32(o);
}

@compute @workgroup_size(256)
fn conv_grouped_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    let plane = p.g.height * p.g.width;
    if (i >= p.batch * p.g.in_channels * plane) { return; }
    let n = i / (p.g.in_channels * plane);
    let c = (i / plane) % p.g.in_channels;
    let ih = (i % plane) / p.g.width;
    let iw = i % p.g.width;
    let group_in = p.g.in_channels / p.g.groups;
    let group_out = p.g.out_channels / p.g.groups;
    let first = c / group_in * group_out;
    let pixels = p.g.out_height * p.g.out_width;
    let taps = p.g.kernel_h * p.g.kernel_w;
    var sum = 0.0;
    for (var j = 0u; j < group_out; j = j + 1u) {
        let o = first + j;
        let out_plane = (n * p.g.out_channels + o) * pixels;
        let weights = (o * group_in + c % group_in) * taps;
        for (var kh = 0u; kh < p.g.kernel_h; kh = kh + 1u) {
            let oh = reader(ih, kh, p.g.out_height);
            if (oh < 0) { continue; }
            for (var kw = 0u; kw < p.g.kernel_w; kw = kw + 1u) {
                let ow = reader(iw, kw, p.g.out_width);
                if (ow < 0) { continue; }
                sum = fma(src_a[out_plane + u32(oh) * p.g.out_width + u32(ow)], src_b[weights + kh * p.g.kernel_w + kw], sum);
            }
        }
    }
    grad[i] = sum;
}

@compute @workgroup_size(256)
fn conv_grouped_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = workgroup_linear(wid, num);
    let group_in = p.g.in_channels / p.g.groups;
    let taps = p.g.kernel_h * p.g.kernel_w;
    if (e >= p.g.out_channels * group_in * taps) { return; }
    let o = e / (group_in * taps);
    let c = o / (p.g.out_channels / p.g.groups) * group_in + (e / taps) % group_in;
    let kh = (e % taps) / p.g.kernel_w;
    let kw = e % p.g.kernel_w;
    let pixels = p.g.out_height * p.g.out_width;
    var sum = 0.0;
    for (var k = lid.x; k < p.batch * pixels; k = k + 256u) {
        let n = k / pixels;
        let oh = (k % pixels) / p.g.out_width;
        let ow = k % p.g.out_width;
        let ih = source(oh, kh, p.g.height);
        let iw = source(ow, kw, p.g.width);
        if (ih < 0 || iw < 0) { continue; }
        let x = src_a[((n * p.g.in_channels + c) * p.g.height + u32(ih)) * p.g.width + u32(iw)];
        sum = fma(src_b[(n * p.g.out_channels + o) * pixels + k % pixels], x, sum);
    }
    partial[lid.x] = sum;
    workgroupBarrier();
    for (var half = 128u; half > 0u; half = half / 2u) {
        if (lid.x < half) { partial[lid.x] = partial[lid.x] + partial[lid.x + half]; }
        workgroupBarrier();
    }
    if (lid.x == 0u) { grad[e] = partial[0]; }
}
