// batch_norm.wgsl: batch normalisation: per-channel statistics, the one-pass forward map, the
// two reductions of the backward pass and the one-pass input gradient.
//
// Layout: x, dy, y and dx are contiguous [outer, channels, inner] (a [N, C] batch has inner 1,
// [N, C, H, W] images inner H·W); mean, var, gamma, beta and the sums are [channels].
// Mapping of the reductions (batch_norm_stats, batch_norm_backward_reduce): with inner 1, one
// workgroup per block of 64 channels, 4 lanes of 64 invocations, lane l folding rows l, l+4, …
// (consecutive invocations read consecutive channels); with inner > 1, one workgroup per
// channel, its 256 invocations folding every 256th element of the channel (consecutive
// invocations read consecutive pixels). A tree in workgroup memory then sums the lanes.
// - batch_norm_stats: two passes: the mean, then Σ (x − mean)² / n (the biased variance),
//   never E[x²] − E[x]², which cancels catastrophically.
// - batch_norm_backward_reduce: Σ dy and Σ dy · x̂ with x̂ = (x − mean) / sqrt(var + eps).
// Mapping of the maps (batch_norm_forward, batch_norm_backward_input): one invocation per
// element, workgroups of 256 on a 2-D grid; the _vec4 forms (INNER a multiple of 4, so a vec4
// never straddles two channels) one invocation per 4 elements, with vec4 loads and stores
// and the channel's coefficients read once for the four.
// - batch_norm_forward: y = (x − mean) / sqrt(var + eps) · γ + β.
// - batch_norm_backward_input: dx = γ / sqrt(var + eps) · (dy − Σdy / n − x̂ · Σ(dy·x̂) / n).
// Traffic: stats read x twice; backward_reduce reads x and dy once; the maps read each
// element once and write it once.
// CHANNELS and INNER are override constants (the uniform holds the same values) so that the
// index arithmetic divides by constants, which compile to multiplies: a software driver runs a
// division by a runtime value one lane at a time (it made the maps 3-4× slower on lavapipe).

override CHANNELS: u32 = 1u;
override INNER: u32 = 1u;

struct BatchNormParams {
    outer: u32,
    channels: u32,
    inner: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: BatchNormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> var_out: array<f32>;
@group(0) @binding(2) var<storage, read> mean_in: array<f32>;
@group(0) @binding(3) var<storage, read> var_in: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read> gamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> y_out: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> sum_dy_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> sum_dy_xhat_out: array<f32>;
@group(0) @binding(6) var<storage, read> sum_dy_in: array<f32>;
@group(0) @binding(7) var<storage, read> sum_dy_xhat_in: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx_out: array<f32>;
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> y4_out: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> dy4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> dx4_out: array<vec4<f32>>;

var<workgroup> lanes_a: array<f32, 256>;
var<workgroup> lanes_b: array<f32, 256>;

// The channel an invocation of a reduction folds, its lane and the number of lanes.
struct Fold {
    channel: u32,
    lane: u32,
    lanes: u32,
}

fn fold_of(wid: u32, lid: u32) -> Fold {
    if (INNER == 1u) {
        return Fold(wid * 64u + lid % 64u, lid / 64u, 4u);
    }
    return Fold(wid, lid, 256u);
}

// Where a channel's combined lanes land in workgroup memory.
fn head(lid: u32) -> u32 {
    return select(0u, lid % 64u, INNER == 1u);
}

// Flat index of element r (0 ≤ r < outer·inner) of channel c.
fn element(c: u32, r: u32) -> u32 {
    return ((r / INNER) * CHANNELS + c) * INNER + r % INNER;
}

// Sums each channel's lanes of lanes_a and lanes_b into lanes_[ab][head(lid)]: a tree down to
// 64 entries (64 channels) or to 1 (one channel). Starts and ends with a barrier.
fn combine_lanes(lid: u32) {
    let stop = select(1u, 64u, INNER == 1u);
    for (var offset = 128u; offset >= stop; offset = offset / 2u) {
        workgroupBarrier();
        if (lid < offset) {
            lanes_a[lid] = lanes_a[lid] + lanes_a[lid + offset];
            lanes_b[lid] = lanes_b[lid] + lanes_b[lid + offset];
        }
    }
    workgroupBarrier();
}

fn element_id(wid: vec3<u32>, num: vec3<u32>, lid: vec3<u32>) -> u32 {
    return workgroup_linear(wid, num) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn batch_norm_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let f = fold_of(wid.x, lid.x);
    let valid = f.channel < CHANNELS;
    let count = p.outer * INNER;
    var sum = 0.0;
    if (valid) {
        for (var r = f.lane; r < count; r = r + f.lanes) {
            sum = sum + x[element(f.channel, r)];
        }
    }
    lanes_a[lid.x] = sum;
    lanes_b[lid.x] = 0.0;
    combine_lanes(lid.x);
    let mean = lanes_a[head(lid.x)] / f32(count);
    workgroupBarrier();
    var sq = 0.0;
    if (valid) {
        for (var r = f.lane; r < count; r = r + f.lanes) {
            let d = x[element(f.channel, r)] - mean;
            sq = sq + d * d;
        }
    }
    lanes_a[lid.x] = sq;
    combine_lanes(lid.x);
    if (f.lane == 0u && valid) {
        mean_out[f.channel] = mean;
        var_out[f.channel] = lanes_a[head(lid.x)] / f32(count);
    }
}

@compute @workgroup_size(256)
fn batch_norm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.outer * CHANNELS * INNER) { return; }
    let c = (i / INNER) % CHANNELS;
    let scale = gamma[c] / sqrt(var_in[c] + p.eps);
    y_out[i] = (x[i] - mean_in[c]) * scale + beta[c];
}

@compute @workgroup_size(256)
fn batch_norm_forward_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.outer * CHANNELS * INNER / 4u) { return; }
    let c = (i * 4u / INNER) % CHANNELS;
    let scale = gamma[c] / sqrt(var_in[c] + p.eps);
    y4_out[i] = (x4[i] - vec4<f32>(mean_in[c])) * scale + vec4<f32>(beta[c]);
}

@compute @workgroup_size(256)
fn batch_norm_backward_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let f = fold_of(wid.x, lid.x);
    let valid = f.channel < CHANNELS;
    var sum_dy = 0.0;
    var sum_dy_xc = 0.0;
    if (valid) {
        let mean = mean_in[f.channel];
        for (var r = f.lane; r < p.outer * INNER; r = r + f.lanes) {
            let i = element(f.channel, r);
            sum_dy = sum_dy + dy[i];
            sum_dy_xc = sum_dy_xc + dy[i] * (x[i] - mean);
        }
    }
    lanes_a[lid.x] = sum_dy;
    lanes_b[lid.x] = sum_dy_xc;
    combine_lanes(lid.x);
    if (f.lane == 0u && valid) {
        sum_dy_out[f.channel] = lanes_a[head(lid.x)];
        sum_dy_xhat_out[f.channel] = lanes_b[head(lid.x)] / sqrt(var_in[f.channel] + p.eps);
    }
}

@compute @workgroup_size(256)
fn batch_norm_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.outer * CHANNELS * INNER) { return; }
    let c = (i / INNER) % CHANNELS;
    let n = f32(p.outer * INNER);
    let inv_std = 1.0 / sqrt(var_in[c] + p.eps);
    let x_hat = (x[i] - mean_in[c]) * inv_std;
    dx_out[i] = gamma[c] * inv_std * (dy[i] - sum_dy_in[c] / n - x_hat * sum_dy_xhat_in[c] / n);
}

@compute @workgroup_size(256)
fn batch_norm_backward_input_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.outer * CHANNELS * INNER / 4u) { return; }
    let c = (i * 4u / INNER) % CHANNELS;
    let n = f32(p.outer * INNER);
    let inv_std = 1.0 / sqrt(var_in[c] + p.eps);
    let x_hat = (x4[i] - vec4<f32>(mean_in[c])) * inv_std;
    dx4_out[i] = gamma[c] * inv_std * (dy4[i] - vec4<f32>(sum_dy_in[c] / n) - x_hat * sum_dy_xhat_in[c] / n);
}
