//! Dataset readers on generated files in the real formats (CIFAR-10 binary, IDX raw and
//! gzip) and on corrupted variants, the split and the preprocessing, and device minibatches
//! against the host data on both backends.

mod common;
use common::*;
use flate2::write::GzEncoder;
use kiln::data::*;
use kiln::prelude::*;
use std::io::Write;
use std::path::Path;

/// CIFAR records: label i % 10, pixels from a simple pattern.
fn cifar_bytes(records: usize, seed: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(records * CIFAR_RECORD_BYTES);
    for r in 0..records {
        out.push(((r + seed) % 10) as u8);
        out.extend((0..3072).map(|p| ((p * 31 + r * 7 + seed) % 256) as u8));
    }
    out
}

pub fn write_cifar_dir(dir: &Path, records: usize) {
    let batches = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&batches).unwrap();
    for i in 1..=5 {
        std::fs::write(
            batches.join(format!("data_batch_{i}.bin")),
            cifar_bytes(records, i),
        )
        .unwrap();
    }
    std::fs::write(batches.join("test_batch.bin"), cifar_bytes(records, 0)).unwrap();
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An MNIST-style directory with `n` train and `n` test images of 28×28; gzip for train.
fn write_idx_dir(dir: &Path, n: usize) {
    let images: Vec<u8> = (0..n * 784).map(|i| (i % 251) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let n32 = n as u32;
    std::fs::write(
        dir.join("train-images-idx3-ubyte.gz"),
        gzip(&idx_bytes(&[n32, 28, 28], &images)),
    )
    .unwrap();
    std::fs::write(
        dir.join("train-labels-idx1-ubyte.gz"),
        gzip(&idx_bytes(&[n32], &labels)),
    )
    .unwrap();
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        idx_bytes(&[n32, 28, 28], &images),
    )
    .unwrap();
    std::fs::write(
        dir.join("t10k-labels-idx1-ubyte"),
        idx_bytes(&[n32], &labels),
    )
    .unwrap();
}

#[test]
fn cifar_batches_read_back_exactly() {
    let dir = temp_dir("cifar-read");
    write_cifar_dir(&dir, 12);
    let (train, test) = load_cifar10(&dir).unwrap();
    assert_eq!((train.len(), test.len()), (60, 12));
    assert_eq!((train.channels, train.height, train.width), (3, 32, 32));
    let raw = cifar_bytes(12, 1);
    assert_eq!(train.labels[3], raw[3 * CIFAR_RECORD_BYTES]);
    assert_eq!(
        train.image(3),
        &raw[3 * CIFAR_RECORD_BYTES + 1..4 * CIFAR_RECORD_BYTES]
    );
    // Records of batch 2 follow batch 1.
    assert_eq!(train.labels[12], cifar_bytes(12, 2)[0]);
    assert_eq!(test.class_names[9], "truck");
}

#[test]
fn corrupt_cifar_files_name_the_file_and_offset() {
    let dir = temp_dir("cifar-bad");
    write_cifar_dir(&dir, 4);
    let batch = dir.join("cifar-10-batches-bin/data_batch_3.bin");
    // Truncated: the last record is cut short.
    let mut bytes = cifar_bytes(4, 3);
    bytes.truncate(bytes.len() - 100);
    std::fs::write(&batch, &bytes).unwrap();
    let err = load_cifar10(&dir).unwrap_err().to_string();
    assert!(
        err.contains("data_batch_3.bin") && err.contains("byte 9219"),
        "{err}"
    );
    assert!(err.contains("truncated"), "{err}");
    // A label out of range in record 2.
    let mut bytes = cifar_bytes(4, 3);
    bytes[2 * CIFAR_RECORD_BYTES] = 10;
    std::fs::write(&batch, &bytes).unwrap();
    let err = load_cifar10(&dir).unwrap_err().to_string();
    assert!(
        err.contains("byte 6146") && err.contains("label 10"),
        "{err}"
    );
    // A missing directory says how to get the data.
    let err = load_cifar10(&dir.join("nowhere")).unwrap_err().to_string();
    assert!(err.contains("--download"), "{err}");
}

#[test]
fn idx_files_read_raw_and_gzip() {
    let dir = temp_dir("idx-read");
    write_idx_dir(&dir, 30);
    let (train, test) = load_idx_dir(&dir, "fashion-mnist", &FASHION_MNIST_CLASSES).unwrap();
    assert_eq!((train.len(), test.len()), (30, 30));
    assert_eq!(train, test, "gzip and raw hold the same bytes");
    assert_eq!(train.features(), 784);
    assert_eq!(train.labels[13], 3);
    assert_eq!(train.image(1)[0], (784 % 251) as u8);
}

#[test]
fn corrupt_idx_files_name_the_file_and_offset() {
    let dir = temp_dir("idx-bad");
    write_idx_dir(&dir, 10);
    let labels = dir.join("t10k-labels-idx1-ubyte");
    let images = dir.join("t10k-images-idx3-ubyte");
    let load = || {
        load_idx_dir(&dir, "fashion-mnist", &FASHION_MNIST_CLASSES)
            .unwrap_err()
            .to_string()
    };
    // Wrong magic number.
    let mut bytes = std::fs::read(&images).unwrap();
    bytes[0] = 0x50;
    std::fs::write(&images, &bytes).unwrap();
    let err = load();
    assert!(
        err.contains("t10k-images") && err.contains("byte 0") && err.contains("magic"),
        "{err}"
    );
    // Truncated data.
    bytes[0] = 0;
    bytes.truncate(bytes.len() - 5);
    std::fs::write(&images, &bytes).unwrap();
    let err = load();
    assert!(
        err.contains("truncated") && err.contains("t10k-images"),
        "{err}"
    );
    let full: Vec<u8> = (0..10 * 784).map(|i| (i % 251) as u8).collect();
    std::fs::write(&images, idx_bytes(&[10, 28, 28], &full)).unwrap();
    // A label out of range at sample 4 → byte 8 + 4.
    let mut l: Vec<u8> = (0..10).map(|i| (i % 10) as u8).collect();
    l[4] = 42;
    std::fs::write(&labels, idx_bytes(&[10], &l)).unwrap();
    let err = load();
    assert!(err.contains("byte 12") && err.contains("label 42"), "{err}");
    // A wrong record count.
    std::fs::write(&labels, idx_bytes(&[9], &l[..9])).unwrap();
    let err = load();
    assert!(err.contains("9 labels for 10 images"), "{err}");
    // A truncated gzip stream.
    let gz = dir.join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&gz).unwrap();
    std::fs::write(&gz, &bytes[..bytes.len() / 2]).unwrap();
    let err = load();
    assert!(
        err.contains("gzip") && err.contains("train-images"),
        "{err}"
    );
    // A missing directory says how to get Fashion-MNIST.
    let err = load_idx_dir(&dir.join("nowhere"), "x", &FASHION_MNIST_CLASSES)
        .unwrap_err()
        .to_string();
    assert!(err.contains("dataset-fashion-mnist"), "{err}");
}

fn small_dataset(n: usize) -> Dataset {
    let dir = temp_dir(&format!("small-{n}"));
    write_cifar_dir(&dir, n);
    load_cifar10(&dir).unwrap().0
}

#[test]
fn split_is_deterministic_disjoint_and_complete() {
    let data = small_dataset(20);
    let (a_train, a_val) = data.split(17, 5).unwrap();
    let (b_train, b_val) = data.split(17, 5).unwrap();
    assert_eq!((a_train.len(), a_val.len()), (83, 17));
    assert_eq!(a_val, b_val);
    assert_eq!(a_train, b_train);
    let (_, other) = data.split(17, 6).unwrap();
    assert_ne!(a_val.labels.len(), 0);
    assert_ne!(other.images, a_val.images, "another seed, another split");
    let mut all: Vec<&[u8]> = (0..a_train.len())
        .map(|i| a_train.image(i))
        .chain((0..a_val.len()).map(|i| a_val.image(i)))
        .collect();
    let mut original: Vec<&[u8]> = (0..data.len()).map(|i| data.image(i)).collect();
    all.sort();
    original.sort();
    assert_eq!(all, original, "train ∪ validation = the training set");
    assert!(data.split(100, 1).is_err());
}

#[test]
fn preprocessing_statistics_are_fitted_on_the_given_split() {
    let data = small_dataset(8);
    let per_channel = Normalization::fit(&data, Preprocessing::PerChannel);
    for c in 0..3 {
        let plane: Vec<f64> = (0..data.len())
            .flat_map(|i| data.image(i)[c * 1024..(c + 1) * 1024].to_vec())
            .map(|p| p as f64)
            .collect();
        let mean = plane.iter().sum::<f64>() / plane.len() as f64;
        let std =
            (plane.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / plane.len() as f64).sqrt();
        assert!((per_channel.mean[c * 1024] as f64 - mean).abs() < 1e-3);
        assert!((per_channel.std[c * 1024 + 5] as f64 - std).abs() < 1e-3);
    }
    let mean_image = Normalization::fit(&data, Preprocessing::MeanImage);
    let m0: f64 = (0..data.len())
        .map(|i| data.image(i)[0] as f64)
        .sum::<f64>()
        / data.len() as f64;
    assert!((mean_image.mean[0] as f64 - m0).abs() < 1e-3);
    assert!(mean_image.std.iter().all(|&s| s == mean_image.std[0]));
}

fn check_device_batches<B: Backend>(backend: &B) {
    let data = small_dataset(7); // 35 samples of 3072 bytes
    let norm = Normalization::fit(&data, Preprocessing::PerChannel);
    // Force chunks of 8 rows so batches straddle chunk boundaries.
    let device = DeviceDataset::upload(&data, &norm, backend, Some(8 * 3072)).unwrap();
    assert_eq!(device.chunk_count(), 5);
    let order = shuffled_indices(data.len(), 3, 1);
    assert_eq!(order, shuffled_indices(data.len(), 3, 1));
    assert_ne!(order, shuffled_indices(data.len(), 3, 2));
    let all = Tensor::from_vec(order.clone(), [order.len()], backend).unwrap();
    let batch = all.narrow(0, 10, 13).unwrap();
    let (x, y) = device.batch(&batch).unwrap();
    assert_eq!(x.dims(), [13, 3072]);
    let x = x.to_vec::<f32>().unwrap();
    let y = y.to_vec::<u32>().unwrap();
    for (row, &i) in order[10..23].iter().enumerate() {
        let i = i as usize;
        assert_eq!(y[row], data.labels[i] as u32);
        for f in [0, 1500, 3071] {
            let expected = (data.image(i)[f] as f32 - norm.mean[f]) / norm.std[f];
            assert!((x[row * 3072 + f] - expected).abs() < 1e-4);
        }
    }
}

#[test]
fn device_minibatches_match_the_host_data() {
    check_device_batches(&cpu());
    if let Some(gpu) = gpu() {
        check_device_batches(&gpu);
    }
}
