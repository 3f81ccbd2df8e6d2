// reduce.wgsl: reductions along one axis, and the partial sums of a global sum.
//
// The input is contiguous and viewed as [outer, len, inner]; the output is [outer, inner].
// OP: 0 sum, 1 mean, 2 max, 3 min, 4 argmax (the index is stored as u32 bits).
// - reduce_rows (inner == 1): one workgroup of 256 per row; each invocation folds a strided
//   slice of the row, then a shared-memory tree combines the 256 partial results. Rows of any
//   length work (the loop strides by 256).
// - reduce_rows_narrow (inner == 1, len ≤ 64, e.g. argmax over class scores): one invocation
//   per row, 64 rows per workgroup, folding its row serially: no workgroup memory or barriers,
//   which cost far more than a short row's arithmetic.
// - reduce_columns (inner > 1): one workgroup per (outer, block of 64 columns); 4 lanes of 64
//   invocations each fold every 4th row, so consecutive invocations read consecutive columns
//   (coalesced); lane 0 combines the 4 lanes.
// - reduce_sum_partial: grid-stride partial sums, one per workgroup, for a global sum; the
//   host then runs reduce_rows over the partials.
// Traffic: reads the input once; FLOPs ≈ one per element.

struct ReduceParams {
    outer: u32,
    len: u32,
    inner: u32,
    numel: u32,
}

override OP: u32 = 0u;

@group(0) @binding(0) var<uniform> p: ReduceParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

var<workgroup> values: array<f32, 256>;
var<workgroup> indices: array<u32, 256>;

fn identity_value() -> f32 {
    switch OP {
        case REDUCE_MAX, REDUCE_ARGMAX: { return -3.4028235e38; }
        case REDUCE_MIN: { return 3.4028235e38; }
        default: { return 0.0; }
    }
}

// Folds (b, bi) into the running (a, ai); ties keep the smaller index.
fn combine(a: f32, ai: u32, b: f32, bi: u32) -> vec2<u32> {
    switch OP {
        case REDUCE_MAX: { return vec2<u32>(bitcast<u32>(max(a, b)), 0u); }
        case REDUCE_MIN: { return vec2<u32>(bitcast<u32>(min(a, b)), 0u); }
        case REDUCE_ARGMAX: {
            if (b > a || (b == a && bi < ai)) {
                return vec2<u32>(bitcast<u32>(b), bi);
            }
            return vec2<u32>(bitcast<u32>(a), ai);
        }
        default: { return vec2<u32>(bitcast<u32>(a + b), 0u); }
    }
}

fn finish(value: f32, index: u32) -> f32 {
    switch OP {
        case REDUCE_MEAN: { return value / f32(p.len); }
        case REDUCE_ARGMAX: { return bitcast<f32>(index); }
        default: { return value; }
    }
}

@compute @workgroup_size(256)
fn reduce_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = workgroup_linear(wid, num);
    if (row >= p.outer) { return; }
    let base = row * p.len;
    var value = identity_value();
    var index = 0xffffffffu;
    for (var j = lid.x; j < p.len; j = j + 256u) {
        let r = combine(value, index, input[base + j], j);
        value = bitcast<f32>(r.x);
        index = r.y;
    }
    values[lid.x] = value;
    indices[lid.x] = index;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid.x < s) {
            let r = combine(values[lid.x], indices[lid.x], values[lid.x + s], indices[lid.x + s]);
            values[lid.x] = bitcast<f32>(r.x);
            indices[lid.x] = r.y;
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        output[row] = finish(values[0], indices[0]);
    }
}

@compute @workgroup_size(64)
fn reduce_rows_narrow(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = workgroup_linear(wid, num) * 64u + lid.x;
    if (row >= p.outer) { return; }
    let base = row * p.len;
    var value = identity_value();
    var index = 0xffffffffu;
    for (var j = 0u; j < p.len; j = j + 1u) {
        let r = combine(value, index, input[base + j], j);
        value = bitcast<f32>(r.x);
        index = r.y;
    }
    output[row] = finish(value, index);
}

@compute @workgroup_size(256)
fn reduce_columns(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let blocks = (p.inner + 63u) / 64u;
    let group = workgroup_linear(wid, num);
    let o = group / blocks;
    if (o >= p.outer) { return; }
    let column = (group % blocks) * 64u + lid.x % 64u;
    let lane = lid.x / 64u;
    var value = identity_value();
    var index = 0xffffffffu;
    if (column < p.inner) {
        let base = o * p.len * p.inner + column;
        for (var j = lane; j < p.len; j = j + 4u) {
            let r = combine(value, index, input[base + j * p.inner], j);
            value = bitcast<f32>(r.x);
            index = r.y;
        }
    }
    values[lid.x] = value;
    indices[lid.x] = index;
    workgroupBarrier();
    if (lane == 0u && column < p.inner) {
        var v = values[lid.x];
        var vi = indices[lid.x];
        for (var l = 1u; l < 4u; l = l + 1u) {
            let r = combine(v, vi, values[lid.x + l * 64u], indices[lid.x + l * 64u]);
            v = bitcast<f32>(r.x);
            vi = r.y;
        }
        output[o * p.inner + column] = finish(v, vi);
    }
}

@compute @workgroup_size(256)
fn reduce_sum_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let stride = num.x * 256u;
    var acc = 0.0;
    for (var i = wid.x * 256u + lid.x; i < p.numel; i = i + stride) {
        acc = acc + input[i];
    }
    values[lid.x] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid.x < s) {
            values[lid.x] = values[lid.x] + values[lid.x + s];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        output[wid.x] = values[0];
    }
}
