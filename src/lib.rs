//! pc-qualify: set Microsoft Partner Center customer qualifications in bulk.

pub mod error;
pub mod model;
