//! Gradient checking: analytic gradients from backward against centered differences
//! (f(x + h) − f(x − h)) / 2h, element by element, in f64 (use the CPU backend).
//!
//! Error per element: |a − n| / max(|a|, |n|, 1e-8): gradients smaller than 1e-8 are compared
//! absolutely, since the differences' own rounding error (≈ ε·|f| / h) is of that size. Elements where the one-sided differences disagree — x ± h straddles a
//! kink such as ReLU's at 0 — are skipped and counted.

use crate::graph::{no_grad, Var};
use kiln_tensor::{Backend, DType, HostData, KilnError, Result, Shape, Tensor};

#[derive(Clone, Copy, Debug)]
pub struct GradcheckOptions {
    /// The finite-difference step h.
    pub step: f64,
    /// The largest relative error that passes (1e-7 for smooth functions).
    pub tolerance: f64,
    /// One-sided differences further apart than this (relative to max(|f'|, 1)) mark a kink.
    pub kink_threshold: f64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            step: 1e-5,
            tolerance: 1e-7,
            kink_threshold: 1e-3,
        }
    }
}

/// What gradcheck found for one input tensor.
#[derive(Clone, Debug)]
pub struct InputReport {
    pub shape: Shape,
    pub max_relative_error: f64,
    /// Flat index of the element with the largest error, with both gradients there.
    pub worst_element: usize,
    pub analytic: f64,
    pub numeric: f64,
    pub checked: usize,
    pub skipped_at_kinks: usize,
}

#[derive(Clone, Debug)]
pub struct GradcheckReport {
    pub inputs: Vec<InputReport>,
    pub tolerance: f64,
}

impl GradcheckReport {
    pub fn max_relative_error(&self) -> f64 {
        self.inputs
            .iter()
            .map(|r| r.max_relative_error)
            .fold(0.0, f64::max)
    }

    pub fn passed(&self) -> bool {
        self.max_relative_error() < self.tolerance
    }
}

impl std::fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.inputs.iter().enumerate() {
            writeln!(
                f,
                "input {i} {}: max relative error {:.2e} at element {} (analytic {:.6e}, numeric {:.6e}); {} checked, {} skipped at kinks",
                r.shape, r.max_relative_error, r.worst_element, r.analytic, r.numeric, r.checked, r.skipped_at_kinks
            )?;
        }
        write!(
            f,
            "{} (tolerance {:.0e})",
            if self.passed() { "pass" } else { "FAIL" },
            self.tolerance
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
    let mut reports = Vec::with_capacity(inputs.len());
    for (which, param) in params.iter().enumerate() {
        let analytic = match param.grad() {
            Some(g) => g.to_vec::<f64>()?,
            None => vec![0.0; host[which].len()],
        };
        let base = evaluate(which, &host[which])?;
        let mut report = InputReport {
            shape: inputs[which].shape().clone(),
            max_relative_error: 0.0,
            worst_element: 0,
            analytic: 0.0,
            numeric: 0.0,
            checked: 0,
            skipped_at_kinks: 0,
        };
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
            let diff = (a - numeric).abs();
            let error = diff / a.abs().max(numeric.abs()).max(1e-8);
            report.checked += 1;
            if error >= report.max_relative_error {
                report.max_relative_error = error;
                report.worst_element = j;
                report.analytic = a;
                report.numeric = numeric;
            }
        }
        reports.push(report);
    }
    Ok(GradcheckReport {
        inputs: reports,
        tolerance: options.tolerance,
    })
}
