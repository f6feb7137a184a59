//! Logging setup for the `fulmen` binary: `tracing` to stderr, level from `RUST_LOG`,
//! human-readable by default or JSON lines with `--log-format json`.
//! Must never: write logs to stdout (stdout carries the CLI's JSON results).

use tracing_subscriber::EnvFilter;

/// How log lines are formatted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. `default_level` applies when `RUST_LOG` is unset
/// (daemons use `info`, client commands `warn`). Calling it twice is harmless.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
