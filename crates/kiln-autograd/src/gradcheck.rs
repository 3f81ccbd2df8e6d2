//! Gradient checking: analytic gradients from backward against centered differences
//! (f(x + h) − f(x − h)) / 2h, element by element, in f64 (use the CPU backend).
//!
//! An element passes when |analytic − numeric| ≤ atol + rtol · max(|analytic|, |numeric|), as
//! PyTorch's gradcheck judges: relative where the gradient is large enough for the relative
//! error to mean something, absolute below. rtol is the seed lecture's 1e-7. atol is the
//! centered difference's own rounding error, 100 ε · max(|f|, 1) / h (f evaluated with ~100
//! roundings, then divided by 2h), so the criterion means the same on every CPU: an entry
//! near zero whose numeric derivative is all rounding noise no longer fails on a machine that
//! rounds it differently. The report gives both numbers: the largest relative error among
//! elements at or above the floor atol / rtol, and the largest absolute error of all.
//! Elements where the one-sided differences disagree — x ± h straddles a kink such as ReLU's
//! at 0 — are skipped and counted.

use crate::graph::{no_grad, Var};
use kiln_tensor::{Backend, DType, HostData, KilnError, Result, Shape, Tensor};

#[derive(Clone, Copy, Debug)]
pub struct GradcheckOptions {
    /// The finite-difference step h.
    pub step: f64,
    /// rtol: the largest relative error that passes (1e-7 for smooth functions).
    pub tolerance: f64,
    /// atol; `None` derives it from the centered difference's rounding error,
    /// 100 ε · max(|f|, 1) / h.
    pub absolute_tolerance: Option<f64>,
    /// One-sided differences further apart than this (relative to max(|f'|, 1)) mark a kink.
    pub kink_threshold: f64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            step: 1e-5,
            tolerance: 1e-7,
            absolute_tolerance: None,
            kink_threshold: 1e-3,
        }
    }
}

/// What gradcheck found for one input tensor.
#[derive(Clone, Debug)]
pub struct InputReport {
    pub shape: Shape,
    /// The largest relative error among elements whose gradient is at least the floor
    /// atol / rtol (0 when none is).
    pub max_relative_error: f64,
    /// The largest |analytic − numeric| over every checked element.
    pub max_absolute_error: f64,
    /// Flat index of the element nearest to (or furthest past) its allowance, with both
    /// gradients there.
    pub worst_element: usize,
    pub analytic: f64,
    pub numeric: f64,
    pub checked: usize,
    pub skipped_at_kinks: usize,
    /// Every checked element within atol + rtol · max(|analytic|, |numeric|).
    pub passed: bool,
}

#[derive(Clone, Debug)]
pub struct GradcheckReport {
    pub inputs: Vec<InputReport>,
    /// rtol.
    pub tolerance: f64,
    /// atol, as given or derived.
    pub absolute_tolerance: f64,
}

impl GradcheckReport {
    pub fn max_relative_error(&self) -> f64 {
        self.inputs
            .iter()
            .map(|r| r.max_relative_error)
            .fold(0.0, f64::max)
    }

    pub fn passed(&self) -> bool {
        self.inputs.iter().all(|r| r.passed)
    }
}

impl std::fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.inputs.iter().enumerate() {
            writeln!(
                f,
                "input {i} {}: max relative error {:.2e}, max absolute error {:.2e}, worst at element {} (analytic {:.6e}, numeric {:.6e}); {} checked, {} skipped at kinks",
                r.shape, r.max_relative_error, r.max_absolute_error, r.worst_element, r.analytic, r.numeric, r.checked, r.skipped_at_kinks
            )?;
        }
        write!(
            f,
            "{} (rtol {:.0e}, atol {:.1e}; relative errors below 1e-7 are good, above 1e-4 a wrong gradient)",
            if self.passed() { "pass" } else { "FAIL" },
            self.tolerance,
            self.absolute_tolerance
        )
    }
}

fn scalar_of<B: Backend>(v: &Var<B>) -> Result<f64> {
    v.value().item()
}

/// Checks the gradient of `f` (which must return a one-element variable) with respect to every
/// input. Inputs must be f64 tensors.
pub fn gradcheck<B, F>(
    f: F,
    inputs: &[Tensor<B>],
    options: GradcheckOptions,
) -> Result<GradcheckReport>
where
    B: Backend,
    F: Fn(&[Var<B>]) -> Result<Var<B>>,
{
    if inputs.is_empty() {
        return Err(KilnError::invalid("gradcheck", "no inputs to check"));
    }
    for (i, t) in inputs.iter().enumerate() {
        if t.dtype() != DType::F64 {
            return Err(KilnError::InvalidArgument {
                op: "gradcheck",
                message: format!(
                    "input {i} is {}, gradcheck needs f64 (use the CPU backend)",
                    t.dtype()
                ),
            });
        }
    }
    let params: Vec<Var<B>> = inputs
        .iter()
        .map(|t| t.contiguous().map(Var::parameter))
        .collect::<Result<_>>()?;
    let out = f(&params)?;
    out.backward()?;
    let host: Vec<Vec<f64>> = inputs
        .iter()
        .map(|t| t.to_vec::<f64>())
        .collect::<Result<_>>()?;
    let evaluate = |which: usize, values: &[f64]| -> Result<f64> {
        no_grad(|| {
            let vars: Vec<Var<B>> = inputs
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let data = if i == which {
                        values.to_vec()
                    } else {
                        host[i].clone()
                    };
                    Tensor::from_host(&HostData::F64(data), t.shape().clone(), t.backend())
                        .map(Var::constant)
                })
                .collect::<Result<_>>()?;
            scalar_of(&f(&vars)?)
        })
    };
    let h = options.step;
    let base = evaluate(0, &host[0])?;
    let atol = options
        .absolute_tolerance
        .unwrap_or(100.0 * f64::EPSILON * base.abs().max(1.0) / h);
    let rtol = options.tolerance;
    let mut reports = Vec::with_capacity(inputs.len());
    for (which, param) in params.iter().enumerate() {
        let analytic = match param.grad() {
            Some(g) => g.to_vec::<f64>()?,
            None => vec![0.0; host[which].len()],
        };
        let mut report = InputReport {
            shape: inputs[which].shape().clone(),
            max_relative_error: 0.0,
            max_absolute_error: 0.0,
            worst_element: 0,
            analytic: 0.0,
            numeric: 0.0,
            checked: 0,
            skipped_at_kinks: 0,
            passed: true,
        };
        let mut worst_ratio = -1.0f64;
        let mut values = host[which].clone();
        for j in 0..values.len() {
            let x = values[j];
            values[j] = x + h;
            let plus = evaluate(which, &values)?;
            values[j] = x - h;
            let minus = evaluate(which, &values)?;
            values[j] = x;
            let numeric = (plus - minus) / (2.0 * h);
            let (right, left) = ((plus - base) / h, (base - minus) / h);
            if (right - left).abs() > options.kink_threshold * right.abs().max(left.abs()).max(1.0)
            {
                report.skipped_at_kinks += 1;
                continue;
            }
            let a = analytic[j];
            let size = a.abs().max(numeric.abs());
            let diff = (a - numeric).abs();
            report.checked += 1;
            report.max_absolute_error = report.max_absolute_error.max(diff);
            if size >= atol / rtol {
                report.max_relative_error = report.max_relative_error.max(diff / size);
            }
            // A NaN on either side fails.
            let ratio = match diff / (atol + rtol * size) {
                r if r.is_nan() => f64::INFINITY,
                r => r,
            };
            if ratio > 1.0 {
                report.passed = false;
            }
            if ratio >= worst_ratio {
                worst_ratio = ratio;
                report.worst_element = j;
                report.analytic = a;
                report.numeric = numeric;
            }
        }
        reports.push(report);
    }
    Ok(GradcheckReport {
        inputs: reports,
        tolerance: rtol,
        absolute_tolerance: atol,
    })
}
