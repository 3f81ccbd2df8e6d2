// cast.wgsl: dtype conversions that need no shader feature.
//
// Narrow dtypes live packed in 32-bit words: f16 two per word (element 2w in the low half),
// u8 four per word (element 4w in the low byte), as in host memory on little-endian targets.
// - cast_f32_to_f16: one invocation per output word, packing two f16 values.
// - cast_f16_to_f32: one invocation per element, widening the half of its word.
//   Both convert bit patterns with integer operations (common.wgsl, `f16_bits_of_f32` and
//   `f32_bits_of_f16`), not with pack2x16float/unpack2x16float or f16(): WGSL leaves the value
//   of an out-of-range conversion to the driver and lets it flush f16 subnormals, while these
//   round to nearest even, give ±inf beyond f16's range and keep subnormals, on every driver
//   and with or without `shader-f16`. The CPU backend's conversions give the same bits.
// - cast_u8_to_f32: one invocation per element; extracts its byte (0..255, unnormalised).
// - cast_u32_to_f32 / cast_f32_to_u32: one invocation per element (f32 → u32 saturates,
//   truncating toward zero; negative values give 0).

struct CastParams {
    numel: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: CastParams;
@group(0) @binding(1) var<storage, read> in_f32: array<f32>;
@group(0) @binding(1) var<storage, read> in_words: array<u32>;
@group(0) @binding(2) var<storage, read_write> out_words: array<u32>;
@group(0) @binding(2) var<storage, read_write> out_f32: array<f32>;

fn element_id(wid: vec3<u32>, num: vec3<u32>, lid: vec3<u32>) -> u32 {
    return workgroup_linear(wid, num) * 256u + lid.x;
}

@compute @workgroup_size(256)
fn cast_f32_to_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let w = element_id(wid, num, lid);
    let first = 2u * w;
    if (first >= p.numel) { return; }
    var high = 0u;
    if (first + 1u < p.numel) {
        high = f16_bits_of_f32(in_words[first + 1u]);
    }
    out_words[w] = f16_bits_of_f32(in_words[first]) | (high << 16u);
}

@compute @workgroup_size(256)
fn cast_f16_to_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.numel) { return; }
    out_words[i] = f32_bits_of_f16((in_words[i / 2u] >> (16u * (i % 2u))) & 0xffffu);
}

@compute @workgroup_size(256)
fn cast_u8_to_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.numel) { return; }
    out_f32[i] = f32(extractBits(in_words[i / 4u], (i % 4u) * 8u, 8u));
}

@compute @workgroup_size(256)
fn cast_u32_to_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.numel) { return; }
    out_f32[i] = f32(in_words[i]);
}

@compute @workgroup_size(256)
fn cast_f32_to_u32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_id(wid, num, lid);
    if (i >= p.numel) { return; }
    out_words[i] = u32(max(in_f32[i], 0.0));
}
