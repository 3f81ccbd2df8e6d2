//! PCA and ZCA whitening fitted on the training split. Pixels are scaled to [0, 1] and the
//! mean image subtracted; the covariance C = Xᵀ X / n is accumulated in f64 over chunks of
//! rows and eigendecomposed, C = U Λ Uᵀ. PCA whitening maps x ↦ x · U (Λ + ε)^-½ (features
//! ordered by decreasing variance); ZCA maps x ↦ x · U (Λ + ε)^-½ Uᵀ. ε damps the directions
//! of tiny variance, which would otherwise be amplified noise.

use crate::dataset::Dataset;
use crate::preprocess::{Normalization, Preprocessing};
use nalgebra::{DMatrix, SymmetricEigen};

const ROWS_PER_CHUNK: usize = 2048;

pub(crate) fn fit(train: &Dataset, kind: Preprocessing, epsilon: f32) -> Normalization {
    let d = train.features();
    let n = train.len().max(1);
    let mut mean = vec![0f64; d];
    for i in 0..train.len() {
        for (m, &p) in mean.iter_mut().zip(train.image(i)) {
            *m += p as f64 / 255.0;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut covariance = DMatrix::<f64>::zeros(d, d);
    for first in (0..train.len()).step_by(ROWS_PER_CHUNK) {
        let rows = ROWS_PER_CHUNK.min(train.len() - first);
        let chunk = DMatrix::from_fn(rows, d, |r, c| {
            train.image(first + r)[c] as f64 / 255.0 - mean[c]
        });
        covariance += chunk.tr_mul(&chunk);
    }
    covariance /= n as f64;
    let eigen = SymmetricEigen::new(covariance);
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
    // Columns of U (Λ + ε)^-½, by decreasing eigenvalue.
    let scaled = DMatrix::from_fn(d, d, |r, c| {
        let k = order[c];
        let lambda = eigen.eigenvalues[k].max(0.0);
        eigen.eigenvectors[(r, k)] / (lambda + epsilon as f64).sqrt()
    });
    let w = match kind {
        Preprocessing::Zca => {
            let u = DMatrix::from_fn(d, d, |r, c| eigen.eigenvectors[(r, order[c])]);
            &scaled * u.transpose()
        }
        _ => scaled,
    };
    let mut whitening = Vec::with_capacity(d * d);
    for r in 0..d {
        for c in 0..d {
            whitening.push(w[(r, c)] as f32);
        }
    }
    Normalization {
        kind,
        mean: mean.iter().map(|&m| (m * 255.0) as f32).collect(),
        std: vec![255.0; d],
        whitening: Some(whitening),
    }
}
