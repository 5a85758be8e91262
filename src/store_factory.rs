//! The one place that names concrete storage engines.
