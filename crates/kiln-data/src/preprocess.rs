//! Preprocessing fitted on the training split only, applied on the device as
//! x ↦ (x − mean[c]) / std[c] per feature c (`DeviceDataset` turns it into one scale and one
//! shift per feature inside the gather kernel).

use crate::dataset::Dataset;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preprocessing {
    /// Each channel standardised by its own mean and standard deviation.
    PerChannel,
    /// The mean image subtracted, then divided by the standard deviation of the result over
    /// all pixels.
    MeanImage,
}

impl Preprocessing {
    pub fn name(self) -> &'static str {
        match self {
            Preprocessing::PerChannel => "per-channel",
            Preprocessing::MeanImage => "mean-image",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "per-channel" => Some(Preprocessing::PerChannel),
            "mean-image" => Some(Preprocessing::MeanImage),
            _ => None,
        }
    }
}

/// Per-feature mean and standard deviation (over raw 0–255 pixel values).
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    pub kind: Preprocessing,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// Fits the statistics on `train` (never on validation or test data).
    pub fn fit(train: &Dataset, kind: Preprocessing) -> Normalization {
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
            Preprocessing::MeanImage => {
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
