// augment.wgsl: data augmentation of a minibatch of images that stays on the device.
//
// Images are rows of an f32 [count, channels · height · width] tensor, channel-major within a
// row, with values in [0, 1] (augmentation runs before the fitted normalisation). The random
// choices (one small row per image) are drawn on the host from (seed, epoch) and uploaded once
// per epoch, so every backend applies the same transform to the same image.
//
// augment_warp: out[b, c, y, x] = sample(images[b, c], m · (x, y, 1)), with m the 2 × 3 map
//   from output to source pixel coordinates in choices[b, 0..6] (row-major). Horizontal flips
//   (m = [−1 0 w−1; 0 1 0]) and padded crops (m = [1 0 dx; 0 1 dy]) use nearest sampling, which
//   is exact for integer maps; random affine transforms use bilinear sampling. Outside the
//   image a tap reads zero, or reflects about the edge pixels when `reflect` is set.
//   Mapping: one invocation per output element (2-D grid of 256-wide workgroups).
// augment_jitter: colour jitter with choices[b] = (brightness, contrast, saturation), applied
//   in that order, each clamped to [0, 1] as torchvision does: v ← v · brightness; v ← (v − m) ·
//   contrast + m with m the mean grey level of the brightened image; v ← (v − g) · saturation +
//   g with g the pixel's grey level (ITU-R 601 weights for three channels, the channel mean
//   otherwise). Mapping: one 256-wide workgroup per image; it reduces the mean grey level in
//   workgroup memory, then each invocation writes pixels lid, lid + 256, ….
// augment_cutmix: out[b, c, y, x] = images[partner, c, y, x] inside the half-open box
//   [x0, x1) × [y0, y1) and images[b, c, y, x] outside, with choices[b] = (partner, x0, y0, x1,
//   y1) (u32, partner an index within the batch). Mapping: one invocation per output element.

struct ImageParams {
    count: u32,
    channels: u32,
    height: u32,
    width: u32,
    // augment_warp only: 1 for bilinear sampling, 1 for reflect padding.
    bilinear: u32,
    reflect: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ImageParams;
@group(0) @binding(1) var<storage, read> images: array<f32>;
// Per-image choices: f32 bit patterns for warp matrices and jitter factors (read through
// `choice`), u32 for cutmix boxes.
@group(0) @binding(2) var<storage, read> choices: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn choice(i: u32) -> f32 {
    return bitcast<f32>(choices[i]);
}

// Reflects an integer coordinate into [0, size) about the edge pixels (no edge repeat).
fn reflect_index(i: i32, size: i32) -> i32 {
    if (size == 1) { return 0; }
    let period = 2 * (size - 1);
    var r = abs(i) % period;
    if (r >= size) { r = period - r; }
    return r;
}

// The pixel at (x, y) of the plane starting at `base`, or zero / the reflected pixel outside.
fn tap(base: u32, x: i32, y: i32) -> f32 {
    let w = i32(p.width);
    let h = i32(p.height);
    var xx = x;
    var yy = y;
    if (p.reflect == 1u) {
        xx = reflect_index(x, w);
        yy = reflect_index(y, h);
    } else if (x < 0 || x >= w || y < 0 || y >= h) {
        return 0.0;
    }
    return images[base + u32(yy) * p.width + u32(xx)];
}

@compute @workgroup_size(256)
fn augment_warp(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    let plane = p.height * p.width;
    if (i >= p.count * p.channels * plane) { return; }
    let b = i / (p.channels * plane);
    let within = i % plane;
    let base = i - within;
    let x = f32(within % p.width);
    let y = f32(within / p.width);
    let m = b * 6u;
    let sx = choice(m) * x + choice(m + 1u) * y + choice(m + 2u);
    let sy = choice(m + 3u) * x + choice(m + 4u) * y + choice(m + 5u);
    if (p.bilinear == 0u) {
        out[i] = tap(base, i32(floor(sx + 0.5)), i32(floor(sy + 0.5)));
        return;
    }
    let x0 = floor(sx);
    let y0 = floor(sy);
    let fx = sx - x0;
    let fy = sy - y0;
    let ix = i32(x0);
    let iy = i32(y0);
    let top = tap(base, ix, iy) * (1.0 - fx) + tap(base, ix + 1, iy) * fx;
    let bottom = tap(base, ix, iy + 1) * (1.0 - fx) + tap(base, ix + 1, iy + 1) * fx;
    out[i] = top * (1.0 - fy) + bottom * fy;
}

var<workgroup> grey_partial: array<f32, 256>;

// The grey level of pixel k of image b after the brightness factor.
fn grey_after_brightness(image: u32, k: u32, plane: u32, brightness: f32) -> f32 {
    if (p.channels == 3u) {
        let r = clamp(images[image + k] * brightness, 0.0, 1.0);
        let g = clamp(images[image + plane + k] * brightness, 0.0, 1.0);
        let bl = clamp(images[image + 2u * plane + k] * brightness, 0.0, 1.0);
        return 0.299 * r + 0.587 * g + 0.114 * bl;
    }
    var sum = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        sum += clamp(images[image + c * plane + k] * brightness, 0.0, 1.0);
    }
    return sum / f32(p.channels);
}

@compute @workgroup_size(256)
fn augment_jitter(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = workgroup_linear(wid, num);
    if (b >= p.count) { return; }
    let plane = p.height * p.width;
    let image = b * p.channels * plane;
    let brightness = choice(b * 3u);
    let contrast = choice(b * 3u + 1u);
    let saturation = choice(b * 3u + 2u);

    var sum = 0.0;
    for (var k = lid.x; k < plane; k += 256u) {
        sum += grey_after_brightness(image, k, plane, brightness);
    }
    grey_partial[lid.x] = sum;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if (lid.x < stride) {
            grey_partial[lid.x] += grey_partial[lid.x + stride];
        }
        workgroupBarrier();
    }
    let mean = grey_partial[0] / f32(plane);

    for (var k = lid.x; k < plane; k += 256u) {
        // Brightness and contrast per channel, then the pixel's grey level for saturation.
        var v: array<f32, 4>;
        var grey = 0.0;
        let weighted = p.channels == 3u;
        for (var c = 0u; c < min(p.channels, 4u); c++) {
            let bright = clamp(images[image + c * plane + k] * brightness, 0.0, 1.0);
            v[c] = clamp((bright - mean) * contrast + mean, 0.0, 1.0);
            if (weighted) {
                grey += select(select(0.114, 0.587, c == 1u), 0.299, c == 0u) * v[c];
            } else {
                grey += v[c] / f32(p.channels);
            }
        }
        for (var c = 0u; c < min(p.channels, 4u); c++) {
            out[image + c * plane + k] = clamp((v[c] - grey) * saturation + grey, 0.0, 1.0);
        }
    }
}

@compute @workgroup_size(256)
fn augment_cutmix(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) num: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = workgroup_linear(wid, num) * 256u + lid.x;
    let features = p.channels * p.height * p.width;
    if (i >= p.count * features) { return; }
    let b = i / features;
    let within = i % features;
    let x = within % p.width;
    let y = (within / p.width) % p.height;
    let box = b * 5u;
    let inside = x >= choices[box + 1u] && x < choices[box + 3u] && y >= choices[box + 2u] && y < choices[box + 4u];
    var source = b;
    if (inside && choices[box] < p.count) {
        source = choices[box];
    }
    out[i] = images[source * features + within];
}
