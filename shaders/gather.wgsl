// gather.wgsl: rows of a matrix picked by an index tensor (minibatches from a dataset).
//
// Layout: src is contiguous [src_rows, cols] of any 32-bit dtype (copied as raw words);
// indices are u32 [count]; out is [count, cols].
// Mapping: one invocation per output element; invocation i copies src[indices[i / cols], i % cols].
// An index ≥ src_rows writes NaN bits (the GPU cannot raise an error without a readback).
// Traffic: 4 bytes read and written per element, plus one index read per element (cached).

struct GatherParams {
    count: u32,
    cols: u32,
    src_rows: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: GatherParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> row_indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn gather_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    if (i >= p.count * p.cols) { return; }
    let row = row_indices[i / p.cols];
    if (row >= p.src_rows) {
        out[i] = NAN_BITS;
        return;
    }
    out[i] = src[row * p.cols + i % p.cols];
}
