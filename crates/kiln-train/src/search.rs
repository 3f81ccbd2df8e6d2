//! Random hyperparameter search in two stages. The coarse stage trains many short trials with
//! the learning rate and weight decay drawn log-uniformly, dropout uniformly, and the
//! optimiser and layer widths from lists; the fine stage trains fewer, longer trials in a
//! narrower box around the best coarse trial (learning rate and weight decay within ×3,
//! dropout within ±0.1, the same optimiser and widths). A trial whose loss explodes (beyond 3×
//! its initial loss, the trainer's guard) stops at once and is recorded as diverged. Every
//! draw comes from one generator seeded by the plan, and each trial trains with its own seed,
//! so a search is reproducible.

use crate::choices::{name_of, OptimizerKind};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::trainer::{train, Outcome, RunData, TrainOptions};
use kiln_tensor::Backend;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Where trials are drawn from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    /// Log-uniform range of the learning rate.
    pub lr: (f32, f32),
    /// Log-uniform range of the weight decay.
    pub weight_decay: (f32, f32),
    /// Uniform range of the dropout probability.
    pub dropout: (f32, f32),
    pub optimizers: Vec<OptimizerKind>,
    pub widths: Vec<Vec<usize>>,
}

/// How many trials of how many epochs each stage trains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchPlan {
    pub coarse_trials: usize,
    pub coarse_epochs: usize,
    pub fine_trials: usize,
    pub fine_epochs: usize,
    pub seed: u64,
}

/// One trial's hyperparameters and result (a line of results.jsonl).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub id: usize,
    pub stage: String,
    pub lr: f32,
    pub weight_decay: f32,
    pub dropout: f32,
    pub optimizer: OptimizerKind,
    pub hidden: Vec<usize>,
    pub epochs: usize,
    pub seed: u64,
    /// "ok" or "diverged".
    pub status: String,
    pub val_accuracy: f64,
    pub val_loss: f64,
    pub seconds: f64,
}

/// A finished trial with what it trained (absent when it diverged).
#[derive(Debug)]
pub struct TrialRun {
    pub trial: Trial,
    pub config: TrainConfig,
    pub outcome: Option<Outcome>,
}

impl SearchSpace {
    /// Checks the ranges; errors name the flag and what is allowed.
    pub fn validate(&self) -> Result<()> {
        for (flag, (lo, hi)) in [("--lr-range", self.lr), ("--wd-range", self.weight_decay)] {
            if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
                return Err(TrainError::flag(
                    flag,
                    format!("{lo},{hi}"),
                    "LOW,HIGH with 0 < LOW ≤ HIGH (drawn log-uniformly)",
                ));
            }
        }
        let (lo, hi) = self.dropout;
        if !(0.0..1.0).contains(&lo) || !(0.0..1.0).contains(&hi) || lo > hi {
            return Err(TrainError::flag(
                "--dropout-range",
                format!("{lo},{hi}"),
                "LOW,HIGH with 0 ≤ LOW ≤ HIGH < 1",
            ));
        }
        if self.optimizers.is_empty() || self.optimizers.contains(&OptimizerKind::Lbfgs) {
            let names: Vec<String> = self.optimizers.iter().map(|&o| name_of(o)).collect();
            return Err(TrainError::flag(
                "--optimizers",
                format!("{:?}", names.join(",")),
                "a comma-separated list of first-order optimisers (sgd, momentum, nesterov, \
                 adagrad, rmsprop, adam, adamw): a search trains minibatches",
            ));
        }
        if self.widths.is_empty() || self.widths.iter().any(|w| w.is_empty() || w.contains(&0)) {
            return Err(TrainError::flag(
                "--widths",
                format!("{:?}", self.widths),
                "architectures separated by ';', widths by ',' (e.g. 256,256;512,512)",
            ));
        }
        Ok(())
    }

    /// The fine stage's box around `best`.
    pub fn around(&self, best: &Trial) -> SearchSpace {
        SearchSpace {
            lr: (best.lr / 3.0, best.lr * 3.0),
            weight_decay: (best.weight_decay / 3.0, best.weight_decay * 3.0),
            dropout: ((best.dropout - 0.1).max(0.0), (best.dropout + 0.1).min(0.9)),
            optimizers: vec![best.optimizer],
            widths: vec![best.hidden.clone()],
        }
    }

    fn draw(&self, rng: &mut StdRng) -> (f32, f32, f32, OptimizerKind, Vec<usize>) {
        let log_uniform = |rng: &mut StdRng, (lo, hi): (f32, f32)| {
            let (lo, hi) = ((lo as f64).ln(), (hi as f64).ln());
            if hi > lo {
                rng.random_range(lo..hi).exp() as f32
            } else {
                lo.exp() as f32
            }
        };
        let lr = log_uniform(rng, self.lr);
        let wd = log_uniform(rng, self.weight_decay);
        let (lo, hi) = self.dropout;
        let dropout = if hi > lo {
            rng.random_range(lo..hi)
        } else {
            lo
        };
        let optimizer = self.optimizers[rng.random_range(0..self.optimizers.len())];
        let hidden = self.widths[rng.random_range(0..self.widths.len())].clone();
        (lr, wd, dropout, optimizer, hidden)
    }
}

impl SearchPlan {
    pub fn validate(&self) -> Result<()> {
        for (flag, v) in [
            ("--trials", self.coarse_trials),
            ("--coarse-epochs", self.coarse_epochs),
            ("--fine-epochs", self.fine_epochs),
        ] {
            if v == 0 {
                return Err(TrainError::flag(
                    flag,
                    0,
                    "an integer ≥ 1 (the search budget)",
                ));
            }
        }
        Ok(())
    }
}

/// Runs the search on `data` with `base` for everything not searched; `on_trial` sees each
/// finished trial (to print it and append it to the results file).
pub fn random_search<B: Backend>(
    backend: &B,
    base: &TrainConfig,
    data: &RunData,
    space: &SearchSpace,
    plan: &SearchPlan,
    mut on_trial: impl FnMut(&Trial),
) -> Result<Vec<TrialRun>> {
    space.validate()?;
    plan.validate()?;
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let mut runs = Vec::new();
    let mut id = 0;
    let mut stage = |runs: &mut Vec<TrialRun>,
                     rng: &mut StdRng,
                     space: &SearchSpace,
                     name: &str,
                     trials: usize,
                     epochs: usize|
     -> Result<()> {
        for _ in 0..trials {
            id += 1;
            let (lr, weight_decay, dropout, optimizer, hidden) = space.draw(rng);
            let config = TrainConfig {
                lr,
                weight_decay,
                dropout,
                optimizer,
                hidden: hidden.clone(),
                epochs,
                seed: plan.seed.wrapping_add(id as u64),
                ..base.clone()
            };
            let start = std::time::Instant::now();
            let result = train(
                backend,
                &config,
                data,
                TrainOptions {
                    quiet: true,
                    ..TrainOptions::default()
                },
            );
            let (status, outcome) = match result {
                Ok(o) => ("ok", Some(o)),
                Err(TrainError::Diverged { .. }) => ("diverged", None),
                Err(e) => return Err(e),
            };
            let (val_accuracy, val_loss) = outcome.as_ref().map_or((0.0, f64::NAN), |o| {
                let best = o.history.iter().find(|r| r.epoch == o.best_epoch);
                (o.best_val_accuracy, best.map_or(f64::NAN, |r| r.val_loss))
            });
            let trial = Trial {
                id,
                stage: name.into(),
                lr,
                weight_decay,
                dropout,
                optimizer,
                hidden,
                epochs,
                seed: config.seed,
                status: status.into(),
                val_accuracy,
                val_loss,
                seconds: start.elapsed().as_secs_f64(),
            };
            on_trial(&trial);
            runs.push(TrialRun {
                trial,
                config,
                outcome,
            });
        }
        Ok(())
    };
    stage(
        &mut runs,
        &mut rng,
        space,
        "coarse",
        plan.coarse_trials,
        plan.coarse_epochs,
    )?;
    if plan.fine_trials > 0 {
        let best = ranked(&runs)
            .first()
            .map(|r| r.trial.clone())
            .ok_or_else(|| TrainError::Flag {
                flag: "--lr-range",
                value: format!("{:?}", space.lr),
                allowed: "a range where some coarse trial does not diverge".into(),
            })?;
        let fine = space.around(&best);
        stage(
            &mut runs,
            &mut rng,
            &fine,
            "fine",
            plan.fine_trials,
            plan.fine_epochs,
        )?;
    }
    Ok(runs)
}

/// The trials that did not diverge, best validation accuracy first (ties: lower loss).
pub fn ranked(runs: &[TrialRun]) -> Vec<&TrialRun> {
    let mut ok: Vec<&TrialRun> = runs.iter().filter(|r| r.outcome.is_some()).collect();
    ok.sort_by(|a, b| {
        b.trial
            .val_accuracy
            .total_cmp(&a.trial.val_accuracy)
            .then(a.trial.val_loss.total_cmp(&b.trial.val_loss))
    });
    ok
}

/// The results as a text table, best validation accuracy first (diverged trials last).
pub fn results_table(trials: &[Trial]) -> String {
    let mut sorted: Vec<&Trial> = trials.iter().collect();
    sorted.sort_by(|a, b| {
        (b.status == "ok")
            .cmp(&(a.status == "ok"))
            .then(b.val_accuracy.total_cmp(&a.val_accuracy))
    });
    let mut out = format!(
        "{:>4}  {:<6}  {:>9}  {:>9}  {:>7}  {:<9}  {:<12}  {:>6}  {:>8}  {:>7}\n",
        "id", "stage", "lr", "wd", "dropout", "optimizer", "hidden", "epochs", "val acc", "status"
    );
    for t in sorted {
        let hidden = t
            .hidden
            .iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .join(",");
        out.push_str(&format!(
            "{:>4}  {:<6}  {:>9.2e}  {:>9.2e}  {:>7.3}  {:<9}  {:<12}  {:>6}  {:>8.4}  {:>7}\n",
            t.id,
            t.stage,
            t.lr,
            t.weight_decay,
            t.dropout,
            name_of(t.optimizer),
            hidden,
            t.epochs,
            t.val_accuracy,
            t.status
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `draws` from [low, low·10⁴) spread evenly over the four decades, as log-uniform
    /// draws do: 4000 draws put 1000 ± 27 (one standard deviation) in each; ± 135 is five.
    fn spread_evenly_over_decades(draws: &[f32], low: f32) -> bool {
        let mut counts = [0usize; 4];
        for &d in draws {
            let decade = ((d / low).log10().floor() as usize).min(3);
            counts[decade] += 1;
        }
        let expected = draws.len() / 4;
        counts.iter().all(|&c| c.abs_diff(expected) <= 135)
    }

    #[test]
    fn learning_rate_and_weight_decay_are_drawn_log_uniformly() {
        let space = SearchSpace {
            lr: (1e-5, 1e-1),
            weight_decay: (1e-6, 1e-2),
            dropout: (0.0, 0.5),
            optimizers: vec![OptimizerKind::Adam],
            widths: vec![vec![8]],
        };
        let mut rng = StdRng::seed_from_u64(3);
        let (lrs, decays): (Vec<f32>, Vec<f32>) = (0..4000)
            .map(|_| {
                let (lr, wd, ..) = space.draw(&mut rng);
                (lr, wd)
            })
            .unzip();
        assert!(lrs.iter().all(|&v| (1e-5..=1e-1).contains(&v)));
        assert!(spread_evenly_over_decades(&lrs, 1e-5));
        assert!(spread_evenly_over_decades(&decays, 1e-6));
        // The check has teeth: uniform draws over the same range put ~90 % in the top decade.
        let uniform: Vec<f32> = (0..4000).map(|_| rng.random_range(1e-5f32..1e-1)).collect();
        assert!(!spread_evenly_over_decades(&uniform, 1e-5));
    }
}
