// elementwise.wgsl: unary, binary (with broadcasting), scalar, select, strided copy and fill.
//
// Layout: every operand is read through a strided view (shape shared, per-operand strides and
// offset, stride 0 for broadcast dimensions, up to 8 dimensions); the output is contiguous.
// A `contiguous` bit per operand skips the index arithmetic.
// Mapping: one invocation per output element; workgroups of 256 on a 2-D grid.
// The `_vec4` forms (unary, binary, binary_scalar) take four consecutive elements per
// invocation when every operand is contiguous or a repeated contiguous block (QuadParams in
// common.wgsl) and the counts are multiples of 4: a quarter of the buffer accesses, which
// software drivers pay per lane, and 16-byte accesses on GPUs.
// Traffic: reads each input element once (broadcast reads hit cache), writes 4 bytes/element.

override OP: u32 = 0u;

@group(0) @binding(0) var<uniform> p: StridedParams;
@group(0) @binding(1) var<storage, read> in_a: array<f32>;
@group(0) @binding(2) var<storage, read_write> out_unary: array<f32>;
@group(0) @binding(2) var<storage, read> in_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out_binary: array<f32>;
@group(0) @binding(3) var<storage, read> in_c: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_select: array<f32>;
@group(0) @binding(1) var<storage, read> words_in: array<u32>;
@group(0) @binding(2) var<storage, read_write> words_out: array<u32>;
@group(0) @binding(1) var<storage, read_write> fill_out: array<u32>;
@group(0) @binding(0) var<uniform> q4: QuadParams;
@group(0) @binding(1) var<storage, read> in_a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out_unary4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> in_b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out_binary4: array<vec4<f32>>;

fn index_a(i: u32) -> u32 {
    return strided_index(i, p.rank, p.shape, p.strides_a[0], p.strides_a[1], p.offset_a, (p.flags & 1u) != 0u);
}

fn index_b(i: u32) -> u32 {
    return strided_index(i, p.rank, p.shape, p.strides_b[0], p.strides_b[1], p.offset_b, (p.flags & 2u) != 0u);
}

fn index_c(i: u32) -> u32 {
    return strided_index(i, p.rank, p.shape, p.strides_c[0], p.strides_c[1], p.offset_c, (p.flags & 4u) != 0u);
}

fn element_id(wid: vec3<u32>, num: vec3<u32>, lid: vec3<u32>) -> u32 {
    return workgroup_linear(wid, num) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn elementwise_unary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.numel) { return; }
    out_unary[i] = unary_eval(OP, in_a[index_a(i)], p.alpha);
}

@compute @workgroup_size(256)
fn elementwise_binary(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.numel) { return; }
    out_binary[i] = binary_eval(OP, in_a[index_a(i)], in_b[index_b(i)]);
}

@compute @workgroup_size(256)
fn elementwise_binary_scalar(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.numel) { return; }
    let x = in_a[index_a(i)];
    if ((p.flags & 8u) != 0u) {
        out_unary[i] = binary_eval(OP, p.scalar, x);
    } else {
        out_unary[i] = binary_eval(OP, x, p.scalar);
    }
}

@compute @workgroup_size(256)
fn elementwise_unary_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = element_id(wid, num, lid);
    if (q >= q4.quads) { return; }
    out_unary4[q] = unary_eval4(OP, in_a4[quad_index(q, q4.offset_a, q4.period_a)], q4.alpha);
}

@compute @workgroup_size(256)
fn elementwise_binary_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = element_id(wid, num, lid);
    if (q >= q4.quads) { return; }
    let a = in_a4[quad_index(q, q4.offset_a, q4.period_a)];
    let b = in_b4[quad_index(q, q4.offset_b, q4.period_b)];
    out_binary4[q] = binary_eval4(OP, a, b);
}

@compute @workgroup_size(256)
fn elementwise_binary_scalar_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = element_id(wid, num, lid);
    if (q >= q4.quads) { return; }
    let x = in_a4[quad_index(q, q4.offset_a, q4.period_a)];
    let s = vec4<f32>(q4.scalar);
    if ((q4.flags & 8u) != 0u) {
        out_unary4[q] = binary_eval4(OP, s, x);
    } else {
        out_unary4[q] = binary_eval4(OP, x, s);
    }
}

// cond (a) != 0 ? b : c
@compute @workgroup_size(256)
fn elementwise_select(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.numel) { return; }
    out_select[i] = select(in_c[index_c(i)], in_b[index_b(i)], in_a[index_a(i)] != 0.0);
}

// Strided gather of 32-bit words into a contiguous buffer (any 32-bit dtype).
@compute @workgroup_size(256)
fn elementwise_copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.numel) { return; }
    words_out[i] = words_in[index_a(i)];
}

// Writes the bit pattern `offset_a` into `numel` words (the host packs narrow dtypes).
@compute @workgroup_size(256)
fn elementwise_fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.numel) { return; }
    fill_out[i] = p.offset_a;
}
