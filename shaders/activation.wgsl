// activation.wgsl: activation derivatives and PReLU.
//
// activation_backward: dx[i] = grad[i] · f'(x[i]) for the unary op OP; x and grad are strided
//   views (same parameter block as elementwise.wgsl), dx is contiguous. One invocation per
//   element. activation_backward_vec4: the same, four elements per invocation, when x and grad
//   are contiguous or repeated contiguous blocks (QuadParams in common.wgsl).
// activation_prelu / activation_prelu_backward: x is contiguous [outer, channels, inner];
//   channel of element i = (i / inner) % channels. One invocation per element.
// activation_prelu_alpha_grad: dalpha[c] = Σ over outer, inner of (x ≤ 0 ? x · grad : 0).
//   One workgroup of 256 per channel, a shared-memory tree at the end.

struct PreluParams {
    outer: u32,
    channels: u32,
    inner: u32,
    numel: u32,
}

override OP: u32 = 0u;

@group(0) @binding(0) var<uniform> p: StridedParams;
@group(0) @binding(0) var<uniform> pp: PreluParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<storage, read> alpha: array<f32>;
@group(0) @binding(3) var<storage, read_write> prelu_out: array<f32>;
@group(0) @binding(3) var<storage, read> prelu_grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> prelu_dx: array<f32>;
@group(0) @binding(3) var<storage, read_write> prelu_dalpha: array<f32>;
@group(0) @binding(0) var<uniform> q4: QuadParams;
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grad4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dx4: array<vec4<f32>>;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn activation_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    if (i >= p.numel) { return; }
    let xi = x[strided_index(i, p.rank, p.shape, p.strides_a[0], p.strides_a[1], p.offset_a, (p.flags & 1u) != 0u)];
    let gi = grad[strided_index(i, p.rank, p.shape, p.strides_b[0], p.strides_b[1], p.offset_b, (p.flags & 2u) != 0u)];
    dx[i] = gi * unary_derivative(OP, xi, p.alpha);
}

@compute @workgroup_size(256)
fn activation_backward_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = workgroup_linear(wid, num) * 256u + lid.x;
    if (q >= q4.quads) { return; }
    let xq = x4[quad_index(q, q4.offset_a, q4.period_a)];
    let gq = grad4[quad_index(q, q4.offset_b, q4.period_b)];
    dx4[q] = gq * unary_derivative4(OP, xq, q4.alpha);
}

@compute @workgroup_size(256)
fn activation_prelu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    if (i >= pp.numel) { return; }
    let v = x[i];
    let a = alpha[(i / pp.inner) % pp.channels];
    prelu_out[i] = select(a * v, v, v > 0.0);
}

@compute @workgroup_size(256)
fn activation_prelu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    if (i >= pp.numel) { return; }
    let a = alpha[(i / pp.inner) % pp.channels];
    prelu_dx[i] = select(a * prelu_grad[i], prelu_grad[i], x[i] > 0.0);
}

@compute @workgroup_size(256)
fn activation_prelu_alpha_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wid.x;
    let count = pp.outer * pp.inner;
    var acc = 0.0;
    for (var j = lid.x; j < count; j = j + 256u) {
        let o = j / pp.inner;
        let r = j % pp.inner;
        let i = (o * pp.channels + c) * pp.inner + r;
        let v = x[i];
        if (v <= 0.0) {
            acc = acc + v * grad[i];
        }
    }
    partial[lid.x] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid.x < s) {
            partial[lid.x] = partial[lid.x] + partial[lid.x + s];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        prelu_dalpha[c] = partial[0];
    }
}
