// data.wgsl: minibatches straight from a u8 dataset kept on the device.
//
// data_gather_u8_affine computes, for one chunk of the dataset,
//   out[i, c] = f32(pixels[indices[i] − first_row, c]) · scale[c] + shift[c]
// for every output row i whose index falls in this chunk's rows [first_row, first_row + rows);
// other rows are left for the dispatch of the chunk that holds them. A dataset larger than the
// storage-binding limit is uploaded as several chunks of whole rows, one dispatch each.
// (scale, shift) carry the fitted preprocessing: per-channel standardisation is
// scale = 1/σ_c, shift = −μ_c/σ_c; mean-image subtraction is scale = 1/σ, shift = −μ_c/σ.
// Layout: pixels are row-major [rows, features] bytes packed four to a u32 (little-endian),
// indices u32 [count], scale and shift f32 [features], out f32 [count, features].
// Mapping: one invocation per output element (2-D grid of 256-wide workgroups).
// Traffic: 1 byte + one index (cached) read, 4 bytes written per element.
//
// data_gather_u8_affine_vec4: the same for `features` a multiple of 4 (784 for MNIST-like
// images, 3072 for CIFAR-10), one invocation per four consecutive features of a row: one u32
// of pixels, a vec4 of scale and shift, a vec4 store. A quarter of the invocations, index
// divisions and buffer accesses, which software drivers pay per lane.

struct DataParams {
    count: u32,
    features: u32,
    first_row: u32,
    rows: u32,
}

@group(0) @binding(0) var<uniform> p: DataParams;
@group(0) @binding(1) var<storage, read> pixels: array<u32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read> scale: array<f32>;
@group(0) @binding(4) var<storage, read> shift: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> scale4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> shift4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(256)
fn data_gather_u8_affine_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = workgroup_linear(wid, num) * 256u + lid.x;
    let quads = p.features / 4u;
    if (q >= p.count * quads) { return; }
    let row = indices[q / quads];
    if (row < p.first_row || row - p.first_row >= p.rows) { return; }
    let c4 = q % quads;
    let word = pixels[(row - p.first_row) * quads + c4];
    let bytes = vec4<u32>(word & 0xffu, (word >> 8u) & 0xffu, (word >> 16u) & 0xffu, word >> 24u);
    out4[q] = vec4<f32>(bytes) * scale4[c4] + shift4[c4];
}

@compute @workgroup_size(256)
fn data_gather_u8_affine(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    if (i >= p.count * p.features) { return; }
    let row = indices[i / p.features];
    if (row < p.first_row || row - p.first_row >= p.rows) { return; }
    let c = i % p.features;
    let byte = (row - p.first_row) * p.features + c;
    let value = (pixels[byte / 4u] >> ((byte % 4u) * 8u)) & 0xffu;
    out[i] = f32(value) * scale[c] + shift[c];
}
