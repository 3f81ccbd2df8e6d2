// conv_texture.wgsl: the convolution's GEMM operands packed into rgba32float textures for the
// texture matmul (matmul_texture.wgsl), on CPU-type adapters where texel fetches vectorise and
// storage loads do not (see that file's header). Each pass packs the unfolded operands of one
// chunk of images straight into the texture the multiply samples (the packed texture is the
// only copy, as for a plain product), then matmul_texture multiplies them.
//
// x [N, C, H, W], w [O, C, KH, KW], dy [N, O, OH, OW]; taps = KH·KW; input row
// oh·stride + kh·dilation − padding is the one tap kh of output row oh reads (outside: zero).
// A texture holds K rows of X/4 texels; texel (t, k) = (op(k, 4t), …, op(k, 4t + 3)), zero
// past K and X. The images' planes lie side by side along X, each padded to whole texels
// (`plane_texels`), so no texel straddles two images.
//
// forward (matmul M = O, X = pixels, K = C·taps):
//   A = w as [O, C·taps]: matmul_texture_pack;
//   conv_texture_pack_patches: B(k = (c, kh, kw), (n, oh, ow)) = x[n, c] at that tap.
//   the product is [N, plane padded to texels, O padded to 4] (pixels as rows, as a plain
//   matmul of the same shape runs fastest); conv_texture_rows_to_planes moves it into y.
// backward input (M = C, X = input pixels, K = O·taps):
//   conv_texture_pack_weights_t: A(c, (o, kh, kw)) = w[o, c, kh, kw];
//   conv_texture_pack_grad_patches: B((o, kh, kw), (n, h, w)) = dy[n, o, oh, ow] for the
//   output pixel whose tap (kh, kw) reads input pixel (h, w), zero when none does.
// backward weight (M = O, X = C·taps, K = the chunk's output pixels, dense):
//   conv_texture_pack_grad_rows: A(o, (n, oh, ow)) = dy[n, o, oh, ow];
//   conv_texture_pack_patch_rows: B((n, oh, ow), (c, kh, kw)) = x[n, c] at that tap.
//
// Mapping of the packs: one invocation per texel, 8×8 per workgroup; global_invocation_id.x walks the
// source's contiguous direction (pixels, or K for the K-contiguous operands).
// Every divisor is an override constant (the uniform holds the same values), so the compiler
// turns the index splits into multiplies and shifts: a software driver runs a division by a
// runtime value one lane at a time, which made these packs 3-6× slower than a plain pack.
// Loads outside the image are clamped and their values selected away, with no branch.

override KERNEL_H: u32 = 1u;
override KERNEL_W: u32 = 1u;
override STRIDE: u32 = 1u;
override WIDTH: u32 = 1u;
override OUT_WIDTH: u32 = 1u;
override OUT_PLANE: u32 = 1u;
override PLANE_TEXELS: u32 = 1u;

// Mirrors `PackParams` in src/wgpu/conv_texture.rs.
struct PackParams {
    g: ConvGeometry,
    // The chunk's first image and its image count.
    first_image: u32,
    images: u32,
    // Rows of op holding data (K) and columns along X holding data.
    k: u32,
    x: u32,
    // Texels per image plane along X (ceil(plane / 4)); unused when X is not pixels.
    plane_texels: u32,
    // The packed texture: texels per row, rows.
    tex_width: u32,
    tex_height: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> q: PackParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var packed: texture_storage_2d<rgba32float, write>;
@group(0) @binding(1) var<storage, read> rows4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> planes: array<f32>;

// Tap index j of a patch: (channel, kh, kw).
fn split_tap(j: u32) -> vec3<u32> {
    let c = j / (KERNEL_H * KERNEL_W);
    let r = j - c * (KERNEL_H * KERNEL_W);
    let kh = r / KERNEL_W;
    return vec3<u32>(c, kh, r - kh * KERNEL_W);
}

// x[image, c] at output pixel (oh, ow)'s tap (kh, kw); zero in the padding and when `valid`
// is false.
fn input_tap(image: u32, tap: vec3<u32>, oh: u32, ow: u32, valid: bool) -> f32 {
    let ih = i32(oh * STRIDE + tap.y * q.g.dilation) - i32(q.g.padding);
    let iw = i32(ow * STRIDE + tap.z * q.g.dilation) - i32(q.g.padding);
    let inside = valid && ih >= 0 && iw >= 0 && ih < i32(q.g.height) && iw < i32(q.g.width);
    let row = u32(clamp(ih, 0, i32(q.g.height) - 1));
    let column = u32(clamp(iw, 0, i32(q.g.width) - 1));
    let v = src[((image * q.g.in_channels + tap.x) * q.g.height + row) * q.g.width + column];
    return select(0.0, v, inside);
}

@compute @workgroup_size(8, 8)
fn conv_texture_pack_patches(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let k = gid.y;
    if (t >= q.tex_width || k >= q.tex_height) {
        return;
    }
    var texel = vec4<f32>(0.0);
    let g = t / PLANE_TEXELS;
    if (k < q.k && g < q.images) {
        let tap = split_tap(k);
        let first = (t - g * PLANE_TEXELS) * 4u;
        var oh = first / OUT_WIDTH;
        var ow = first - oh * OUT_WIDTH;
        for (var i = 0u; i < 4u; i = i + 1u) {
            texel[i] = input_tap(q.first_image + g, tap, oh, ow, first + i < OUT_PLANE);
            ow = ow + 1u;
            let wrap = ow == OUT_WIDTH;
            ow = select(ow, 0u, wrap);
            oh = select(oh, oh + 1u, wrap);
        }
    }
    textureStore(packed, vec2<u32>(t, k), texel);
}

@compute @workgroup_size(8, 8)
fn conv_texture_pack_grad_patches(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let k = gid.y;
    if (t >= q.tex_width || k >= q.tex_height) {
        return;
    }
    var texel = vec4<f32>(0.0);
    let g = t / PLANE_TEXELS;
    if (k < q.k && g < q.images) {
        // k = (o, kh, kw): split_tap's channel is the output channel here.
        let tap = split_tap(k);
        let plane = q.g.height * q.g.width;
        let base = ((q.first_image + g) * q.g.out_channels + tap.x) * OUT_PLANE;
        let first = (t - g * PLANE_TEXELS) * 4u;
        var h = first / WIDTH;
        var w = first - h * WIDTH;
        for (var i = 0u; i < 4u; i = i + 1u) {
            let th = i32(h + q.g.padding) - i32(tap.y * q.g.dilation);
            let tw = i32(w + q.g.padding) - i32(tap.z * q.g.dilation);
            // u32 of a negative is huge, so one comparison rejects both ends.
            let oh = u32(th) / STRIDE;
            let ow = u32(tw) / STRIDE;
            let hit = first + i < plane && oh * STRIDE == u32(th) && ow * STRIDE == u32(tw)
                && th >= 0 && tw >= 0 && oh < q.g.out_height && ow < OUT_WIDTH;
            let v = src[base + min(oh, q.g.out_height - 1u) * OUT_WIDTH + min(ow, OUT_WIDTH - 1u)];
            texel[i] = select(0.0, v, hit);
            w = w + 1u;
            let wrap = w == WIDTH;
            w = select(w, 0u, wrap);
            h = select(h, h + 1u, wrap);
        }
    }
    textureStore(packed, vec2<u32>(t, k), texel);
}

@compute @workgroup_size(8, 8)
fn conv_texture_pack_weights_t(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    let t = gid.y;
    if (t >= q.tex_width || k >= q.tex_height) {
        return;
    }
    var texel = vec4<f32>(0.0);
    if (k < q.k) {
        let taps = KERNEL_H * KERNEL_W;
        let o = k / taps;
        let tap = k - o * taps;
        for (var i = 0u; i < 4u; i = i + 1u) {
            let c = t * 4u + i;
            if (c < q.x) {
                texel[i] = src[(o * q.g.in_channels + c) * taps + tap];
            }
        }
    }
    textureStore(packed, vec2<u32>(t, k), texel);
}

@compute @workgroup_size(8, 8)
fn conv_texture_pack_grad_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let k = gid.x;
    let t = gid.y;
    if (t >= q.tex_width || k >= q.tex_height) {
        return;
    }
    var texel = vec4<f32>(0.0);
    if (k < q.k) {
        let g = k / OUT_PLANE;
        let pixel = k - g * OUT_PLANE;
        for (var i = 0u; i < 4u; i = i + 1u) {
            let o = min(t * 4u + i, q.x - 1u);
            let v = src[((q.first_image + g) * q.g.out_channels + o) * OUT_PLANE + pixel];
            texel[i] = select(0.0, v, t * 4u + i < q.x);
        }
    }
    textureStore(packed, vec2<u32>(t, k), texel);
}

@compute @workgroup_size(8, 8)
fn conv_texture_pack_patch_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let k = gid.y;
    if (t >= q.tex_width || k >= q.tex_height) {
        return;
    }
    var texel = vec4<f32>(0.0);
    if (k < q.k) {
        let g = k / OUT_PLANE;
        let pixel = k - g * OUT_PLANE;
        let oh = pixel / OUT_WIDTH;
        let ow = pixel - oh * OUT_WIDTH;
        // The 4 taps are consecutive: split the first, then step kw (and carry into kh, c).
        var tap = split_tap(t * 4u);
        for (var i = 0u; i < 4u; i = i + 1u) {
            // Past the last tap the channel index runs out of the image: clamp it.
            let valid = t * 4u + i < q.x;
            let c = select(0u, tap.x, valid);
            texel[i] = input_tap(q.first_image + g, vec3<u32>(c, tap.y, tap.z), oh, ow, valid);
            tap.z = tap.z + 1u;
            let wrap_w = tap.z == KERNEL_W;
            tap.z = select(tap.z, 0u, wrap_w);
            tap.y = select(tap.y, tap.y + 1u, wrap_w);
            let wrap_h = tap.y == KERNEL_H;
            tap.y = select(tap.y, 0u, wrap_h);
            tap.x = select(tap.x, tap.x + 1u, wrap_h);
        }
    }
    textureStore(packed, vec2<u32>(t, k), texel);
}

// y[n, o, pixel] = rows[(n·plane_texels·4 + pixel)·x + o] (x: O padded to 4), the forward
// product's rows moved into NCHW planes. One invocation per pixel and 4 output channels (one
// vec4 load, 4 stores): x walks the pixels (64 per workgroup), y the channel texels, z the
// images.
@compute @workgroup_size(64)
fn conv_texture_rows_to_planes(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pixel = gid.x;
    let o4 = gid.y;
    let n = gid.z;
    if (pixel >= OUT_PLANE) {
        return;
    }
    let row = n * PLANE_TEXELS * 4u + pixel;
    let v = rows4[row * (q.x / 4u) + o4];
    let base = (n * q.g.out_channels + o4 * 4u) * OUT_PLANE + pixel;
    for (var i = 0u; i < 4u; i = i + 1u) {
        if (o4 * 4u + i < q.g.out_channels) {
            planes[base + i * OUT_PLANE] = v[i];
        }
    }
}
