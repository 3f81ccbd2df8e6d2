//! Construction-time checks: a bad hyper-parameter names itself and its allowed range.

use kiln_tensor::KilnError;

/// An error for a hyper-parameter outside its allowed range.
pub fn invalid(
    what: &'static str,
    name: &str,
    value: impl std::fmt::Display,
    allowed: &str,
) -> KilnError {
    KilnError::InvalidArgument {
        op: what,
        message: format!("{name} = {value} is outside the allowed range {allowed}"),
    }
}

pub(crate) fn check_range(
    what: &'static str,
    name: &str,
    value: f64,
    ok: bool,
    allowed: &str,
) -> Result<(), KilnError> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(invalid(what, name, value, allowed))
    }
}
