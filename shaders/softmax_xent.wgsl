// softmax_xent.wgsl: row softmax / log-softmax and fused softmax cross-entropy.
//
// Layout: logits are contiguous [rows, cols]; labels are u32 [rows]; soft targets are
// [rows, cols] probabilities; grad_rows is [rows] (the upstream gradient of each row's loss).
// Mapping: one workgroup of 256 per row (2-D grid). Each invocation folds a strided slice of
// the row; shared-memory trees give the row max and Σ exp(x − max), so exp never overflows.
// The `_narrow` entry points compute the same for rows of at most NARROW_COLS (64) columns —
// classifier outputs — with one invocation per row (workgroups of 64 rows, 2-D grid) walking
// its row serially: no workgroup memory or barriers, which cost a 256-wide workgroup far more
// than ten columns of arithmetic (on software drivers each barrier switches every lane).
// Forward loss of a row: logsumexp(x) − x[label], or −Σ t·(x − logsumexp(x)).
// Backward: (softmax(x) · Σt − t) · g, with t one-hot for labels. A label ≥ cols gives NaN.
// Traffic: 2–3 reads of the row, one write; ~cols exp per row.

// The parameter block batch_norm.wgsl shares (RowParams in src/wgpu/mod.rs); eps unused here.
struct RowParams {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

override LOG: bool = false;

@group(0) @binding(0) var<uniform> p: RowParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> softmax_out: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read> targets: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss_out: array<f32>;
@group(0) @binding(3) var<storage, read> grad_rows: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;

var<workgroup> scratch: array<f32, 256>;

fn tree_max(lid: u32, value: f32) -> f32 {
    scratch[lid] = value;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            scratch[lid] = max(scratch[lid], scratch[lid + s]);
        }
        workgroupBarrier();
    }
    let result = scratch[0];
    workgroupBarrier();
    return result;
}

fn tree_sum(lid: u32, value: f32) -> f32 {
    scratch[lid] = value;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            scratch[lid] = scratch[lid] + scratch[lid + s];
        }
        workgroupBarrier();
    }
    let result = scratch[0];
    workgroupBarrier();
    return result;
}

fn row_max(base: u32, lid: u32) -> f32 {
    var m = -3.4028235e38;
    for (var j = lid; j < p.cols; j = j + 256u) {
        m = max(m, logits[base + j]);
    }
    return tree_max(lid, m);
}

fn row_sum_exp(base: u32, lid: u32, m: f32) -> f32 {
    var s = 0.0;
    for (var j = lid; j < p.cols; j = j + 256u) {
        s = s + exp(logits[base + j] - m);
    }
    return tree_sum(lid, s);
}

fn row_max_serial(base: u32) -> f32 {
    var m = -3.4028235e38;
    for (var j = 0u; j < p.cols; j = j + 1u) {
        m = max(m, logits[base + j]);
    }
    return m;
}

fn row_sum_exp_serial(base: u32, m: f32) -> f32 {
    var s = 0.0;
    for (var j = 0u; j < p.cols; j = j + 1u) {
        s = s + exp(logits[base + j] - m);
    }
    return s;
}

fn narrow_row(wid: vec3<u32>, num: vec3<u32>, lid: vec3<u32>) -> u32 {
    return workgroup_linear(wid, num) * 64u + lid.x;
}

@compute @workgroup_size(64)
fn softmax_xent_softmax_narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = narrow_row(wid, num, lid);
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    let m = row_max_serial(base);
    let s = row_sum_exp_serial(base, m);
    let log_s = log(s);
    for (var j = 0u; j < p.cols; j = j + 1u) {
        let shifted = logits[base + j] - m;
        if (LOG) {
            softmax_out[base + j] = shifted - log_s;
        } else {
            softmax_out[base + j] = exp(shifted) / s;
        }
    }
}

@compute @workgroup_size(64)
fn softmax_xent_labels_forward_narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = narrow_row(wid, num, lid);
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    let m = row_max_serial(base);
    let s = row_sum_exp_serial(base, m);
    let label = labels[row];
    var loss = bitcast<f32>(NAN_BITS);
    if (label < p.cols) {
        loss = log(s) + m - logits[base + label];
    }
    loss_out[row] = loss;
}

@compute @workgroup_size(64)
fn softmax_xent_soft_forward_narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = narrow_row(wid, num, lid);
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    let m = row_max_serial(base);
    let lse = log(row_sum_exp_serial(base, m)) + m;
    var acc = 0.0;
    for (var j = 0u; j < p.cols; j = j + 1u) {
        acc = acc + targets[base + j] * (lse - logits[base + j]);
    }
    loss_out[row] = acc;
}

@compute @workgroup_size(64)
fn softmax_xent_labels_backward_narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = narrow_row(wid, num, lid);
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    let m = row_max_serial(base);
    let s = row_sum_exp_serial(base, m);
    let g = grad_rows[row];
    let label = labels[row];
    for (var j = 0u; j < p.cols; j = j + 1u) {
        var v = exp(logits[base + j] - m) / s;
        if (j == label) { v = v - 1.0; }
        if (label >= p.cols) { v = bitcast<f32>(NAN_BITS); }
        dlogits[base + j] = v * g;
    }
}

@compute @workgroup_size(64)
fn softmax_xent_soft_backward_narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = narrow_row(wid, num, lid);
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    let m = row_max_serial(base);
    let s = row_sum_exp_serial(base, m);
    var t_sum = 0.0;
    for (var j = 0u; j < p.cols; j = j + 1u) {
        t_sum = t_sum + targets[base + j];
    }
    let g = grad_rows[row];
    for (var j = 0u; j < p.cols; j = j + 1u) {
        dlogits[base + j] = (exp(logits[base + j] - m) / s * t_sum - targets[base + j]) * g;
    }
}

@compute @workgroup_size(256)
fn softmax_xent_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = workgroup_linear(wid, num);
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    let m = row_max(base, lid.x);
    let s = row_sum_exp(base, lid.x, m);
    let log_s = log(s);
    for (var j = lid.x; j < p.cols; j = j + 256u) {
        let shifted = logits[base + j] - m;
        if (LOG) {
            softmax_out[base + j] = shifted - log_s;
        } else {
            softmax_out[base + j] = exp(shifted) / s;
        }
    }
}

@compute @workgroup_size(256)
fn softmax_xent_labels_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = workgroup_linear(wid, num);
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    let m = row_max(base, lid.x);
    let s = row_sum_exp(base, lid.x, m);
    if (lid.x == 0u) {
        let label = labels[row];
        if (label < p.cols) {
            loss_out[row] = log(s) + m - logits[base + label];
        } else {
            loss_out[row] = bitcast<f32>(NAN_BITS);
        }
    }
}

@compute @workgroup_size(256)
fn softmax_xent_soft_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = workgroup_linear(wid, num);
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    let m = row_max(base, lid.x);
    let lse = log(row_sum_exp(base, lid.x, m)) + m;
    var acc = 0.0;
    for (var j = lid.x; j < p.cols; j = j + 256u) {
        acc = acc + targets[base + j] * (lse - logits[base + j]);
    }
    let total = tree_sum(lid.x, acc);
    if (lid.x == 0u) {
        loss_out[row] = total;
    }
}

@compute @workgroup_size(256)
fn softmax_xent_labels_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = workgroup_linear(wid, num);
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    let m = row_max(base, lid.x);
    let s = row_sum_exp(base, lid.x, m);
    let g = grad_rows[row];
    let label = labels[row];
    for (var j = lid.x; j < p.cols; j = j + 256u) {
        var v = exp(logits[base + j] - m) / s;
        if (j == label) { v = v - 1.0; }
        if (label >= p.cols) { v = bitcast<f32>(NAN_BITS); }
        dlogits[base + j] = v * g;
    }
}

@compute @workgroup_size(256)
fn softmax_xent_soft_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = workgroup_linear(wid, num);
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    let m = row_max(base, lid.x);
    let s = row_sum_exp(base, lid.x, m);
    var t_acc = 0.0;
    for (var j = lid.x; j < p.cols; j = j + 256u) {
        t_acc = t_acc + targets[base + j];
    }
    let t_sum = tree_sum(lid.x, t_acc);
    let g = grad_rows[row];
    for (var j = lid.x; j < p.cols; j = j + 256u) {
        dlogits[base + j] = (exp(logits[base + j] - m) / s * t_sum - targets[base + j]) * g;
    }
}
