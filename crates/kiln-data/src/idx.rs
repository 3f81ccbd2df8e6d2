//! The IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed:
//!   bytes 0–1 zero, byte 2 the element type (0x08 = u8), byte 3 the number of dimensions d,
//!   then d big-endian u32 sizes, then the elements in row-major order.
//! Offsets in errors count bytes of the decompressed stream.

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where Debian's `dataset-fashion-mnist` package puts the four files.
pub const FASHION_MNIST_SYSTEM_DIR: &str = "/usr/share/datasets/fashion-mnist";

pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// A u8 IDX array.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads a whole file, decompressing it when it starts with the gzip magic bytes.
fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                DataError::format(
                    path,
                    out.len() as u64,
                    format!("the gzip stream is corrupt or truncated ({e})"),
                )
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = read_maybe_gzip(path)?;
    if bytes.len() < 4 {
        return Err(DataError::format(
            path,
            bytes.len() as u64,
            "the file ends inside the 4-byte IDX header",
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(DataError::format(
            path,
            0,
            format!(
                "not an IDX file: magic number {:02x}{:02x}{:02x}{:02x}, expected 0000 08 0d",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(DataError::format(
            path,
            2,
            format!(
                "element type 0x{:02x}; only 0x08 (unsigned byte) is supported",
                bytes[2]
            ),
        ));
    }
    let rank = bytes[3] as usize;
    if rank == 0 {
        return Err(DataError::format(path, 3, "zero dimensions"));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(DataError::format(
            path,
            bytes.len() as u64,
            format!("the file ends inside the {rank} dimension sizes"),
        ));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|d| {
            let at = 4 + 4 * d;
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
        })
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::format(path, 4, format!("dimensions {dims:?} overflow")))?;
    let have = bytes.len() - header;
    if have != count {
        return Err(DataError::format(
            path,
            (header + have.min(count)) as u64,
            format!(
                "dimensions {dims:?} need {count} bytes of data after the {header}-byte header, \
                 the file has {have}{}",
                if have < count {
                    " (truncated)"
                } else {
                    " (trailing bytes)"
                }
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// `dir/name` or `dir/name.gz`, whichever exists.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    for candidate in [dir.join(name), dir.join(format!("{name}.gz"))] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(DataError::NotFound(format!(
        "{} has no {name} or {name}.gz",
        dir.display()
    )))
}

fn load_split(dir: &Path, prefix: &str, name: &str, classes: &[&str]) -> Result<Dataset> {
    let images_path = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = read_idx(&images_path)?;
    let labels = read_idx(&labels_path)?;
    if images.dims.len() != 3 {
        return Err(DataError::format(
            &images_path,
            3,
            format!(
                "images need 3 dimensions (count, rows, columns), found {:?}",
                images.dims
            ),
        ));
    }
    if labels.dims.len() != 1 {
        return Err(DataError::format(
            &labels_path,
            3,
            format!("labels need 1 dimension, found {:?}", labels.dims),
        ));
    }
    if labels.dims[0] != images.dims[0] {
        return Err(DataError::format(
            &labels_path,
            4,
            format!(
                "{} labels for {} images in {}",
                labels.dims[0],
                images.dims[0],
                images_path.display()
            ),
        ));
    }
    if let Some(i) = labels
        .data
        .iter()
        .position(|&l| l as usize >= classes.len())
    {
        return Err(DataError::format(
            &labels_path,
            8 + i as u64,
            format!(
                "label {} is out of range for {} classes",
                labels.data[i],
                classes.len()
            ),
        ));
    }
    Ok(Dataset {
        name: name.into(),
        channels: 1,
        height: images.dims[1],
        width: images.dims[2],
        images: images.data,
        labels: labels.data,
        class_names: classes.iter().map(|s| s.to_string()).collect(),
    })
}

/// The training and test sets of an MNIST-style directory holding the four standard files
/// (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
/// `t10k-labels-idx1-ubyte`, each optionally `.gz`).
pub fn load_idx_dir(dir: &Path, name: &str, classes: &[&str]) -> Result<(Dataset, Dataset)> {
    if !dir.is_dir() {
        return Err(DataError::NotFound(format!(
            "no data directory {}: it should hold train-images-idx3-ubyte[.gz], \
             train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz] and \
             t10k-labels-idx1-ubyte[.gz]. For Fashion-MNIST on Debian: \
             apt-get install dataset-fashion-mnist (files in {FASHION_MNIST_SYSTEM_DIR})",
            dir.display()
        )));
    }
    Ok((
        load_split(dir, "train", name, classes)?,
        load_split(dir, "t10k", name, classes)?,
    ))
}
