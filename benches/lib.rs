//! Empty: this crate only carries the criterion benchmarks `input` and `output`.
