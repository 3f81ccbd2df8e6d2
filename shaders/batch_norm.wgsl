// batch_norm.wgsl: batch-norm statistics and the reductions of its backward pass.
//
// Layout: x and dy are contiguous [rows, cols] (a batch of rows, one feature per column);
// mean and var are [cols].
// Mapping: one workgroup per block of 64 columns; 4 lanes of 64 invocations each fold every
// 4th row (consecutive invocations read consecutive columns), then lane 0 combines the lanes.
// - batch_norm_stats: two passes over the block: mean first, then Σ (x − mean)² / rows (the
//   biased variance). Never E[x²] − E[x]², which cancels catastrophically.
// - batch_norm_backward_reduce: Σ dy and Σ dy · x̂ with x̂ = (x − mean) / sqrt(var + eps).
// Traffic: stats read x twice; backward reads x and dy once.

struct BatchNormParams {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: BatchNormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean_out: array<f32>;
@group(0) @binding(3) var<storage, read_write> var_out: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> mean_in: array<f32>;
@group(0) @binding(4) var<storage, read> var_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> sum_dy_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> sum_dy_xhat_out: array<f32>;

var<workgroup> lanes_a: array<f32, 256>;
var<workgroup> lanes_b: array<f32, 256>;

// Sums lanes_a (and lanes_b) over the 4 lanes of this invocation's column; valid in lane 0.
fn combine_lanes(lid: u32) -> vec2<f32> {
    var a = 0.0;
    var b = 0.0;
    for (var l = 0u; l < 4u; l = l + 1u) {
        a = a + lanes_a[lid % 64u + l * 64u];
        b = b + lanes_b[lid % 64u + l * 64u];
    }
    return vec2<f32>(a, b);
}

@compute @workgroup_size(256)
fn batch_norm_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let column = wid.x * 64u + lid.x % 64u;
    let lane = lid.x / 64u;
    let valid = column < p.cols;
    var sum = 0.0;
    if (valid) {
        for (var r = lane; r < p.rows; r = r + 4u) {
            sum = sum + x[r * p.cols + column];
        }
    }
    lanes_a[lid.x] = sum;
    lanes_b[lid.x] = 0.0;
    workgroupBarrier();
    let mean = combine_lanes(lid.x).x / f32(p.rows);
    workgroupBarrier();
    var sq = 0.0;
    if (valid) {
        for (var r = lane; r < p.rows; r = r + 4u) {
            let d = x[r * p.cols + column] - mean;
            sq = sq + d * d;
        }
    }
    lanes_a[lid.x] = sq;
    workgroupBarrier();
    if (lane == 0u && valid) {
        mean_out[column] = mean;
        var_out[column] = combine_lanes(lid.x).x / f32(p.rows);
    }
}

@compute @workgroup_size(256)
fn batch_norm_backward_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let column = wid.x * 64u + lid.x % 64u;
    let lane = lid.x / 64u;
    let valid = column < p.cols;
    var sum_dy = 0.0;
    var sum_dy_xhat = 0.0;
    if (valid) {
        let mean = mean_in[column];
        let inv_std = inverseSqrt(var_in[column] + p.eps);
        for (var r = lane; r < p.rows; r = r + 4u) {
            let i = r * p.cols + column;
            sum_dy = sum_dy + dy[i];
            sum_dy_xhat = sum_dy_xhat + dy[i] * (x[i] - mean) * inv_std;
        }
    }
    lanes_a[lid.x] = sum_dy;
    lanes_b[lid.x] = sum_dy_xhat;
    workgroupBarrier();
    if (lane == 0u && valid) {
        let sums = combine_lanes(lid.x);
        sum_dy_out[column] = sums.x;
        sum_dy_xhat_out[column] = sums.y;
    }
}
