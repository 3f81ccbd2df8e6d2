//! Preprocessing fitted on the training split only, applied on the device as
//! x ↦ (x − mean[c]) / std[c] per feature c (`DeviceDataset` turns it into one scale and one
//! shift per feature inside the gather kernel), followed for PCA and ZCA whitening by one
//! matrix product x ↦ x · W.

use crate::dataset::Dataset;
use serde::{Deserialize, Serialize};

/// How features are standardised (`per-channel` by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Preprocessing {
    /// Each channel standardised by its own mean and standard deviation.
    #[default]
    PerChannel,
    /// The mean image subtracted, then divided by the standard deviation of the result over
    /// all pixels.
    MeanImage,
    /// The mean image subtracted (pixels scaled to [0, 1]), then rotated onto the principal
    /// axes of the training covariance and each axis scaled to unit variance.
    Pca,
    /// PCA whitening rotated back to pixel space (W = U Λ^-½ Uᵀ): decorrelated features that
    /// still look like images.
    Zca,
}

/// The default ε added to the covariance eigenvalues before whitening (pixels in [0, 1]).
pub const DEFAULT_WHITENING_EPSILON: f32 = 0.01;

impl Preprocessing {
    pub fn name(self) -> &'static str {
        match self {
            Preprocessing::PerChannel => "per-channel",
            Preprocessing::MeanImage => "mean-image",
            Preprocessing::Pca => "pca",
            Preprocessing::Zca => "zca",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "per-channel" => Some(Preprocessing::PerChannel),
            "mean-image" => Some(Preprocessing::MeanImage),
            "pca" => Some(Preprocessing::Pca),
            "zca" => Some(Preprocessing::Zca),
            _ => None,
        }
    }
}

/// Per-feature mean and standard deviation (over raw 0–255 pixel values), and for PCA/ZCA the
/// whitening matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    pub kind: Preprocessing,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// W [features, features] row-major, applied after the affine map as x · W.
    pub whitening: Option<Vec<f32>>,
}

impl Normalization {
    /// Fits the statistics on `train` (never on validation or test data), with the default
    /// whitening ε.
    pub fn fit(train: &Dataset, kind: Preprocessing) -> Normalization {
        Self::fit_with_epsilon(train, kind, DEFAULT_WHITENING_EPSILON)
    }

    /// As [`Normalization::fit`], with `epsilon` added to the covariance eigenvalues.
    pub fn fit_with_epsilon(train: &Dataset, kind: Preprocessing, epsilon: f32) -> Normalization {
        if matches!(kind, Preprocessing::Pca | Preprocessing::Zca) {
            return crate::whitening::fit(train, kind, epsilon);
        }
        let features = train.features();
        let n = train.len().max(1) as f64;
        let mut sum = vec![0f64; features];
        for i in 0..train.len() {
            for (s, &p) in sum.iter_mut().zip(train.image(i)) {
                *s += p as f64;
            }
        }
        let pixel_mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let plane = train.height * train.width;
        let (mean, std) = match kind {
            Preprocessing::PerChannel => {
                let mut mean = vec![0f64; features];
                let mut std = vec![1f64; features];
                for c in 0..train.channels {
                    let range = c * plane..(c + 1) * plane;
                    let m = pixel_mean[range.clone()].iter().sum::<f64>() / plane as f64;
                    let mut sq = 0f64;
                    for i in 0..train.len() {
                        for &p in &train.image(i)[range.clone()] {
                            sq += (p as f64 - m).powi(2);
                        }
                    }
                    let s = (sq / (n * plane as f64)).sqrt().max(1e-6);
                    mean[range.clone()].fill(m);
                    std[range].fill(s);
                }
                (mean, std)
            }
            Preprocessing::MeanImage | Preprocessing::Pca | Preprocessing::Zca => {
                let mut sq = 0f64;
                for i in 0..train.len() {
                    for (&p, m) in train.image(i).iter().zip(&pixel_mean) {
                        sq += (p as f64 - m).powi(2);
                    }
                }
                let s = (sq / (n * features as f64)).sqrt().max(1e-6);
                (pixel_mean, vec![s; features])
            }
        };
        Normalization {
            kind,
            mean: mean.iter().map(|&v| v as f32).collect(),
            std: std.iter().map(|&v| v as f32).collect(),
            whitening: None,
        }
    }

    /// (scale, shift) with x·scale + shift = (x − mean) / std.
    pub fn scale_shift(&self) -> (Vec<f32>, Vec<f32>) {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(&m, &s)| (1.0 / s, -m / s))
            .unzip()
    }
}
