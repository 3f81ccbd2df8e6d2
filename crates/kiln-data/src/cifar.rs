//! The CIFAR-10 binary format: files of 10 000 records, each 1 label byte (0–9) followed by
//! 3 072 pixel bytes (the red, green and blue 32×32 planes, row-major). Training data is
//! `data_batch_1.bin` … `data_batch_5.bin`, test data `test_batch.bin`.

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use std::path::{Path, PathBuf};

pub const CIFAR_RECORD_BYTES: usize = 1 + 3 * 32 * 32;

pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// One batch file.
pub fn read_cifar_batch(path: &Path) -> Result<Dataset> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let whole = bytes.len() / CIFAR_RECORD_BYTES * CIFAR_RECORD_BYTES;
    if bytes.is_empty() || whole != bytes.len() {
        return Err(DataError::format(
            path,
            whole as u64,
            format!(
                "{} bytes is not a whole number of {CIFAR_RECORD_BYTES}-byte records \
                 (1 label + 3072 pixels); the last record is truncated",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / CIFAR_RECORD_BYTES;
    let mut images = Vec::with_capacity(n * (CIFAR_RECORD_BYTES - 1));
    let mut labels = Vec::with_capacity(n);
    for (i, record) in bytes.chunks_exact(CIFAR_RECORD_BYTES).enumerate() {
        if record[0] as usize >= CIFAR10_CLASSES.len() {
            return Err(DataError::format(
                path,
                (i * CIFAR_RECORD_BYTES) as u64,
                format!("record {i} has label {}, outside 0–9", record[0]),
            ));
        }
        labels.push(record[0]);
        images.extend_from_slice(&record[1..]);
    }
    Ok(Dataset {
        name: "cifar10".into(),
        channels: 3,
        height: 32,
        width: 32,
        images,
        labels,
        class_names: CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
    })
}

/// The directory holding the batch files: `dir` itself or `dir/cifar-10-batches-bin`.
fn batches_dir(dir: &Path) -> Option<PathBuf> {
    [dir.join("cifar-10-batches-bin"), dir.to_path_buf()]
        .into_iter()
        .find(|d| d.join("data_batch_1.bin").is_file())
}

fn concat(parts: Vec<Dataset>) -> Dataset {
    let mut all = parts[0].clone();
    for part in &parts[1..] {
        all.images.extend_from_slice(&part.images);
        all.labels.extend_from_slice(&part.labels);
    }
    all
}

/// The 50 000-sample training set and the 10 000-sample test set under `dir`.
pub fn load_cifar10(dir: &Path) -> Result<(Dataset, Dataset)> {
    let Some(batches) = batches_dir(dir) else {
        return Err(DataError::NotFound(format!(
            "no CIFAR-10 data in {}: expected data_batch_1.bin … data_batch_5.bin and \
             test_batch.bin there or in its cifar-10-batches-bin/. Run with --download to \
             fetch the official archive (162 MiB) into that directory.",
            dir.display()
        )));
    };
    let mut train = Vec::new();
    for i in 1..=5 {
        train.push(read_cifar_batch(
            &batches.join(format!("data_batch_{i}.bin")),
        )?);
    }
    let test = read_cifar_batch(&batches.join("test_batch.bin"))?;
    Ok((concat(train), test))
}
