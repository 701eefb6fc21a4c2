//! The shop service: configuration, wiring of the adapters, background workers and graceful
//! shutdown around the HTTP adapter. The `shop` binary is a thin `main` over [`Application`];
//! the API tests build the same [`Application`] in-process.

pub mod config;
pub mod operations_metrics;
pub mod startup;
pub mod telemetry;
pub mod wiring;
pub mod workers;

pub use config::{Config, ConfigError, LogFormat, Secret};
pub use startup::{Application, StartupError};
