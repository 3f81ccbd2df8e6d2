//! Datasets for Kiln: readers for the CIFAR-10 binary and IDX (MNIST, Fashion-MNIST) formats,
//! the CIFAR-10 downloader, deterministic train/validation splits, preprocessing fitted on the
//! training split, and [`DeviceDataset`], which keeps a dataset on the device as u8 and
//! produces normalised minibatches there.
//!
//! Every reader validates what it reads and reports problems as [`DataError`]s naming the
//! file and the byte offset.

mod augment;
mod cifar;
mod cowmix;
mod dataset;
mod device;
mod download;
mod error;
mod idx;
mod preprocess;
mod whitening;

pub use augment::{
    affine_inverse, Augmentation, DeviceAugmentation, EpochChoices, LabelMix, PaddingMode,
    Transform,
};
pub use cifar::{load_cifar10, read_cifar_batch, CIFAR10_CLASSES, CIFAR_RECORD_BYTES};
pub use cowmix::{normal_quantile, CowMixChoices};
pub use dataset::Dataset;
pub use device::{shuffled_indices, DeviceDataset};
pub use download::{download_and_extract, download_cifar10, CIFAR10_MD5, CIFAR10_URL};
pub use error::{DataError, Result};
pub use idx::{load_idx_dir, read_idx, IdxArray, FASHION_MNIST_CLASSES, FASHION_MNIST_SYSTEM_DIR};
pub use preprocess::{Normalization, Preprocessing, DEFAULT_WHITENING_EPSILON};
