pub use kiln_tensor;
