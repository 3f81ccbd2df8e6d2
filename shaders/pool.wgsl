// pool.wgsl: 2-D max and average pooling over NCHW planes, f32, square windows. Window
// (oh, ow) covers input rows oh·stride − padding .. + kernel − 1 (and the same for columns);
// taps in the padding are skipped (max) or count as zeros (average, PyTorch's
// count_include_pad).
//
// pool_max:          one invocation per output element: the window's maximum, and its arg-max
//                    as an index into the input plane (the first maximum in scan order, kh
//                    major, so ties go to one element on both backends).
// pool_max_backward: one invocation per input element: the sum of dy over the windows that
//                    cover it and chose it (a gather, so no atomics and a fixed order).
// pool_avg:          one invocation per output element: the window's sum / kernel².
// pool_avg_backward: one invocation per input element: Σ dy / kernel² over covering windows.
// Grids are 2-D when more than 65535 workgroups of 256 are needed (workgroup_linear).
// The plane's shape and the window are override constants (the uniform holds the same
// values): the index arithmetic then divides by constants and the window loops have constant
// bounds, where a software driver runs each division by a runtime value one lane at a time.

override HEIGHT: u32 = 1u;
override WIDTH: u32 = 1u;
override KERNEL: u32 = 1u;
override STRIDE: u32 = 1u;
override PADDING: u32 = 0u;
override OUT_HEIGHT: u32 = 1u;
override OUT_WIDTH: u32 = 1u;

// Mirrors `PoolParams` in src/wgpu/pool.rs.
struct PoolParams {
    planes: u32,
    height: u32,
    width: u32,
    kernel: u32,
    stride: u32,
    padding: u32,
    out_height: u32,
    out_width: u32,
}

// Reads first, then writes: pool_max src → dst, dst_index; pool_max_backward dy (src), arg →
// dx; pool_avg src → dst; pool_avg_backward dy (src) → dst.
@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<storage, read> arg: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst_index: array<u32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

// The first output row (or column) whose window covers input row i, and one past the last.
fn covering(i: u32, len: u32) -> vec2<u32> {
    let reach = i + PADDING + 1u;
    var first = 0u;
    if (reach > KERNEL) { first = (reach - KERNEL + STRIDE - 1u) / STRIDE; }
    let last = min((i + PADDING) / STRIDE + 1u, len);
    return vec2<u32>(first, max(last, first));
}

@compute @workgroup_size(256)
fn pool_max(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    let per_plane = OUT_HEIGHT * OUT_WIDTH;
    if (i >= p.planes * per_plane) { return; }
    let plane = i / per_plane;
    let oh = (i % per_plane) / OUT_WIDTH;
    let ow = i % OUT_WIDTH;
    let base = plane * HEIGHT * WIDTH;
    var best = 0.0;
    var best_index = 0xffffffffu;
    for (var kh = 0u; kh < KERNEL; kh = kh + 1u) {
        let r = i32(oh * STRIDE + kh) - i32(PADDING);
        if (r < 0 || r >= i32(HEIGHT)) { continue; }
        for (var kw = 0u; kw < KERNEL; kw = kw + 1u) {
            let c = i32(ow * STRIDE + kw) - i32(PADDING);
            if (c < 0 || c >= i32(WIDTH)) { continue; }
            let at = u32(r) * WIDTH + u32(c);
            let v = src[base + at];
            if (best_index == 0xffffffffu || v > best) {
                best = v;
                best_index = at;
            }
        }
    }
    dst[i] = best;
    dst_index[i] = best_index;
}

@compute @workgroup_size(256)
fn pool_max_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    let plane_in = HEIGHT * WIDTH;
    if (i >= p.planes * plane_in) { return; }
    let plane = i / plane_in;
    let me = i % plane_in;
    let rows = covering(me / WIDTH, OUT_HEIGHT);
    let cols = covering(me % WIDTH, OUT_WIDTH);
    let base = plane * OUT_HEIGHT * OUT_WIDTH;
    var g = 0.0;
    for (var oh = rows.x; oh < rows.y; oh = oh + 1u) {
        for (var ow = cols.x; ow < cols.y; ow = ow + 1u) {
            let o = base + oh * OUT_WIDTH + ow;
            if (arg[o] == me) { g = g + src[o]; }
        }
    }
    dx[i] = g;
}

@compute @workgroup_size(256)
fn pool_avg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    let per_plane = OUT_HEIGHT * OUT_WIDTH;
    if (i >= p.planes * per_plane) { return; }
    let plane = i / per_plane;
    let oh = (i % per_plane) / OUT_WIDTH;
    let ow = i % OUT_WIDTH;
    let base = plane * HEIGHT * WIDTH;
    var sum = 0.0;
    for (var kh = 0u; kh < KERNEL; kh = kh + 1u) {
        let r = i32(oh * STRIDE + kh) - i32(PADDING);
        if (r < 0 || r >= i32(HEIGHT)) { continue; }
        for (var kw = 0u; kw < KERNEL; kw = kw + 1u) {
            let c = i32(ow * STRIDE + kw) - i32(PADDING);
            if (c < 0 || c >= i32(WIDTH)) { continue; }
            sum = sum + src[base + u32(r) * WIDTH + u32(c)];
        }
    }
    dst[i] = sum / f32(KERNEL * KERNEL);
}

@compute @workgroup_size(256)
fn pool_avg_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    let plane_in = HEIGHT * WIDTH;
    if (i >= p.planes * plane_in) { return; }
    let plane = i / plane_in;
    let me = i % plane_in;
    let rows = covering(me / WIDTH, OUT_HEIGHT);
    let cols = covering(me % WIDTH, OUT_WIDTH);
    let base = plane * OUT_HEIGHT * OUT_WIDTH;
    var g = 0.0;
    for (var oh = rows.x; oh < rows.y; oh = oh + 1u) {
        for (var ow = cols.x; ow < cols.y; ow = ow + 1u) {
            g = g + src[base + oh * OUT_WIDTH + ow];
        }
    }
    dst[i] = g / f32(KERNEL * KERNEL);
}
