//! gradcheck's own criterion: an entry passes within atol + rtol·|gradient| (atol the
//! centered difference's rounding error), so a wrong backward rule fails and entries whose
//! gradient is near zero mean the same on every CPU.

mod common;
use common::*;
use kiln::prelude::*;

fn check(
    what: &str,
    f: impl Fn(&[Var<CpuBackend>]) -> kiln::tensor::Result<Var<CpuBackend>>,
    inputs: &[Tensor<CpuBackend>],
) -> kiln::autograd::GradcheckReport {
    let report = gradcheck(f, inputs, GradcheckOptions::default()).unwrap();
    assert!(report.passed(), "{what}:\n{report}");
    report
}

#[test]
fn gradcheck_fails_a_wrong_backward_rule() {
    // Σ c·x with c a constant copy of x: the recorded backward gives x where the function's
    // derivative is 2x, as a rule that forgot a term would.
    let x = f64_tensor(3, &[4, 5], 0.5, 2.0);
    let forgot_a_term =
        |v: &[Var<CpuBackend>]| Var::constant(v[0].value().clone()).mul(&v[0])?.sum_all();
    let report = gradcheck(
        forgot_a_term,
        std::slice::from_ref(&x),
        GradcheckOptions::default(),
    )
    .unwrap();
    assert!(!report.passed(), "{report}");
    assert!(report.inputs[0].max_relative_error > 0.4, "{report}");
    assert!(report.to_string().contains("FAIL"));
    // A rule off by 5e-5 relative: Σ x² + 1e-4 · Σ c·x.
    let slightly_off = |v: &[Var<CpuBackend>]| {
        let c = Var::constant(v[0].value().clone());
        v[0].mul(&v[0])?.sum_all()?.add(
            &c.mul(&v[0])?
                .sum_all()?
                .binary_scalar(BinaryOp::Mul, 1e-4)?,
        )
    };
    let report = gradcheck(
        slightly_off,
        std::slice::from_ref(&x),
        GradcheckOptions::default(),
    )
    .unwrap();
    assert!(!report.passed(), "{report}");
    // The same function with its true derivative passes.
    let right = |v: &[Var<CpuBackend>]| {
        v[0].mul(&v[0])?.sum_all()?.add(
            &v[0]
                .mul(&v[0])?
                .sum_all()?
                .binary_scalar(BinaryOp::Mul, 1e-4)?,
        )
    };
    check("Σ x² (1 + 1e-4)", right, &[x]);
}

#[test]
fn gradcheck_judges_entries_near_zero_absolutely() {
    // f = Σ tanh(x)², whose derivative 2·tanh·(1 − tanh²) vanishes at x = 0. There the
    // numeric derivative is pure rounding noise (~1e-11), which a purely relative criterion
    // (noise / max(|gradient|, 1e-8) ≈ 1e-3) fails on any machine; the absolute allowance, the
    // centered difference's own rounding error, does not.
    let x = Tensor::from_vec(vec![0.0f64, 1e-12, -1e-10, 0.3, -1.2, 2.0], [6], &cpu()).unwrap();
    let report = check(
        "tanh² near 0",
        |v| {
            let t = v[0].tanh()?;
            t.mul(&t)?.sum_all()
        },
        &[x],
    );
    let r = &report.inputs[0];
    assert_eq!(r.checked, 6);
    assert!(
        r.max_absolute_error <= report.absolute_tolerance,
        "{report}"
    );
    // The relative error is reported only where |gradient| is above atol / rtol.
    assert!(r.max_relative_error < 1e-7, "{report}");
}
