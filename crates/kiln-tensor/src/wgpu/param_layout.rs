//! The parameter blocks Rust and WGSL share, described so a test can hold each against the
//! WGSL struct it mirrors (tests/shaders_validate.rs reads the shaders with naga): the size,
//! and each field's offset, size and the WGSL member it starts at. Padding is not listed.

use super::shaders::ShaderFile;

/// One Rust parameter struct and the WGSL struct it mirrors.
#[derive(Clone, Debug)]
pub struct ParamLayout {
    pub rust_struct: &'static str,
    pub file: ShaderFile,
    pub wgsl_struct: &'static str,
    /// `size_of` the Rust struct: the WGSL struct's size must be the same.
    pub size: usize,
    pub fields: Vec<FieldLayout>,
}

/// A field: its Rust name, the WGSL member at its offset (the first one when a Rust array
/// spans several WGSL members), its offset and its size in bytes.
#[derive(Clone, Debug)]
pub struct FieldLayout {
    pub rust: &'static str,
    pub wgsl: &'static str,
    pub offset: usize,
    pub size: usize,
}

/// `param_layout!(Type, ShaderFile::X, "WgslName", [field, array_field => "wgsl_first", ...])`.
macro_rules! param_layout {
    ($ty:ty, $file:expr, $wgsl:literal, [$($field:ident $(=> $member:literal)?),* $(,)?]) => {{
        let zero: $ty = bytemuck::Zeroable::zeroed();
        $crate::wgpu::param_layout::ParamLayout {
            rust_struct: stringify!($ty),
            file: $file,
            wgsl_struct: $wgsl,
            size: std::mem::size_of::<$ty>(),
            fields: vec![$($crate::wgpu::param_layout::FieldLayout {
                rust: stringify!($field),
                wgsl: param_layout!(@member $field $($member)?),
                offset: std::mem::offset_of!($ty, $field),
                size: std::mem::size_of_val(&zero.$field),
            }),*],
        }
    }};
    (@member $field:ident $member:literal) => { $member };
    (@member $field:ident) => { stringify!($field) };
}
pub(crate) use param_layout;
