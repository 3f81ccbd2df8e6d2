// common.wgsl: Kiln's WGSL prelude. The loader prepends it to every kernel file (after any
// `enable` directives), so these helpers exist once.
//
// - Dispatches larger than 65535 workgroups use a 2-D grid; `workgroup_linear` turns the
//   workgroup id back into one index.
// - Op codes: `unary_eval`/`unary_derivative` switch on UnaryOp::code() and `binary_eval` on
//   BinaryOp::code() (crates/kiln-tensor/src/ops.rs), through the named constants below
//   (UNARY_RELU, BINARY_ADD, REDUCE_ARGMAX, ...). Kernels pass the code as an `override`, so
//   each pipeline folds the switch away.

// Op codes, by name: UnaryOp::code() and BinaryOp::code() (crates/kiln-tensor/src/ops.rs);
// tests/shaders_validate.rs checks that each constant equals its op's code.
const UNARY_IDENTITY: u32 = 0u;
const UNARY_NEG: u32 = 1u;
const UNARY_ABS: u32 = 2u;
const UNARY_EXP: u32 = 3u;
const UNARY_LOG: u32 = 4u;
const UNARY_SQRT: u32 = 5u;
const UNARY_SQUARE: u32 = 6u;
const UNARY_RECIP: u32 = 7u;
const UNARY_SIGN: u32 = 8u;
const UNARY_SIGMOID: u32 = 9u;
const UNARY_TANH: u32 = 10u;
const UNARY_RELU: u32 = 11u;
const UNARY_LEAKY_RELU: u32 = 12u;
const UNARY_ELU: u32 = 13u;
const UNARY_SOFTPLUS: u32 = 14u;
const UNARY_HARD_TANH: u32 = 15u;
const UNARY_SILU: u32 = 16u;
const BINARY_ADD: u32 = 0u;
const BINARY_SUB: u32 = 1u;
const BINARY_MUL: u32 = 2u;
const BINARY_DIV: u32 = 3u;
const BINARY_MAX: u32 = 4u;
const BINARY_MIN: u32 = 5u;
const BINARY_POW: u32 = 6u;
const BINARY_EQ: u32 = 7u;
const BINARY_NE: u32 = 8u;
const BINARY_LT: u32 = 9u;
const BINARY_LE: u32 = 10u;
const BINARY_GT: u32 = 11u;
const BINARY_GE: u32 = 12u;
const REDUCE_SUM: u32 = 0u;
const REDUCE_MEAN: u32 = 1u;
const REDUCE_MAX: u32 = 2u;
const REDUCE_MIN: u32 = 3u;
const REDUCE_ARGMAX: u32 = 4u;

const NAN_BITS: u32 = 0x7fc00000u;

// f32 → f16 on bit patterns (the f16 in the low 16 bits): round to nearest even, ±inf from
// 65520 up (the first value that rounds past 65504), f16 subnormals kept, NaN stays NaN with
// the top of its payload: IEEE 754's conversion, which WGSL's f16()/pack2x16float do not
// promise out of range. Integer operations only, so every driver gives the same bits.
fn f16_bits_of_f32(bits: u32) -> u32 {
    let sign = (bits >> 16u) & 0x8000u;
    let a = bits & 0x7fffffffu;
    if (a > 0x7f800000u) {
        return sign | 0x7e00u | ((a >> 13u) & 0x3ffu);
    }
    if (a >= 0x477ff000u) {
        return sign | 0x7c00u;
    }
    if (a >= 0x38800000u) {
        // A normal f16: round at bit 13 (ties to even), then rebias the exponent (127 → 15);
        // a carry out of the mantissa moves into the exponent as it should.
        let rounded = a + 0xfffu + ((a >> 13u) & 1u);
        return sign | ((rounded >> 13u) - 0x1c000u);
    }
    if (a < 0x33000000u) {
        // Below 2⁻²⁵, half the smallest subnormal: rounds to zero.
        return sign;
    }
    // A subnormal f16 (or the smallest normal, by a carry): units of 2⁻²⁴, ties to even.
    let shift = 126u - (a >> 23u);
    let m = (a & 0x7fffffu) | 0x800000u;
    var q = m >> shift;
    let rest = m & ((1u << shift) - 1u);
    let half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (q & 1u) == 1u)) {
        q = q + 1u;
    }
    return sign | q;
}

// f16 (low 16 bits) → f32 bit pattern, exactly: subnormals become normal f32 values, inf stays
// inf, and NaN stays NaN (made quiet, its payload kept), as IEEE 754 and the CPU backend do.
fn f32_bits_of_f16(h: u32) -> u32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0x1fu) {
        return sign | select(0x7fc00000u | (m << 13u), 0x7f800000u, m == 0u);
    }
    if (e != 0u) {
        return sign | ((e + 112u) << 23u) | (m << 13u);
    }
    if (m == 0u) {
        return sign;
    }
    let top = 31u - countLeadingZeros(m);
    return sign | ((top + 103u) << 23u) | ((m << (23u - top)) & 0x7fffffu);
}

fn workgroup_linear(wid: vec3<u32>, num: vec3<u32>) -> u32 {
    return wid.y * num.x + wid.x;
}

// tanh saturates to ±1 in f32 beyond |x| ≈ 9; clamping avoids inf/inf in drivers that
// compute tanh through exp.
fn safe_tanh(x: f32) -> f32 {
    return tanh(clamp(x, -15.0, 15.0));
}

// The logistic function without overflow on either side.
fn stable_sigmoid(x: f32) -> f32 {
    if (x >= 0.0) {
        return 1.0 / (1.0 + exp(-x));
    }
    let e = exp(x);
    return e / (1.0 + e);
}

fn unary_eval(op: u32, x: f32, alpha: f32) -> f32 {
    switch op {
        case UNARY_IDENTITY: { return x; }
        case UNARY_NEG: { return -x; }
        case UNARY_ABS: { return abs(x); }
        case UNARY_EXP: { return exp(x); }
        case UNARY_LOG: { return log(x); }
        case UNARY_SQRT: { return sqrt(x); }
        case UNARY_SQUARE: { return x * x; }
        case UNARY_RECIP: { return 1.0 / x; }
        case UNARY_SIGN: { return sign(x); }
        case UNARY_SIGMOID: { return stable_sigmoid(x); }
        case UNARY_TANH: { return safe_tanh(x); }
        case UNARY_RELU: { return max(x, 0.0); }
        case UNARY_LEAKY_RELU: { return select(alpha * x, x, x > 0.0); }
        case UNARY_ELU: { return select(alpha * (exp(min(x, 0.0)) - 1.0), x, x > 0.0); }
        case UNARY_SOFTPLUS: { return max(x, 0.0) + log(1.0 + exp(-abs(x))); }
        case UNARY_HARD_TANH: { return clamp(x, -1.0, 1.0); }
        case UNARY_SILU: { return x * stable_sigmoid(x); }
        default: { return x; }
    }
}

// d/dx of unary_eval(op, x) at x.
fn unary_derivative(op: u32, x: f32, alpha: f32) -> f32 {
    switch op {
        case UNARY_IDENTITY: { return 1.0; }
        case UNARY_NEG: { return -1.0; }
        case UNARY_ABS: { return sign(x); }
        case UNARY_EXP: { return exp(x); }
        case UNARY_LOG: { return 1.0 / x; }
        case UNARY_SQRT: { return 0.5 / sqrt(x); }
        case UNARY_SQUARE: { return 2.0 * x; }
        case UNARY_RECIP: { return -1.0 / (x * x); }
        case UNARY_SIGN: { return 0.0; }
        case UNARY_SIGMOID: { let s = stable_sigmoid(x); return s * (1.0 - s); }
        case UNARY_TANH: { let t = safe_tanh(x); return 1.0 - t * t; }
        case UNARY_RELU: { return select(0.0, 1.0, x > 0.0); }
        case UNARY_LEAKY_RELU: { return select(alpha, 1.0, x > 0.0); }
        case UNARY_ELU: { return select(alpha * exp(min(x, 0.0)), 1.0, x > 0.0); }
        case UNARY_SOFTPLUS: { return stable_sigmoid(x); }
        case UNARY_HARD_TANH: { return select(0.0, 1.0, abs(x) < 1.0); }
        case UNARY_SILU: { let s = stable_sigmoid(x); return s * (1.0 + x * (1.0 - s)); }
        default: { return 1.0; }
    }
}

fn binary_eval(op: u32, a: f32, b: f32) -> f32 {
    switch op {
        case BINARY_ADD: { return a + b; }
        case BINARY_SUB: { return a - b; }
        case BINARY_MUL: { return a * b; }
        case BINARY_DIV: { return a / b; }
        case BINARY_MAX: { return max(a, b); }
        case BINARY_MIN: { return min(a, b); }
        case BINARY_POW: { return pow(a, b); }
        case BINARY_EQ: { return select(0.0, 1.0, a == b); }
        case BINARY_NE: { return select(0.0, 1.0, a != b); }
        case BINARY_LT: { return select(0.0, 1.0, a < b); }
        case BINARY_LE: { return select(0.0, 1.0, a <= b); }
        case BINARY_GT: { return select(0.0, 1.0, a > b); }
        case BINARY_GE: { return select(0.0, 1.0, a >= b); }
        default: { return a; }
    }
}

// Parameters of the strided elementwise kernels (elementwise.wgsl, activation.wgsl): up to
// three operands viewed over one shape of ≤ 8 dimensions, each with its own strides (0 for a
// broadcast dimension) and offset. Mirrors `StridedParams` in src/wgpu/elementwise.rs.
struct StridedParams {
    numel: u32,
    rank: u32,
    alpha: f32,
    scalar: f32,
    offset_a: u32,
    offset_b: u32,
    offset_c: u32,
    // bit 0: a contiguous, bit 1: b, bit 2: c; bit 3: the scalar is the left operand.
    flags: u32,
    shape: array<vec4<u32>, 2>,
    strides_a: array<vec4<u32>, 2>,
    strides_b: array<vec4<u32>, 2>,
    strides_c: array<vec4<u32>, 2>,
}

// Storage index of row-major element `i` of an operand with strides (s0, s1) and `offset`
// over `shape`. One exit, no early return: software drivers run divergent exits per lane.
fn strided_index(i: u32, rank: u32, shape: array<vec4<u32>, 2>, s0: vec4<u32>, s1: vec4<u32>, offset: u32, contiguous: bool) -> u32 {
    var index = offset + i;
    if (!contiguous) {
        var rest = i;
        index = offset;
        for (var d = i32(rank) - 1; d >= 0; d = d - 1) {
            let du = u32(d);
            var dim: u32;
            var stride: u32;
            if (du < 4u) { dim = shape[0][du]; stride = s0[du]; } else { dim = shape[1][du - 4u]; stride = s1[du - 4u]; }
            index = index + (rest % dim) * stride;
            rest = rest / dim;
        }
    }
    return index;
}

// Parameters of the `_vec4` forms of the elementwise kernels (elementwise.wgsl,
// activation.wgsl), which read and write four consecutive elements per invocation. Every
// operand is either contiguous or one contiguous block repeated along leading broadcast
// dimensions (a bias row over a batch); offsets and periods count vec4s. Mirrors `QuadParams`
// in src/wgpu/elementwise.rs.
struct QuadParams {
    quads: u32,
    alpha: f32,
    scalar: f32,
    // bit 3: the scalar is the left operand (as StridedParams).
    flags: u32,
    offset_a: u32,
    offset_b: u32,
    // The operand repeats every `period` vec4s; 0: it does not (plain contiguous).
    period_a: u32,
    period_b: u32,
}

fn quad_index(q: u32, offset: u32, period: u32) -> u32 {
    var index = offset + q;
    if (period != 0u) {
        index = offset + q % period;
    }
    return index;
}

fn unary_eval4(op: u32, x: vec4<f32>, alpha: f32) -> vec4<f32> {
    return vec4<f32>(unary_eval(op, x.x, alpha), unary_eval(op, x.y, alpha), unary_eval(op, x.z, alpha), unary_eval(op, x.w, alpha));
}

fn unary_derivative4(op: u32, x: vec4<f32>, alpha: f32) -> vec4<f32> {
    return vec4<f32>(unary_derivative(op, x.x, alpha), unary_derivative(op, x.y, alpha), unary_derivative(op, x.z, alpha), unary_derivative(op, x.w, alpha));
}

fn binary_eval4(op: u32, a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(binary_eval(op, a.x, b.x), binary_eval(op, a.y, b.y), binary_eval(op, a.z, b.z), binary_eval(op, a.w, b.w));
}

// Parameters of both matmul kernels (matmul.wgsl, matmul_subgroup.wgsl); mirrors
// `MatmulParams` in src/wgpu/matmul.rs.
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    alpha: f32,
    batch_stride_a: u32,
    batch_stride_b: u32,
    // Texels (vec4s) per row of C, for kernels that store vec4s: ceil(n / 4).
    c_texels: u32,
    // Texels of C's binding before its first element (matmul_texture with PLANES; else 0).
    c_offset: u32,
}

// The geometry of a 2-D convolution, shared by conv.wgsl and conv_texture.wgsl (mirrors
// `ConvGeometry` in src/wgpu/conv.rs): input [N, in_channels, height, width], weights
// [out_channels, in_channels, kernel_h, kernel_w], output [N, out_channels, out_height,
// out_width]; output pixel (oh, ow)'s tap (kh, kw) reads input pixel (oh·stride + kh·dilation
// − padding, ow·stride + kw·dilation − padding), zero outside the image. With `groups` > 1
// (conv.wgsl's grouped kernels only) the weights are [out_channels, in_channels / groups, kernel_h,
// kernel_w] and output channel o reads the input channels of its group o / (out_channels /
// groups).
struct ConvGeometry {
    in_channels: u32,
    height: u32,
    width: u32,
    out_channels: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride: u32,
    padding: u32,
    dilation: u32,
    out_height: u32,
    out_width: u32,
    groups: u32,
}
