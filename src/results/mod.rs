//! Results out: the results file's writer and reader ([`output`]), `--resume` ([`resume`]), the
//! lock per results file ([`lock`]), the run's [`timeline`], the HTML [`report`] and the
//! Prometheus textfile ([`metrics`]);
//! the results columns, written and read by name, are in [`schema`].

mod error;
pub use error::ResultsError;

pub(crate) mod lock;
pub(crate) mod metrics;
pub mod output;
pub(crate) mod report;
pub(crate) mod resume;
pub(crate) mod roles;
pub(crate) mod schema;
pub(crate) mod timeline;
pub(crate) mod workbook;
