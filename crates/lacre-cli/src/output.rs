//! Printing results, errors and progress.

use crate::ExitCode;
use lacre_client::ClientError;
use lacre_proto::{Map, Value};
use std::io::IsTerminal;

/// Prints a JSON object: pretty on a terminal, canonical (compact) otherwise.
pub fn print_json(map: &Map) {
    let value = Value::Object(map.clone());
    if std::io::stdout().is_terminal() {
        let pretty = serde_json::to_string_pretty(&value.to_serde()).unwrap_or_default();
        println!("{pretty}");
    } else {
        println!("{}", String::from_utf8_lossy(&value.to_canonical()));
    }
}

/// A progress fraction as a whole percentage (`""` when unknown).
pub fn percent(fraction: Option<f64>) -> String {
    fraction
        .map(|p| format!("{:.0}%", p * 100.0))
        .unwrap_or_default()
}

/// The exit code for a client error.
pub fn report_code(err: &ClientError) -> ExitCode {
    match err {
        ClientError::Server { .. } => ExitCode::Server,
        ClientError::Transport(_) | ClientError::Timeout => ExitCode::Transport,
        ClientError::OutcomeUnknown(_) => ExitCode::OutcomeUnknown,
        ClientError::InvalidUrl { .. } => ExitCode::Usage,
        ClientError::Verification(_) | ClientError::Trust(_) => ExitCode::Verification,
        ClientError::Usage(_) => ExitCode::Usage,
        _ => ExitCode::Rejected,
    }
}

/// An error and its causes, `: `-separated (as anyhow's `{:#}` prints them).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// Reports a client error on stderr and returns its exit code.
pub fn report(err: &ClientError) -> ExitCode {
    eprintln!("error: {}", error_chain(err));
    report_code(err)
}

/// Shows a job's progress: a bar on a terminal, nothing otherwise.
pub struct ProgressView {
    bar: Option<indicatif::ProgressBar>,
}

impl ProgressView {
    /// A view for `job_id`.
    pub fn new(job_id: &str) -> ProgressView {
        if !std::io::stderr().is_terminal() {
            return ProgressView { bar: None };
        }
        let bar = indicatif::ProgressBar::new(1000);
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} job {prefix} [{bar:30}] {percent:>3}% {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(job_id.chars().take(8).collect::<String>());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        ProgressView { bar: Some(bar) }
    }

    /// Shows a progress update.
    pub fn update(&self, p: &lacre_client::JobProgress) {
        if let Some(bar) = &self.bar {
            if let Some(f) = p.progress {
                bar.set_position((f.clamp(0.0, 1.0) * 1000.0).round() as u64);
            }
            bar.set_message(
                p.message
                    .clone()
                    .unwrap_or_else(|| p.state.as_str().to_owned()),
            );
        }
    }

    /// Whether a bar is shown (stderr is a terminal).
    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
