//! The text log's line format: tracing-subscriber's default ("full") format,
//! byte for byte, with a fast path for the one line a busy server writes
//! for every request (target `lacre::request`). Formatted by the default
//! code, that line cost about a quarter of an immediate call's own time in
//! the server (a profile of `lacre serve` under `lacre bench`, BENCHMARKS.md
//! §1): the timestamp's calendar arithmetic, a `fmt` call per piece and
//! each field name painted with an empty ANSI style. The fast path writes
//! the same bytes with a timestamp prefix cached per second and strings
//! copied as they are when their `Debug` form is the string in quotes.
//! Every other event, and that one when colours are on or a span is
//! current, goes through the default format.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::SystemTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The target of the per-request line (`lacre_server::dispatch`).
const REQUEST_TARGET: &str = "lacre::request";

/// The event format of the text log.
#[derive(Default)]
pub struct Lines {
    full: Format<Full, SystemTime>,
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let plain = !writer.has_ansi_escapes()
            && meta.target() == REQUEST_TARGET
            && meta.fields().field("message").is_none()
            && ctx.lookup_current().is_none();
        if plain {
            let done = LINE.with(|line| {
                let mut line = line.borrow_mut();
                line.clear();
                let ok = request_line(&mut line, meta.level(), meta.target(), event);
                ok.then(|| writer.write_str(&line))
            });
            if let Some(written) = done {
                return written;
            }
        }
        self.full.format_event(ctx, writer, event)
    }
}

thread_local! {
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(256));
    /// The Unix second last formatted, and its `YYYY-MM-DDTHH:MM:SS.`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Writes the whole line as the default format would; `false` if the event
/// holds a field this path does not write (then nothing of it is used).
fn request_line(out: &mut String, level: &Level, target: &str, event: &Event<'_>) -> bool {
    if !timestamp(out, std::time::SystemTime::now()) {
        return false;
    }
    out.push(' ');
    out.push_str(level_str(level));
    out.push(' ');
    out.push_str(target);
    out.push_str(": ");
    let mut fields = Fields {
        out,
        first: true,
        plain: true,
    };
    event.record(&mut fields);
    let plain = fields.plain;
    out.push('\n');
    plain
}

/// The default format's level names (right-aligned to five).
fn level_str(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC, as tracing-subscriber's
/// `SystemTime` writes it; `false` for a time it would write otherwise
/// (before 1970 or after 9999).
fn timestamp(out: &mut String, now: std::time::SystemTime) -> bool {
    let Ok(since) = now.duration_since(std::time::UNIX_EPOCH) else {
        return false;
    };
    let secs = since.as_secs();
    let ok = SECOND.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != secs {
            let Some(prefix) = second_prefix(secs) else {
                return false;
            };
            *cache = (secs, prefix);
        }
        out.push_str(&cache.1);
        true
    });
    if !ok {
        return false;
    }
    let micros = since.subsec_micros();
    let mut digits = [b'0'; 6];
    let mut n = micros;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend(digits.iter().map(|&b| char::from(b)));
    out.push('Z');
    true
}

/// `YYYY-MM-DDTHH:MM:SS.` of a Unix second (from the webhooks' RFC 3339
/// writer; once a second, so its allocation does not matter); `None` past
/// the year 9999.
fn second_prefix(secs: u64) -> Option<String> {
    let ms = i64::try_from(secs).ok()?.checked_mul(1000)?;
    let full = lacre_server::webhooks::rfc3339(ms);
    // `YYYY-MM-DDTHH:MM:SS.mmmZ`: a longer one has a five-digit year.
    (full.len() == 24).then(|| full[..20].to_owned())
}

/// Writes fields as the default format's visitor does with colours off:
/// `name=<Debug of the value>`, separated by spaces.
struct Fields<'a> {
    out: &'a mut String,
    first: bool,
    /// Cleared by a field this path does not write.
    plain: bool,
}

impl Fields<'_> {
    fn name(&mut self, field: &Field) {
        if !self.first {
            self.out.push(' ');
        }
        self.first = false;
        let name = field.name();
        self.out.push_str(name.strip_prefix("r#").unwrap_or(name));
        self.out.push('=');
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field);
        // `Debug` of a string is the string in quotes when every byte is
        // printable ASCII other than `"` and `\`; anything else (a newline,
        // an escape, any non-ASCII character) goes through `Debug` itself.
        if value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
        {
            self.out.push('"');
            self.out.push_str(value);
            self.out.push('"');
        } else {
            let _ = write!(self.out, "{value:?}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn record_error(&mut self, _field: &Field, _value: &(dyn std::error::Error + 'static)) {
        // The default writes an error with its sources: not this path's.
        self.plain = false;
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.name(field);
        let _ = write!(self.out, "{value:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    /// A log writer into memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// The request line for `request_id`, through the default format and
    /// through [`Lines`].
    fn both(request_id: &str, in_span: bool) -> (String, String) {
        let emit = || {
            let span = tracing::info_span!("conn", peer = 7);
            let _entered = in_span.then(|| span.enter());
            tracing::info!(
                target: "lacre::request",
                request_id = request_id,
                client_id = "client-001",
                tool = %"batch_sum",
                status = %"ok",
                latency_us = 17u64,
                r#type = -3i64,
                cached = false,
            );
        };
        through_both(emit)
    }

    /// What `emit` logs through the default format, and through [`Lines`].
    fn through_both(emit: impl Fn()) -> (String, String) {
        let default = Captured::default();
        let sub = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(default.clone())
            .finish();
        tracing::subscriber::with_default(sub, &emit);
        let ours = Captured::default();
        let sub = tracing_subscriber::fmt()
            .with_ansi(false)
            .event_format(Lines::default())
            .with_writer(ours.clone())
            .finish();
        tracing::subscriber::with_default(sub, &emit);
        (default.text(), ours.text())
    }

    /// The line without its timestamp (the two were taken at different
    /// instants), checking the timestamp's shape.
    fn after_time(line: &str) -> &str {
        let (time, rest) = line.split_at(27);
        let b = time.as_bytes();
        for (i, c) in b.iter().enumerate() {
            let want_digit = !matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 26);
            assert_eq!(c.is_ascii_digit(), want_digit, "{line:?}");
        }
        assert_eq!(
            (b[4], b[10], b[19], b[26]),
            (b'-', b'T', b'.', b'Z'),
            "{line:?}"
        );
        rest
    }

    #[test]
    fn the_request_line_is_the_default_formats_byte_for_byte() {
        let ids = [
            "req-1",
            "",
            "with \"quotes\" and \\ backslash",
            "evil\n2026-12-01T00:00:00.000000Z  INFO lacre::request: forged\u{1b}[31m",
            "tab\there\r",
            "caf\u{e9} \u{301} \u{200b} \u{7f} \u{85} \u{1F600}",
            "' single",
        ];
        let ascii: String = (' '..='~').collect();
        for id in ids.iter().copied().chain([ascii.as_str()]) {
            let (default, ours) = both(id, false);
            assert!(
                default.ends_with('\n') && default.lines().count() == 1,
                "{default:?}"
            );
            assert_eq!(after_time(&ours), after_time(&default), "request_id {id:?}");
            // Written by the fast path (its buffer holds the line), not
            // handed back to the default format.
            assert_eq!(LINE.with(|l| l.borrow().clone()), ours, "{id:?}");
        }
        // The injected line stayed on the request's own line.
        let (_, ours) = both(ids[3], false);
        assert_eq!(ours.lines().count(), 1, "{ours:?}");
        assert!(ours.contains(r#"request_id="evil\n2026"#), "{ours:?}");
        assert!(!ours.contains('\u{1b}'), "{ours:?}");
    }

    #[test]
    fn other_lines_and_lines_in_a_span_take_the_default_path() {
        LINE.with(|l| l.borrow_mut().clear());
        let (default, ours) = both("in-a-span", true);
        assert_eq!(
            LINE.with(|l| l.borrow().clone()),
            "",
            "the fast path ran in a span"
        );
        assert!(
            default.contains("conn{peer=7}: lacre::request:"),
            "{default:?}"
        );
        assert_eq!(after_time(&ours), after_time(&default));
        let (default, ours) = through_both(
            || tracing::warn!(target: "lacre::request", timeout_ms = 5u64, "request timed out"),
        );
        assert!(default.contains("WARN lacre::request: request timed out timeout_ms=5"));
        assert_eq!(after_time(&ours), after_time(&default));
    }

    #[test]
    fn the_timestamp_is_the_calendars() {
        // Known instants: the epoch, a leap day, the last second of a leap
        // year, a century that is not a leap year, and one long after.
        let known = [
            (0, "1970-01-01T00:00:00."),
            (951_782_400, "2000-02-29T00:00:00."),
            (1_483_228_799, "2016-12-31T23:59:59."),
            (4_107_542_400, "2100-03-01T00:00:00."),
            (1_796_083_200, "2026-12-01T00:00:00."),
            (253_402_300_799, "9999-12-31T23:59:59."),
        ];
        for (secs, want) in known {
            assert_eq!(second_prefix(secs).as_deref(), Some(want), "{secs}");
        }
        assert_eq!(second_prefix(253_402_300_800), None);
        // And the same as tracing-subscriber's clock, taken within one second.
        use tracing_subscriber::fmt::time::FormatTime;
        for _ in 0..3 {
            let mut theirs = String::new();
            SystemTime
                .format_time(&mut Writer::new(&mut theirs))
                .unwrap();
            let mut ours = String::new();
            assert!(timestamp(&mut ours, std::time::SystemTime::now()));
            if theirs[..19] == ours[..19] {
                assert_eq!(theirs.len(), ours.len(), "{theirs} / {ours}");
                return;
            }
        }
        panic!("the clocks never agreed on the second");
    }
}
