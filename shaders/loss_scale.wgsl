// loss_scale.wgsl: dynamic loss scaling on the device, so a mixed-precision step needs no
// readback. The scaler's state is two small tensors: `scale` (one f32, the factor the loss was
// multiplied by) and `flags` (u32: [0] a gradient was not finite this step, [1] steps skipped
// so far, [2] finite steps since the scale last changed).
//
// loss_scale_unscale: grad ← grad / scale in place, one invocation per element (2-D grid of
// 256-wide workgroups); an element that is inf or NaN (exponent bits all set) sets flags[0].
// Run once per gradient tensor before the optimiser, which then skips the step if flagged.
//
// loss_scale_update: one invocation, after the optimiser. A flagged step multiplies the scale
// by `backoff` and counts a skip; otherwise, after `interval` finite steps in a row, the scale
// is multiplied by `growth` (up to 2²⁴, so it never overflows to inf). Clears flags[0] for the next step. (PyTorch's GradScaler rule.)

struct UnscaleParams {
    numel: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const MAX_SCALE: f32 = 16777216.0;

struct UpdateParams {
    growth: f32,
    backoff: f32,
    interval: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> unscale: UnscaleParams;
@group(0) @binding(1) var<storage, read> scale_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> found: array<atomic<u32>>;

@compute @workgroup_size(256)
fn loss_scale_unscale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    if (i >= unscale.numel) { return; }
    let g = grad[i];
    if ((bitcast<u32>(g) & 0x7f800000u) == 0x7f800000u) {
        atomicStore(&found[0], 1u);
    }
    grad[i] = g * (1.0 / scale_in[0]);
}

@group(0) @binding(0) var<uniform> update: UpdateParams;
@group(0) @binding(1) var<storage, read_write> scale: array<f32>;
@group(0) @binding(2) var<storage, read_write> flags: array<u32>;

@compute @workgroup_size(1)
fn loss_scale_update() {
    if (flags[0] != 0u) {
        scale[0] = scale[0] * update.backoff;
        flags[1] = flags[1] + 1u;
        flags[2] = 0u;
    } else {
        flags[2] = flags[2] + 1u;
        if (flags[2] >= update.interval) {
            scale[0] = min(scale[0] * update.growth, MAX_SCALE);
            flags[2] = 0u;
        }
    }
    flags[0] = 0u;
}
