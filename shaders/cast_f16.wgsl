enable f16;

// cast_f16.wgsl: f32 ↔ f16 with native f16 storage, for adapters with `shader-f16`.
// The host falls back to cast.wgsl's packed kernels where the feature is missing.
// Mapping: one invocation per element.

struct CastParams {
    numel: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: CastParams;
@group(0) @binding(1) var<storage, read> in_f32: array<f32>;
@group(0) @binding(2) var<storage, read_write> out_f16: array<f16>;
@group(0) @binding(1) var<storage, read> in_f16: array<f16>;
@group(0) @binding(2) var<storage, read_write> out_f32: array<f32>;

@compute @workgroup_size(256)
fn cast_f16_native_from_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    if (i >= p.numel) { return; }
    out_f16[i] = f16(in_f32[i]);
}

@compute @workgroup_size(256)
fn cast_f16_native_to_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    if (i >= p.numel) { return; }
    out_f32[i] = f32(in_f16[i]);
}
