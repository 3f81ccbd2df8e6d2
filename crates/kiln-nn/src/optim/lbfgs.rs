//! L-BFGS for full-batch, deterministic problems (Nocedal & Wright, algorithms 7.4 and 3.5/3.6).
//!
//! Unlike the first-order optimisers it re-evaluates the loss, so it takes a closure that runs
//! the forward pass and returns the scalar loss; `minimize` clears the gradients, runs backward
//! and reads back two scalars per evaluation (the loss and the directional derivative). The
//! search direction comes from the two-loop recursion over the last `history` pairs
//! (s = x_{k+1} − x_k, y = g_{k+1} − g_k); step lengths satisfy the strong Wolfe conditions
//! (c1 = 1e-4, c2 = 0.9) found by bracketing and cubic interpolation. Vectors stay on the
//! device as one tensor per parameter.

use crate::error::check_range;
use crate::module::Parameter;
use kiln_autograd::Var;
use kiln_tensor::{Backend, BinaryOp, KilnError, Result, Tensor};
use std::collections::VecDeque;

const C1: f64 = 1e-4;
const C2: f64 = 0.9;
const MAX_LINE_SEARCH: usize = 25;

/// A point along the search direction: step length, loss, directional derivative, gradient.
struct Point<B: Backend> {
    t: f64,
    loss: f64,
    slope: f64,
    grad: Vec<Tensor<B>>,
}

/// (s, y, 1 / yᵀs) of one past step, one tensor per parameter.
type CurvaturePair<B> = (Vec<Tensor<B>>, Vec<Tensor<B>>, f64);

/// What a call to [`Lbfgs::minimize`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct LbfgsReport {
    pub iterations: usize,
    pub evaluations: usize,
    pub loss: f64,
    /// Euclidean norm of the final gradient.
    pub grad_norm: f64,
    /// Whether a tolerance was met (otherwise the iteration budget ran out).
    pub converged: bool,
}

pub struct Lbfgs {
    history: usize,
    max_iterations: usize,
    grad_tolerance: f64,
    change_tolerance: f64,
}

impl Lbfgs {
    /// History of 10 pairs, at most 100 iterations, gradient-norm tolerance 1e-7 and
    /// loss/step change tolerance 1e-12.
    pub fn new() -> Self {
        Lbfgs {
            history: 10,
            max_iterations: 100,
            grad_tolerance: 1e-7,
            change_tolerance: 1e-12,
        }
    }

    pub fn history(mut self, pairs: usize) -> Result<Self> {
        check_range(
            "Lbfgs::history",
            "history",
            pairs as f64,
            pairs > 0,
            "[1, ∞)",
        )?;
        self.history = pairs;
        Ok(self)
    }

    pub fn max_iterations(mut self, n: usize) -> Self {
        self.max_iterations = n;
        self
    }

    pub fn tolerances(mut self, grad: f64, change: f64) -> Result<Self> {
        check_range("Lbfgs::tolerances", "grad", grad, grad >= 0.0, "[0, ∞)")?;
        check_range(
            "Lbfgs::tolerances",
            "change",
            change,
            change >= 0.0,
            "[0, ∞)",
        )?;
        self.grad_tolerance = grad;
        self.change_tolerance = change;
        Ok(self)
    }

    /// Minimises the loss returned by `loss` over `parameters`, leaving them at the best
    /// point found.
    pub fn minimize<B: Backend>(
        &self,
        parameters: &[Parameter<B>],
        mut loss: impl FnMut() -> Result<Var<B>>,
    ) -> Result<LbfgsReport> {
        if parameters.is_empty() {
            return Err(invalid("no parameters to optimise"));
        }
        let mut evaluations = 0;
        let mut evaluate = |x: &[Tensor<B>]| -> Result<(f64, Vec<Tensor<B>>)> {
            evaluations += 1;
            for (p, v) in parameters.iter().zip(x) {
                p.set(v.clone());
            }
            let l = loss()?;
            if l.shape().numel() != 1 {
                return Err(invalid(format!(
                    "the closure must return a scalar loss, got shape {}",
                    l.shape()
                )));
            }
            l.backward()?;
            let grads = parameters
                .iter()
                .map(|p| match p.grad() {
                    Some(g) => Ok(g),
                    None => Tensor::zeros(
                        p.value().shape().clone(),
                        p.value().dtype(),
                        p.value().backend(),
                    ),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((l.value().item()?, grads))
        };

        let mut x: Vec<Tensor<B>> = parameters.iter().map(|p| p.value()).collect();
        let (mut f, mut g) = evaluate(&x)?;
        let mut grad_norm = dot(&g, &g)?.sqrt();
        let mut pairs: VecDeque<CurvaturePair<B>> = VecDeque::new();
        let mut gamma = 1.0;
        let mut iterations = 0;
        let mut converged = grad_norm <= self.grad_tolerance;
        while !converged && iterations < self.max_iterations {
            iterations += 1;
            let d = two_loop(&g, &pairs, gamma)?;
            let slope = dot(&g, &d)?;
            if !slope.is_finite() || slope > -self.change_tolerance {
                converged = true;
                break;
            }
            let t0 = if pairs.is_empty() {
                (1.0 / l1_norm(&g)?).min(1.0)
            } else {
                1.0
            };
            let start = Point {
                t: 0.0,
                loss: f,
                slope,
                grad: g.clone(),
            };
            let mut phi = |t: f64| -> Result<Point<B>> {
                let xt = axpy(&x, t, &d)?;
                let (loss, grad) = evaluate(&xt)?;
                let slope = dot(&grad, &d)?;
                Ok(Point {
                    t,
                    loss,
                    slope,
                    grad,
                })
            };
            let next = strong_wolfe(&mut phi, start, t0)?;
            let x_next = axpy(&x, next.t, &d)?;
            let s = scaled(&d, next.t)?;
            let y = axpy(&next.grad, -1.0, &g)?;
            let ys = dot(&y, &s)?;
            if ys > 1e-10 {
                gamma = ys / dot(&y, &y)?;
                pairs.push_back((s, y, 1.0 / ys));
                if pairs.len() > self.history {
                    pairs.pop_front();
                }
            }
            let change = (next.loss - f).abs();
            let step = next.t.abs() * dot(&d, &d)?.sqrt();
            x = x_next;
            f = next.loss;
            g = next.grad;
            grad_norm = dot(&g, &g)?.sqrt();
            converged = grad_norm <= self.grad_tolerance
                || change < self.change_tolerance
                || step < self.change_tolerance;
        }
        for (p, v) in parameters.iter().zip(&x) {
            p.set(v.clone());
        }
        Ok(LbfgsReport {
            iterations,
            evaluations,
            loss: f,
            grad_norm,
            converged,
        })
    }
}

fn invalid(message: impl Into<String>) -> KilnError {
    KilnError::InvalidArgument {
        op: "Lbfgs::minimize",
        message: message.into(),
    }
}

impl Default for Lbfgs {
    fn default() -> Self {
        Self::new()
    }
}

/// Σ over parameters of ⟨a, b⟩, summed on the device and read back once.
fn dot<B: Backend>(a: &[Tensor<B>], b: &[Tensor<B>]) -> Result<f64> {
    let mut total: Option<Tensor<B>> = None;
    for (a, b) in a.iter().zip(b) {
        let s = (a * b)?.sum_all()?;
        total = Some(match total {
            None => s,
            Some(t) => (t + &s)?,
        });
    }
    total.map_or(Ok(0.0), |t| t.item())
}

fn l1_norm<B: Backend>(a: &[Tensor<B>]) -> Result<f64> {
    let mut total = 0.0;
    for t in a {
        total += t.abs()?.sum_all()?.item()?;
    }
    Ok(total)
}

/// x + alpha·d, per parameter.
fn axpy<B: Backend>(x: &[Tensor<B>], alpha: f64, d: &[Tensor<B>]) -> Result<Vec<Tensor<B>>> {
    x.iter()
        .zip(d)
        .map(|(x, d)| x + &d.binary_scalar(BinaryOp::Mul, alpha)?)
        .collect()
}

fn scaled<B: Backend>(d: &[Tensor<B>], alpha: f64) -> Result<Vec<Tensor<B>>> {
    d.iter()
        .map(|d| d.binary_scalar(BinaryOp::Mul, alpha))
        .collect()
}

/// The L-BFGS direction −H·g by the two-loop recursion, with H₀ = γ·I.
fn two_loop<B: Backend>(
    g: &[Tensor<B>],
    pairs: &VecDeque<CurvaturePair<B>>,
    gamma: f64,
) -> Result<Vec<Tensor<B>>> {
    let mut q: Vec<Tensor<B>> = g.to_vec();
    let mut alphas = Vec::with_capacity(pairs.len());
    for (s, y, rho) in pairs.iter().rev() {
        let alpha = rho * dot(s, &q)?;
        q = axpy(&q, -alpha, y)?;
        alphas.push(alpha);
    }
    let mut r = scaled(&q, gamma)?;
    for ((s, y, rho), alpha) in pairs.iter().zip(alphas.iter().rev()) {
        let beta = rho * dot(y, &r)?;
        r = axpy(&r, alpha - beta, s)?;
    }
    scaled(&r, -1.0)
}

/// The minimiser of the cubic through two points with slopes, kept inside [lo, hi]; the
/// midpoint when the cubic has no minimum there.
fn cubic_minimum(a: (f64, f64, f64), b: (f64, f64, f64), lo: f64, hi: f64) -> f64 {
    let ((t1, f1, d1), (t2, f2, d2)) = (a, b);
    let d1x = d1 + d2 - 3.0 * (f1 - f2) / (t1 - t2);
    let disc = d1x * d1x - d1 * d2;
    if disc >= 0.0 && (t1 - t2).abs() > 0.0 {
        let d2x = disc.sqrt();
        let t = if t1 <= t2 {
            t2 - (t2 - t1) * ((d2 + d2x - d1x) / (d2 - d1 + 2.0 * d2x))
        } else {
            t1 - (t1 - t2) * ((d1 + d2x - d1x) / (d1 - d2 + 2.0 * d2x))
        };
        if t.is_finite() {
            return t.clamp(lo, hi);
        }
    }
    (lo + hi) / 2.0
}

/// A step length satisfying the strong Wolfe conditions (or the best point seen when the
/// search budget runs out).
fn strong_wolfe<B: Backend>(
    phi: &mut impl FnMut(f64) -> Result<Point<B>>,
    start: Point<B>,
    t0: f64,
) -> Result<Point<B>> {
    let (f0, slope0) = (start.loss, start.slope);
    let sufficient = |p: &Point<B>| p.loss <= f0 + C1 * p.t * slope0;
    let curvature = |p: &Point<B>| p.slope.abs() <= -C2 * slope0;
    let mut previous = start;
    let mut t = t0;
    for i in 0..MAX_LINE_SEARCH {
        let p = phi(t)?;
        if !p.loss.is_finite() {
            // Overshot into overflow: shrink towards the last good point.
            t = (previous.t + t) / 2.0;
            continue;
        }
        if !sufficient(&p) || (i > 0 && p.loss >= previous.loss) {
            return zoom(phi, previous, p, f0, slope0);
        }
        if curvature(&p) {
            return Ok(p);
        }
        if p.slope >= 0.0 {
            return zoom(phi, p, previous, f0, slope0);
        }
        let t_next = cubic_minimum(
            (previous.t, previous.loss, previous.slope),
            (p.t, p.loss, p.slope),
            p.t * 1.01,
            p.t * 10.0,
        );
        previous = p;
        t = t_next;
    }
    Ok(previous)
}

/// Narrows the bracket [low, high] (`low` satisfies sufficient decrease with the lower loss;
/// a strong Wolfe point lies between them) by safeguarded cubic interpolation.
fn zoom<B: Backend>(
    phi: &mut impl FnMut(f64) -> Result<Point<B>>,
    mut low: Point<B>,
    mut high: Point<B>,
    f0: f64,
    slope0: f64,
) -> Result<Point<B>> {
    for _ in 0..MAX_LINE_SEARCH {
        let (a, b) = (low.t.min(high.t), low.t.max(high.t));
        let width = b - a;
        if width <= 1e-12 * b.max(1.0) {
            break;
        }
        let t = cubic_minimum(
            (low.t, low.loss, low.slope),
            (high.t, high.loss, high.slope),
            a + 0.1 * width,
            b - 0.1 * width,
        );
        let p = phi(t)?;
        if !p.loss.is_finite() || p.loss > f0 + C1 * t * slope0 || p.loss >= low.loss {
            high = p;
        } else {
            if p.slope.abs() <= -C2 * slope0 {
                return Ok(p);
            }
            if p.slope * (high.t - low.t) >= 0.0 {
                high = low;
            }
            low = p;
        }
    }
    Ok(if low.t > 0.0 {
        low
    } else {
        high_if_better(low, high)
    })
}

/// When the zoom never left t = 0, the far end is used only if it lowered the loss.
fn high_if_better<B: Backend>(low: Point<B>, high: Point<B>) -> Point<B> {
    if high.loss < low.loss {
        high
    } else {
        low
    }
}
