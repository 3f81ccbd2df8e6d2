//! Learning-rate schedules: a base rate shaped by a decay rule, with an optional linear
//! warm-up in front; and reduce-on-plateau, driven by a validation metric.

use crate::error::check_range;
use kiln_tensor::Result;

/// How the rate evolves after warm-up, as a function of the step t (counted from 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decay {
    Constant,
    /// lr · gamma^⌊t / every⌋
    Step {
        every: usize,
        gamma: f32,
    },
    /// lr · gamma^t
    Exponential {
        gamma: f32,
    },
    /// lr / (1 + k·t)
    InverseTime {
        k: f32,
    },
    /// Cosine from lr down to `min_lr` over `period` steps; with `restarts`, the cycle starts
    /// again (SGDR), each cycle `period_mult` times longer than the last.
    Cosine {
        period: usize,
        min_lr: f32,
        restarts: bool,
        period_mult: usize,
    },
    /// Triangular cycles between lr and `max_lr`, `half_cycle` steps up then as many down.
    Triangular {
        half_cycle: usize,
        max_lr: f32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    base_lr: f32,
    decay: Decay,
    warmup: usize,
}

impl Schedule {
    pub fn new(base_lr: f32, decay: Decay) -> Result<Self> {
        check_range(
            "Schedule::new",
            "learning rate",
            base_lr as f64,
            base_lr > 0.0,
            "(0, ∞)",
        )?;
        match decay {
            Decay::Step { every, gamma } => {
                check_range(
                    "Schedule::new",
                    "step every",
                    every as f64,
                    every > 0,
                    "≥ 1",
                )?;
                check_range(
                    "Schedule::new",
                    "gamma",
                    gamma as f64,
                    gamma > 0.0 && gamma <= 1.0,
                    "(0, 1]",
                )?;
            }
            Decay::Exponential { gamma } => check_range(
                "Schedule::new",
                "gamma",
                gamma as f64,
                gamma > 0.0 && gamma <= 1.0,
                "(0, 1]",
            )?,
            Decay::InverseTime { k } => {
                check_range("Schedule::new", "k", k as f64, k >= 0.0, "[0, ∞)")?
            }
            Decay::Cosine {
                period,
                min_lr,
                period_mult,
                ..
            } => {
                check_range(
                    "Schedule::new",
                    "cosine period",
                    period as f64,
                    period > 0,
                    "≥ 1",
                )?;
                check_range(
                    "Schedule::new",
                    "min_lr",
                    min_lr as f64,
                    (0.0..=base_lr).contains(&min_lr),
                    "[0, base learning rate]",
                )?;
                check_range(
                    "Schedule::new",
                    "period_mult",
                    period_mult as f64,
                    period_mult >= 1,
                    "≥ 1",
                )?;
            }
            Decay::Triangular { half_cycle, max_lr } => {
                check_range(
                    "Schedule::new",
                    "half_cycle",
                    half_cycle as f64,
                    half_cycle > 0,
                    "≥ 1",
                )?;
                check_range(
                    "Schedule::new",
                    "max_lr",
                    max_lr as f64,
                    max_lr >= base_lr,
                    "[base learning rate, ∞)",
                )?;
            }
            Decay::Constant => {}
        }
        Ok(Schedule {
            base_lr,
            decay,
            warmup: 0,
        })
    }

    /// A linear ramp from lr / warmup to lr over the first `warmup` steps, then the decay
    /// (whose clock starts after the warm-up).
    pub fn with_warmup(mut self, warmup: usize) -> Self {
        self.warmup = warmup;
        self
    }

    pub fn lr_at(&self, step: usize) -> f32 {
        if step < self.warmup {
            return self.base_lr * (step + 1) as f32 / self.warmup as f32;
        }
        let t = step - self.warmup;
        let lr = self.base_lr;
        match self.decay {
            Decay::Constant => lr,
            Decay::Step { every, gamma } => lr * gamma.powi((t / every) as i32),
            Decay::Exponential { gamma } => lr * gamma.powi(t as i32),
            Decay::InverseTime { k } => lr / (1.0 + k * t as f32),
            Decay::Cosine {
                period,
                min_lr,
                restarts,
                period_mult,
            } => {
                let (position, length) = if restarts {
                    let (mut start, mut length) = (0usize, period);
                    while t >= start + length {
                        start += length;
                        length *= period_mult;
                    }
                    (t - start, length)
                } else {
                    (t.min(period), period)
                };
                let progress = position as f32 / length as f32;
                min_lr + (lr - min_lr) * 0.5 * (1.0 + (std::f32::consts::PI * progress).cos())
            }
            Decay::Triangular { half_cycle, max_lr } => {
                let phase = t % (2 * half_cycle);
                let rise = if phase < half_cycle {
                    phase
                } else {
                    2 * half_cycle - phase
                };
                lr + (max_lr - lr) * rise as f32 / half_cycle as f32
            }
        }
    }
}

/// Multiplies the rate by `factor` when the metric (lower is better) has not improved by more
/// than `threshold` (relative) for `patience` observations, down to `min_lr`. Serialisable, so
/// a resumed run continues with its count of stale epochs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReduceOnPlateau {
    factor: f32,
    patience: usize,
    threshold: f64,
    min_lr: f32,
    best: f64,
    waited: usize,
}

impl ReduceOnPlateau {
    pub fn new(factor: f32, patience: usize, min_lr: f32) -> Result<Self> {
        check_range(
            "ReduceOnPlateau::new",
            "factor",
            factor as f64,
            factor > 0.0 && factor < 1.0,
            "(0, 1)",
        )?;
        check_range(
            "ReduceOnPlateau::new",
            "min_lr",
            min_lr as f64,
            min_lr >= 0.0,
            "[0, ∞)",
        )?;
        Ok(ReduceOnPlateau {
            factor,
            patience,
            threshold: 1e-4,
            min_lr,
            best: f64::INFINITY,
            waited: 0,
        })
    }

    /// Records a metric and returns the learning rate to use from now on.
    pub fn observe(&mut self, metric: f64, lr: f32) -> f32 {
        if metric < self.best * (1.0 - self.threshold) {
            self.best = metric;
            self.waited = 0;
            return lr;
        }
        self.waited += 1;
        if self.waited > self.patience {
            self.waited = 0;
            return (lr * self.factor).max(self.min_lr);
        }
        lr
    }
}
