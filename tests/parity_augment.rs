//! Minibatch augmentation: every transform GPU vs CPU on the same seeded choices at awkward
//! image sizes, the invariants (a flip twice is the identity, a zero-shift crop and an identity
//! affine change nothing, CutMix's label weight is the pasted area), hand-computed values,
//! determinism by seed, and the errors for bad options.

mod common;
use common::*;
use kiln::data::{normal_quantile, Augmentation, DeviceAugmentation, EpochChoices};
use kiln::prelude::*;
use kiln::tensor::{ImageShape, Warp};

const SHAPES: [ImageShape; 3] = [
    ImageShape {
        channels: 3,
        height: 17,
        width: 13,
    },
    ImageShape {
        channels: 1,
        height: 28,
        width: 28,
    },
    ImageShape {
        channels: 2,
        height: 1,
        width: 7,
    },
];

fn augmentation(transforms: &[&str]) -> Augmentation {
    Augmentation {
        transforms: transforms.iter().map(|t| t.parse().unwrap()).collect(),
        ..Augmentation::default()
    }
}

fn images<B: Backend>(seed: u64, count: usize, image: ImageShape, backend: &B) -> Tensor<B> {
    let v = random_vec(seed, count * image.features(), 0.0, 1.0);
    Tensor::from_vec(v, [count, image.features()], backend).unwrap()
}

/// Applies one epoch's choices for `aug` to `count` images at positions [start, start + len).
fn augmented<B: Backend>(
    aug: &Augmentation,
    image: ImageShape,
    x: &Tensor<B>,
    batch: usize,
    start: usize,
    backend: &B,
) -> (Tensor<B>, Option<kiln::data::LabelMix<B>>) {
    let count = x.dims()[0];
    let total = start + count + 5;
    let choices = EpochChoices::draw(aug, image, total, batch, 11, 2);
    let device = DeviceAugmentation::upload(aug, &choices, image, backend).unwrap();
    device.apply(x, start, count).unwrap()
}

#[test]
fn every_transform_matches_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let cases: [(&[&str], Tolerance, &str); 7] = [
        (&["flip"], EXACT, "flip"),
        (&["crop"], EXACT, "crop zero"),
        (&["crop"], EXACT, "crop reflect"),
        (&["affine"], precision::augmentation(32), "affine"),
        (&["jitter"], precision::augmentation(32), "jitter"),
        (&["cutmix"], EXACT, "cutmix"),
        (
            &["crop", "flip", "affine", "jitter", "cutmix"],
            precision::augmentation(32),
            "all",
        ),
    ];
    for (s, image) in SHAPES.iter().enumerate() {
        for (transforms, tol, name) in cases {
            let mut aug = augmentation(transforms);
            aug.cutmix_p = 1.0;
            if name == "crop reflect" {
                aug.crop_padding_mode = PaddingMode::Reflect;
            }
            aug.crop_padding = aug.crop_padding.min(image.height.min(image.width) - 1);
            let count = 33;
            let g = augmented(
                &aug,
                *image,
                &images(s as u64, count, *image, &gpu),
                16,
                7,
                &gpu,
            );
            let c = augmented(
                &aug,
                *image,
                &images(s as u64, count, *image, &cpu()),
                16,
                7,
                &cpu(),
            );
            let what = format!("{name} on {image:?}");
            assert_tensors_close(&what, &g.0, &c.0, tol);
            if let (Some(gm), Some(cm)) = (&g.1, &c.1) {
                assert_tensors_close(&what, &gm.partner, &cm.partner, EXACT);
                assert_tensors_close(&what, &gm.weight, &cm.weight, EXACT);
            }
            let v = g.0.to_vec::<f32>().unwrap();
            assert!(
                v.iter().all(|x| (0.0..=1.0).contains(x)),
                "{what}: out of [0, 1]"
            );
        }
    }
}

fn flip_matrices<B: Backend>(count: usize, width: usize, backend: &B) -> Tensor<B> {
    let row = [-1.0f32, 0.0, width as f32 - 1.0, 0.0, 1.0, 0.0];
    Tensor::from_vec(row.repeat(count), [count, 6], backend).unwrap()
}

fn check_invariants<B: Backend>(backend: &B) {
    let nearest = Warp {
        bilinear: false,
        reflect: false,
    };
    for (s, image) in SHAPES.iter().enumerate() {
        let x = images(40 + s as u64, 9, *image, backend);
        let original = x.to_vec::<f32>().unwrap();
        // A flip twice is the identity, and a flip moves column x to width − 1 − x.
        let m = flip_matrices(9, image.width, backend);
        let once = x.warp_images(*image, &m, nearest).unwrap();
        let twice = once.warp_images(*image, &m, nearest).unwrap();
        assert_eq!(
            twice.to_vec::<f32>().unwrap(),
            original,
            "flip twice {image:?}"
        );
        let flipped = once.to_vec::<f32>().unwrap();
        assert_eq!(flipped[0], original[image.width - 1]);
        // A crop with zero shift (either padding) and an identity affine change nothing.
        let identity = [1.0f32, 0.0, 0.0, 0.0, 1.0, 0.0].repeat(9);
        let identity = Tensor::from_vec(identity, [9, 6], backend).unwrap();
        for warp in [
            nearest,
            Warp {
                bilinear: false,
                reflect: true,
            },
            Warp {
                bilinear: true,
                reflect: false,
            },
        ] {
            let same = x.warp_images(*image, &identity, warp).unwrap();
            assert_eq!(
                same.to_vec::<f32>().unwrap(),
                original,
                "{warp:?} {image:?}"
            );
        }
        // Jitter with unit factors changes nothing but clamping (inputs are in [0, 1]).
        let ones = Tensor::from_vec(vec![1.0f32; 27], [9, 3], backend).unwrap();
        let jittered = x
            .jitter_images(*image, &ones)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_close(
            "unit jitter",
            &to64(&jittered),
            &to64(&original),
            precision::augmentation(32),
        );
    }
}

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn invariants_hold_on_both_backends() {
    check_invariants(&cpu());
    if let Some(gpu) = gpu() {
        check_invariants(&gpu);
    }
}

fn check_known_values<B: Backend>(backend: &B) {
    // One row of 4 pixels shifted left by 2 with reflect padding: x ↦ in[reflect(x − 2)].
    let row = ImageShape {
        channels: 1,
        height: 1,
        width: 4,
    };
    let x = Tensor::from_vec(vec![0.1f32, 0.2, 0.3, 0.4], [1, 4], backend).unwrap();
    let shift = |reflect| {
        let m = Tensor::from_vec(vec![1.0f32, 0.0, -2.0, 0.0, 1.0, 0.0], [1, 6], backend).unwrap();
        let warp = Warp {
            bilinear: false,
            reflect,
        };
        x.warp_images(row, &m, warp)
            .unwrap()
            .to_vec::<f32>()
            .unwrap()
    };
    assert_eq!(shift(true), vec![0.3, 0.2, 0.1, 0.2]);
    assert_eq!(shift(false), vec![0.0, 0.0, 0.1, 0.2]);
    // Bilinear sampling half a pixel to the right averages neighbours (zero beyond the edge).
    let m = Tensor::from_vec(vec![1.0f32, 0.0, 0.5, 0.0, 1.0, 0.0], [1, 6], backend).unwrap();
    let half = x
        .warp_images(
            row,
            &m,
            Warp {
                bilinear: true,
                reflect: false,
            },
        )
        .unwrap()
        .to_vec::<f32>()
        .unwrap();
    assert_close(
        "bilinear",
        &to64(&half),
        &[0.15, 0.25, 0.35, 0.2],
        precision::augmentation(32),
    );
    // Colour: brightness 0.5 halves; saturation 0 turns an RGB pixel grey (ITU-R 601).
    let rgb = ImageShape {
        channels: 3,
        height: 1,
        width: 1,
    };
    let pixel = Tensor::from_vec(vec![1.0f32, 0.5, 0.0], [1, 3], backend).unwrap();
    let jitter = |f: [f32; 3]| {
        let f = Tensor::from_vec(f.to_vec(), [1, 3], backend).unwrap();
        to64(
            &pixel
                .jitter_images(rgb, &f)
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
        )
    };
    assert_close(
        "brightness",
        &jitter([0.5, 1.0, 1.0]),
        &[0.5, 0.25, 0.0],
        precision::augmentation(32),
    );
    let grey = 0.299 + 0.587 * 0.5;
    assert_close(
        "saturation",
        &jitter([1.0, 1.0, 0.0]),
        &[grey; 3],
        precision::augmentation(32),
    );
    // Contrast 0 leaves the image's mean grey level everywhere (one pixel: its grey level).
    assert_close(
        "contrast",
        &jitter([1.0, 0.0, 1.0]),
        &[grey; 3],
        precision::augmentation(32),
    );
}

#[test]
fn transforms_match_hand_computed_values() {
    check_known_values(&cpu());
    if let Some(gpu) = gpu() {
        check_known_values(&gpu);
    }
}

#[test]
fn cutmix_label_weight_is_the_pasted_area() {
    let image = ImageShape {
        channels: 2,
        height: 9,
        width: 11,
    };
    let count = 20;
    // Image b is constant b + 1, so every pixel says which image it came from.
    let mut v = Vec::new();
    for b in 0..count {
        v.extend(std::iter::repeat_n(
            (b + 1) as f32 / 100.0,
            image.features(),
        ));
    }
    let x = Tensor::from_vec(v, [count, image.features()], &cpu()).unwrap();
    let mut aug = augmentation(&["cutmix"]);
    aug.cutmix_p = 0.7;
    let (mixed, mix) = augmented(&aug, image, &x, 8, 3, &cpu());
    let mix = mix.expect("cutmix gives a label mix");
    let mixed = mixed.to_vec::<f32>().unwrap();
    let partners = mix.partner.to_vec::<u32>().unwrap();
    let weights = mix.weight.to_vec::<f32>().unwrap();
    let mut mixed_images = 0;
    for b in 0..count {
        let own = (b + 1) as f32 / 100.0;
        let row = &mixed[b * image.features()..(b + 1) * image.features()];
        let pasted = row.iter().filter(|&&p| p != own).count();
        let partner_value = (partners[b] + 1) as f32 / 100.0;
        assert!(row.iter().all(|&p| p == own || p == partner_value));
        let area = pasted as f32 / image.features() as f32;
        assert!(
            (area - weights[b]).abs() < 1e-6,
            "image {b}: {area} vs {}",
            weights[b]
        );
        if pasted > 0 {
            mixed_images += 1;
            assert_ne!(partners[b] as usize, b, "a partner is another image");
        }
        // Partners stay within the minibatch of 8 that starts at epoch position 0, 8, 16, …
        let position = 3 + b;
        let batch_start = position / 8 * 8;
        assert!(batch_start + (partners[b] as usize) < (batch_start + 8).min(3 + count + 5));
    }
    assert!(
        mixed_images > 5,
        "p = 0.7 mixed only {mixed_images} of {count}"
    );
}

#[test]
fn choices_are_a_function_of_seed_and_epoch() {
    let aug = augmentation(&["flip", "crop", "jitter", "cutmix", "affine"]);
    let image = SHAPES[0];
    let a = EpochChoices::draw(&aug, image, 100, 32, 5, 1);
    assert_eq!(a, EpochChoices::draw(&aug, image, 100, 32, 5, 1));
    assert_ne!(a, EpochChoices::draw(&aug, image, 100, 32, 5, 2));
    assert_ne!(a, EpochChoices::draw(&aug, image, 100, 32, 6, 1));
    // Flip probability: about half flipped.
    let flips = a.flip.unwrap().chunks(6).filter(|m| m[0] < 0.0).count();
    assert!(
        (30..=70).contains(&flips),
        "{flips} of 100 flipped at p = 0.5"
    );
}

#[test]
fn bad_options_are_clear_errors() {
    let image = SHAPES[1];
    let message = |aug: Augmentation| {
        aug.validate()
            .and_then(|_| aug.check_image(image))
            .unwrap_err()
            .to_string()
    };
    // Names are parsed into the enum; an unknown one is refused with the list.
    let m = "rotate".parse::<Transform>().unwrap_err();
    assert!(
        m.contains("rotate") && m.contains("flip, crop, jitter, cutmix, affine"),
        "{m}"
    );
    for p in [-0.1, 1.5, f32::NAN] {
        let m = message(Augmentation {
            flip_p: p,
            ..augmentation(&["flip"])
        });
        assert!(m.contains("--flip-p") && m.contains("[0, 1]"), "{m}");
    }
    let m = message(Augmentation {
        cutmix_p: 2.0,
        ..augmentation(&["cutmix"])
    });
    assert!(m.contains("--cutmix-p"), "{m}");
    // A config.json with an unknown padding mode names it and the allowed ones.
    let m = serde_json::from_str::<Augmentation>(r#"{"crop_padding_mode": "wrap"}"#)
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("wrap") && m.contains("zero") && m.contains("reflect"),
        "{m}"
    );
    let m = message(Augmentation {
        crop_padding: 28,
        ..augmentation(&["crop"])
    });
    assert!(m.contains("--crop-padding") && m.contains("28"), "{m}");
    // Tensor-level checks name the shapes.
    let x = Tensor::from_vec(vec![0.0f32; 10], [2, 5], &cpu()).unwrap();
    let m = Tensor::from_vec(vec![0.0f32; 12], [2, 6], &cpu()).unwrap();
    let err = x
        .warp_images(
            image,
            &m,
            Warp {
                bilinear: false,
                reflect: false,
            },
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[count, 784]") && err.contains("[2, 5]"),
        "{err}"
    );
}

/// CowMix on both backends: the masks come from the same counter-based noise, smoothed by a
/// convolution whose rounding may move a pixel sitting on the threshold across it, so the two
/// backends agree on all but a handful of pixels and each image's weight within those pixels.
#[test]
fn cowmix_matches_the_cpu_up_to_pixels_on_the_threshold() {
    let Some(gpu) = gpu() else { return };
    let image = ImageShape {
        channels: 3,
        height: 12,
        width: 10,
    };
    let mut aug = augmentation(&["cowmix"]);
    aug.cowmix_p = 0.8;
    let count = 33;
    let g = augmented(&aug, image, &images(4, count, image, &gpu), 16, 7, &gpu);
    let c = augmented(&aug, image, &images(4, count, image, &cpu()), 16, 7, &cpu());
    let (gv, cv) = (g.0.to_vec::<f32>().unwrap(), c.0.to_vec::<f32>().unwrap());
    let differing = gv.iter().zip(&cv).filter(|(a, b)| a != b).count();
    assert!(
        differing * 200 <= gv.len(),
        "{differing} of {} pixels differ",
        gv.len()
    );
    let (gm, cm) = (g.1.unwrap(), c.1.unwrap());
    assert_tensors_close("cowmix partners", &gm.partner, &cm.partner, EXACT);
    let plane = (image.height * image.width) as f32;
    for (a, b) in gm
        .weight
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .zip(cm.weight.to_vec::<f32>().unwrap())
    {
        assert!((a - b).abs() <= 3.0 / plane, "weights {a} and {b}");
    }
}

/// Each pixel is its own image's or the partner's; the weight is the share of pixels taken;
/// the proportions follow the drawn range; unmixed images keep weight 0.
#[test]
fn cowmix_masks_take_the_drawn_share_from_the_partner() {
    let image = ImageShape {
        channels: 2,
        height: 16,
        width: 16,
    };
    let mut aug = augmentation(&["cowmix"]);
    aug.cowmix_p = 0.5;
    aug.cowmix_proportion = (0.3, 0.3);
    let count = 64;
    let x = images(9, count, image, &cpu());
    let (mixed, mix) = augmented(&aug, image, &x, count, 0, &cpu());
    let mix = mix.unwrap();
    let (xv, mv) = (x.to_vec::<f32>().unwrap(), mixed.to_vec::<f32>().unwrap());
    let partners = mix.partner.to_vec::<u32>().unwrap();
    let weights = mix.weight.to_vec::<f32>().unwrap();
    let features = image.features();
    let plane = image.height * image.width;
    let (mut mixed_images, mut share) = (0, 0.0);
    for i in 0..count {
        let p = partners[i] as usize;
        let mut taken = 0;
        for f in 0..features {
            let (own, other, out) = (
                xv[i * features + f],
                xv[p * features + f],
                mv[i * features + f],
            );
            assert!(
                out == own || out == other,
                "image {i} pixel {f}: {out} is neither"
            );
            if out == other && out != own && f < plane {
                taken += 1;
            }
        }
        assert!((taken as f32 / plane as f32 - weights[i]).abs() <= 1.5 / plane as f32);
        if weights[i] > 0.0 {
            mixed_images += 1;
            share += weights[i];
        }
    }
    // About half the images mixed, each taking about 30 % (the threshold's z for a normal
    // field; smoothing makes the pixels' distribution close to, not exactly, Gaussian).
    assert!((16..=48).contains(&mixed_images), "{mixed_images} mixed");
    let mean = share / mixed_images as f32;
    assert!((0.2..=0.4).contains(&mean), "mean share {mean}");
    assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-5);
}

/// Each CowMask is its image's noise smoothed by a Gaussian of the image's own σ (zero-padded)
/// and thresholded at mean + z·std: recomputed here through conv2d with the 2-D kernel. The σ
/// are drawn per image, log-uniformly in the range.
#[test]
fn cowmix_masks_are_noise_smoothed_by_each_images_gaussian() {
    let image = ImageShape {
        channels: 1,
        height: 11,
        width: 9,
    };
    let mut aug = augmentation(&["cowmix"]);
    aug.cowmix_p = 1.0;
    aug.cowmix_sigma = (0.8, 4.0);
    let (count, start, batch) = (12, 12, 12);
    let cpu = cpu();
    let x = images(2, count, image, &cpu);
    let choices = EpochChoices::draw(&aug, image, start + count + 5, batch, 11, 2);
    let c = choices.cowmix.clone().unwrap();
    let sigmas = &c.sigma[start..start + count];
    assert!(sigmas.iter().all(|s| (0.8..=4.0).contains(s)), "{sigmas:?}");
    let below = sigmas.iter().filter(|&&s| s < 0.8f32 * 5f32.sqrt()).count();
    assert!((2..=10).contains(&below), "σ not log-uniform: {sigmas:?}");
    let (mixed, _) = augmented(&aug, image, &x, batch, start, &cpu);
    let plane = image.height * image.width;
    let rng = kiln::tensor::RngState {
        seed: c.noise_seed,
        offset: (start * plane) as u64,
    };
    let noise =
        Tensor::rand_normal([count, 1, image.height, image.width], 0.0, 1.0, rng, &cpu).unwrap();
    let (xv, mv) = (x.to_vec::<f32>().unwrap(), mixed.to_vec::<f32>().unwrap());
    for (i, &sigma) in sigmas.iter().enumerate() {
        let sigma = sigma as f64;
        let r = (2.0 * sigma).ceil() as usize;
        let side = 2 * r + 1;
        let taps: Vec<f64> = (0..side * side)
            .map(|k| {
                let (y, x) = ((k / side) as f64 - r as f64, (k % side) as f64 - r as f64);
                (-(x * x + y * y) / (2.0 * sigma * sigma)).exp()
            })
            .collect();
        let total: f64 = taps.iter().sum();
        let kernel: Vec<f32> = taps.iter().map(|t| (t / total) as f32).collect();
        let kernel = Tensor::from_vec(kernel, [1, 1, side, side], &cpu).unwrap();
        let options = kiln::tensor::Conv2dOptions {
            stride: 1,
            padding: r,
            dilation: 1,
            groups: 1,
        };
        let smooth: Vec<f64> = noise
            .narrow(0, i, 1)
            .unwrap()
            .conv2d(&kernel, None, None, options)
            .unwrap()
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|&v| v as f64)
            .collect();
        let mean = smooth.iter().sum::<f64>() / plane as f64;
        let var = smooth.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / plane as f64;
        let threshold = mean + c.z[start + i] as f64 * var.sqrt();
        let wrong = (0..plane)
            .filter(|&p| {
                let taken = mv[i * plane + p] != xv[i * plane + p];
                taken != (smooth[p] > threshold)
            })
            .count();
        assert!(
            wrong <= 1,
            "image {i} (σ {sigma:.2}): {wrong} pixels off the mask"
        );
    }
}
