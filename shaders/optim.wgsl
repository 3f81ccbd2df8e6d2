// optim.wgsl: fused optimiser steps. Every kernel updates one parameter tensor and its state in
// place, one invocation per element (2-D grid of 256-wide workgroups), so an update never leaves
// the device and costs one dispatch per parameter tensor.
//
// optim_adam_step — Adam / AdamW. One pass per element reads param, grad, m and v and writes param, m and v:
//   g  = grad (+ weight_decay · param for classic L2 Adam)
//   m  = β1 m + (1 − β1) g;  v = β2 v + (1 − β2) g²
//   param ← param · (1 − lr · weight_decay)            (AdamW only, decoupled decay)
//   param ← param − lr · (m / bc1) / (sqrt(v / bc2) + eps)
// with the bias corrections bc1 = 1 − β1^t, bc2 = 1 − β2^t computed on the host in f64.
// Mapping: one invocation per element (2-D grid of 256-wide workgroups).
// Traffic: 16 bytes read + 12 written per parameter; ~12 FLOPs.
//
// optim_adam_step_vec4 — the same update, one invocation per four consecutive elements, for
// tensors whose length is a multiple of 4. Software drivers pay per buffer access per lane
// whatever its width, so vec4 accesses cut the cost of an update about fourfold there; GPUs
// issue 16-byte loads and stores.

// Gating (dynamic loss scaling): with GATED, `gate` holds the loss scaler's flags (gate[0]: a
// gradient was not finite this step; gate[1]: steps skipped so far). A flagged step returns
// before touching anything, and Adam's bias corrections count only the steps taken:
// t = step − gate[1], recomputed on the device once a step has been skipped. Without GATED the
// host binds the gradient in gate's place and the kernels never read it.
//
// optim_sgd_step / optim_sgd_momentum_step — SGD, PyTorch's update (velocity starts at zero, so
// the first step sets v = g exactly as PyTorch's clone does):
//   g = grad + weight_decay · param
//   v = μ v + g;  param ← param − lr · (nesterov ? g + μ v : v)      (momentum form)
//   param ← param − lr · g                                            (plain form, no state)
// Traffic: 8 (plain) or 12 (momentum) bytes read, 4 or 8 written per parameter.
//
// optim_adaptive_step — AdaGrad and RMSProp as one kernel over the accumulator s:
//   g = grad + weight_decay · param
//   s = decay · s + gain · g²      (AdaGrad: decay = gain = 1; RMSProp: decay = α, gain = 1 − α)
//   param ← param − lr · g / (sqrt(s) + eps)
// Traffic: 12 bytes read + 8 written per parameter.

override GATED: bool = false;

struct SgdParams {
    numel: u32,
    nesterov: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

struct AdaptiveParams {
    numel: u32,
    lr: f32,
    eps: f32,
    weight_decay: f32,
    decay: f32,
    gain: f32,
    _pad0: u32,
    _pad1: u32,
}

struct AdamParams {
    numel: u32,
    decoupled: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bias_correction1: f32,
    bias_correction2: f32,
    step: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: AdamParams;
@group(0) @binding(0) var<uniform> sgd: SgdParams;
@group(0) @binding(0) var<uniform> adaptive: AdaptiveParams;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read> gate: array<u32>;
@group(0) @binding(3) var<storage, read_write> param: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
@group(0) @binding(1) var<storage, read> grad4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> param4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> m4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> v4: array<vec4<f32>>;
// The single state tensor of SGD with momentum (velocity) and AdaGrad/RMSProp (Σ or mean of g²).
@group(0) @binding(4) var<storage, read_write> state: array<f32>;

// True when the loss scaler flagged this step (a gradient was not finite): skip it.
fn step_skipped() -> bool {
    return GATED && gate[0] != 0u;
}

// β^t by repeated squaring: at most 2·log2(t) multiplications, each correctly rounded, so
// within 2·log2(t) ULP. WGSL's pow(β, t) is exp2(t·log2 β), and log2 near 1 is only good to
// 2⁻²¹ absolute: for β2 = 0.999 that is 3·10⁻⁴ of log2 β, which 1 − β^t would keep.
fn power(base: f32, t: u32) -> f32 {
    var result = 1.0;
    var square = base;
    var e = t;
    loop {
        if (e == 0u) { break; }
        if ((e & 1u) == 1u) { result = result * square; }
        square = square * square;
        e = e >> 1u;
    }
    return result;
}

// Adam's bias corrections (1 − β1^t, 1 − β2^t) for this step: the host's (from f64), unless the
// loss scaler skipped steps, which Adam's step count must not include.
fn adam_bias_corrections() -> vec2<f32> {
    var bc = vec2<f32>(p.bias_correction1, p.bias_correction2);
    if (GATED && gate[1] != 0u) {
        let t = p.step - gate[1];
        bc = vec2<f32>(1.0 - power(p.beta1, t), 1.0 - power(p.beta2, t));
    }
    return bc;
}

@compute @workgroup_size(256)
fn optim_adam_step_vec4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    if (i >= p.numel / 4u || step_skipped()) { return; }
    let bc = adam_bias_corrections();
    var w = param4[i];
    var g = grad4[i];
    if (p.decoupled == 0u) {
        g = g + p.weight_decay * w;
    } else {
        w = w * (1.0 - p.lr * p.weight_decay);
    }
    let mi = p.beta1 * m4[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v4[i] + (1.0 - p.beta2) * g * g;
    m4[i] = mi;
    v4[i] = vi;
    param4[i] = w - p.lr * (mi / bc.x) / (sqrt(vi / bc.y) + p.eps);
}

@compute @workgroup_size(256)
fn optim_adam_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    if (i >= p.numel || step_skipped()) { return; }
    let bc = adam_bias_corrections();
    var w = param[i];
    var g = grad[i];
    if (p.decoupled == 0u) {
        g = g + p.weight_decay * w;
    } else {
        w = w * (1.0 - p.lr * p.weight_decay);
    }
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = w - p.lr * (mi / bc.x) / (sqrt(vi / bc.y) + p.eps);
}

@compute @workgroup_size(256)
fn optim_sgd_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    if (i >= sgd.numel || step_skipped()) { return; }
    let w = param[i];
    let g = grad[i] + sgd.weight_decay * w;
    param[i] = w - sgd.lr * g;
}

@compute @workgroup_size(256)
fn optim_sgd_momentum_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    if (i >= sgd.numel || step_skipped()) { return; }
    let w = param[i];
    let g = grad[i] + sgd.weight_decay * w;
    let velocity = sgd.momentum * state[i] + g;
    state[i] = velocity;
    var update = velocity;
    if (sgd.nesterov != 0u) {
        update = g + sgd.momentum * velocity;
    }
    param[i] = w - sgd.lr * update;
}

@compute @workgroup_size(256)
fn optim_adaptive_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    if (i >= adaptive.numel || step_skipped()) { return; }
    let w = param[i];
    let g = grad[i] + adaptive.weight_decay * w;
    let s = adaptive.decay * state[i] + adaptive.gain * g * g;
    state[i] = s;
    param[i] = w - adaptive.lr * g / (sqrt(s) + adaptive.eps);
}
