//! Logging: lines on stderr, filtered by `RUST_LOG` (default `info`); human-readable, or one
//! JSON object per line with `LABGATE__LOG__FORMAT=json` (read here, before the settings: the
//! first lines are logged while they load). Lines are handed to a writer thread, so requests
//! never queue on the stderr lock.

use std::io::IsTerminal;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// The variable that chooses the format, and its values.
pub const FORMAT_VARIABLE: &str = "LABGATE__LOG__FORMAT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// `text` (the default) or `json`; anything else is refused with the values it may take.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("") | Some("text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(other) => Err(format!(
                "{FORMAT_VARIABLE}={other:?} is not a log format: use \"text\" or \"json\""
            )),
        }
    }
}

/// Starts logging; keep the guard until the process ends, so that queued lines are written.
pub fn init() -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let asked = std::env::var(FORMAT_VARIABLE).ok();
    let (format, refused) = match LogFormat::parse(asked.as_deref()) {
        Ok(format) => (format, None),
        Err(why) => (LogFormat::Text, Some(why)),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        // Span fields (method, path, request id, status, duration) go with every event.
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    if let Some(why) = refused {
        tracing::warn!("{why}; logging as text");
    }
    guard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_text_unless_json_is_asked_for() {
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("text")), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("json")), Ok(LogFormat::Json));
        assert!(
            LogFormat::parse(Some("JSONL"))
                .unwrap_err()
                .contains("\"json\"")
        );
    }
}
