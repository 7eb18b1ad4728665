//! Log lines to stderr through a buffer: a busy server writes one line a
//! request, and a `write(2)` for each cost about 5% of its throughput.
//! Lines are appended to a buffer that a background thread writes out every
//! [`FLUSH_EVERY`] (or at once when it passes [`FLUSH_AT`] bytes); warnings
//! and errors go out at once, with everything before them; [`flush`] runs
//! before the process exits. A terminal gets every line at once.

use std::io::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How long a line may wait in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Bytes that make a writer flush the buffer itself.
const FLUSH_AT: usize = 64 * 1024;

static BUFFER: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

fn buffer() -> &'static Mutex<Vec<u8>> {
    BUFFER.get_or_init(|| {
        // The flusher lives as long as the process; if it cannot start,
        // every line is written at once instead (see `LineWriter::drop`).
        let started = std::thread::Builder::new()
            .name("lacre-log".to_owned())
            .spawn(|| loop {
                std::thread::sleep(FLUSH_EVERY);
                flush();
            });
        if started.is_err() {
            IMMEDIATE.get_or_init(|| true);
        }
        Mutex::new(Vec::with_capacity(FLUSH_AT))
    })
}

static IMMEDIATE: OnceLock<bool> = OnceLock::new();

fn write_out(buf: &mut Vec<u8>) {
    if !buf.is_empty() {
        // Nowhere to report a failure to write the log.
        let _ = std::io::stderr().write_all(buf);
        buf.clear();
    }
}

/// Writes out every buffered line.
pub fn flush() {
    if let Some(b) = BUFFER.get() {
        write_out(&mut b.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// The `MakeWriter` of the log: buffered, except for warnings and errors.
#[derive(Clone, Copy, Default)]
pub struct Buffered;

/// One event's writer; the formatter writes the whole line through it.
pub struct LineWriter {
    urgent: bool,
}

impl std::io::Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buf = buffer().lock().unwrap_or_else(|p| p.into_inner());
        buf.extend_from_slice(bytes);
        if buf.len() >= FLUSH_AT {
            write_out(&mut buf);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.urgent || IMMEDIATE.get().is_some() {
            flush();
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffered {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter { urgent: false }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LineWriter {
        LineWriter {
            urgent: *meta.level() <= tracing::Level::WARN,
        }
    }
}
