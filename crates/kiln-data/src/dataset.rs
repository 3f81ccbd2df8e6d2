//! An in-memory image classification dataset: u8 pixels, one row per sample, channel-major
//! within a row (CIFAR-10's order), and u8 labels.

use crate::error::{DataError, Result};
use kiln_tensor::ImageShape;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub name: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// [len, channels · height · width] row-major.
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub class_names: Vec<String>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per sample: channels · height · width.
    pub fn features(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The size of one image: channels × height × width.
    pub fn image_shape(&self) -> ImageShape {
        ImageShape {
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }

    pub fn classes(&self) -> usize {
        self.class_names.len()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let f = self.features();
        &self.images[i * f..(i + 1) * f]
    }

    /// The samples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(indices.len() * self.features());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        Dataset {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            ..self.empty_like()
        }
    }

    /// The first `n` samples (all of them when `n` ≥ len).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            images: self.images[..n * self.features()].to_vec(),
            labels: self.labels[..n].to_vec(),
            ..self.empty_like()
        }
    }

    /// Splits off `validation` samples chosen by a permutation seeded with `seed`; returns
    /// (train, validation), each in ascending original order.
    pub fn split(&self, validation: usize, seed: u64) -> Result<(Dataset, Dataset)> {
        if validation >= self.len() {
            return Err(DataError::Invalid(format!(
                "cannot hold out {validation} validation samples from {} training samples",
                self.len()
            )));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let (val, train) = order.split_at_mut(validation);
        val.sort_unstable();
        train.sort_unstable();
        Ok((self.subset(train), self.subset(val)))
    }

    /// The `k` folds of a permutation seeded with `seed`: for each fold, (the other k − 1
    /// folds, the fold), each in ascending original order. Fold sizes differ by at most one.
    pub fn folds(&self, k: usize, seed: u64) -> Vec<(Dataset, Dataset)> {
        let k = k.max(1);
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        (0..k)
            .map(|i| {
                let (from, to) = (i * self.len() / k, (i + 1) * self.len() / k);
                let mut held: Vec<usize> = order[from..to].to_vec();
                let mut rest: Vec<usize> =
                    order[..from].iter().chain(&order[to..]).copied().collect();
                held.sort_unstable();
                rest.sort_unstable();
                (self.subset(&rest), self.subset(&held))
            })
            .collect()
    }

    /// Samples per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    fn empty_like(&self) -> Dataset {
        Dataset {
            name: self.name.clone(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            images: Vec::new(),
            labels: Vec::new(),
            class_names: self.class_names.clone(),
        }
    }
}
