//! Classification metrics computed on the host from one read-back of the predicted
//! probabilities per evaluation: accuracy, confusion matrix, per-class precision and recall,
//! and one-vs-rest ROC-AUC (macro average).

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    /// confusion[true][predicted].
    pub confusion: Vec<Vec<u64>>,
    pub precision: Vec<f64>,
    pub recall: Vec<f64>,
    /// One-vs-rest ROC-AUC per class; NaN for a class absent from the labels.
    pub roc_auc: Vec<f64>,
    pub macro_roc_auc: f64,
}

impl Evaluation {
    /// From probabilities [n, classes] (row-major), labels [n] and the mean loss.
    pub fn from_probabilities(
        probabilities: &[f32],
        labels: &[u8],
        classes: usize,
        loss: f64,
    ) -> Self {
        let n = labels.len();
        let mut confusion = vec![vec![0u64; classes]; classes];
        for (i, &label) in labels.iter().enumerate() {
            let row = &probabilities[i * classes..(i + 1) * classes];
            let predicted = argmax(row);
            confusion[label as usize][predicted] += 1;
        }
        let correct: u64 = (0..classes).map(|c| confusion[c][c]).sum();
        let precision = (0..classes)
            .map(|c| {
                let predicted: u64 = (0..classes).map(|t| confusion[t][c]).sum();
                ratio(confusion[c][c], predicted)
            })
            .collect();
        let recall = (0..classes)
            .map(|c| ratio(confusion[c][c], confusion[c].iter().sum()))
            .collect();
        let roc_auc: Vec<f64> = (0..classes)
            .map(|c| {
                let scores: Vec<f32> = (0..n).map(|i| probabilities[i * classes + c]).collect();
                let positive: Vec<bool> = labels.iter().map(|&l| l as usize == c).collect();
                roc_auc(&scores, &positive)
            })
            .collect();
        let present: Vec<f64> = roc_auc.iter().copied().filter(|a| !a.is_nan()).collect();
        let macro_roc_auc = present.iter().sum::<f64>() / present.len().max(1) as f64;
        Evaluation {
            loss,
            accuracy: ratio(correct, n as u64),
            confusion,
            precision,
            recall,
            roc_auc,
            macro_roc_auc,
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Area under the ROC curve by the rank statistic (Mann–Whitney U), ties counted half; NaN
/// when either class is empty.
pub fn roc_auc(scores: &[f32], positive: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut positives) = (0f64, 0u64);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their average.
        let average_rank = (i + j + 2) as f64 / 2.0;
        for &k in &order[i..=j] {
            if positive[k] {
                rank_sum += average_rank;
                positives += 1;
            }
        }
        i = j + 1;
    }
    let negatives = scores.len() as u64 - positives;
    if positives == 0 || negatives == 0 {
        return f64::NAN;
    }
    let p = positives as f64;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six samples, three classes; class 2 is never predicted and all its scores tie.
    ///   sample  label  probabilities      predicted
    ///   0       0      0.7 0.2 0.1        0
    ///   1       0      0.4 0.5 0.1        1
    ///   2       1      0.3 0.6 0.1        1
    ///   3       1      0.6 0.3 0.1        0
    ///   4       2      0.2 0.7 0.1        1
    ///   5       2      0.5 0.4 0.1        0
    /// confusion[true][predicted] = [[1, 1, 0], [1, 1, 0], [1, 1, 0]]; accuracy 2/6;
    /// precision: class 0 predicted for 0, 3, 5 (one right) 1/3, class 1 likewise 1/3, class 2
    /// never predicted 0; recall 1/2, 1/2 and 0 (neither class-2 sample is found). ROC-AUC,
    /// one vs rest, counting pairs (positive
    /// scored above negative; ties half): class 0, positives 0.7, 0.4 against 0.3, 0.6, 0.2,
    /// 0.5: 4 + 2 of 8 = 0.75; class 1, positives 0.6, 0.3 against 0.2, 0.5, 0.7, 0.4:
    /// 3 + 1 of 8 = 0.5; class 2, every score tied: 0.5. Macro average 1.75/3.
    #[test]
    fn metrics_match_hand_computed_values() {
        let probabilities = [
            0.7, 0.2, 0.1, 0.4, 0.5, 0.1, 0.3, 0.6, 0.1, 0.6, 0.3, 0.1, 0.2, 0.7, 0.1, 0.5, 0.4,
            0.1,
        ];
        let e = Evaluation::from_probabilities(&probabilities, &[0, 0, 1, 1, 2, 2], 3, 1.5);
        assert_eq!(e.confusion, vec![vec![1, 1, 0]; 3]);
        assert_eq!(e.accuracy, 2.0 / 6.0);
        assert_eq!(e.precision, vec![1.0 / 3.0, 1.0 / 3.0, 0.0]);
        assert_eq!(e.recall, vec![0.5, 0.5, 0.0]);
        assert_eq!(e.roc_auc, vec![0.75, 0.5, 0.5]);
        assert!((e.macro_roc_auc - 1.75 / 3.0).abs() < 1e-15);
        assert_eq!(e.loss, 1.5);
    }

    #[test]
    fn roc_auc_counts_ties_as_half_and_needs_both_classes() {
        // Positives 0.5 and 0.9 against negatives 0.5 and 0.2: 0.5 ties 0.5 (½), beats 0.2
        // (1); 0.9 beats both (2): 3.5 of 4.
        let auc = roc_auc(&[0.5, 0.5, 0.2, 0.9], &[true, false, false, true]);
        assert_eq!(auc, 0.875);
        // Perfect and reversed rankings.
        assert_eq!(roc_auc(&[0.1, 0.9], &[false, true]), 1.0);
        assert_eq!(roc_auc(&[0.1, 0.9], &[true, false]), 0.0);
        assert!(roc_auc(&[0.1, 0.9], &[true, true]).is_nan());
    }
}
