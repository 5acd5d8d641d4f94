//! W3C Trace Context (traceparent) parsing and child spans, so a trace continues across
//! languages without an OpenTelemetry dependency.

use std::fmt;

/// A parsed W3C traceparent (version 00).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// 16 lower-case hex digits: the span this context names.
    pub span_id: String,
    /// 2 hex digits; "01" = sampled.
    pub flags: String,
}

impl TraceContext {
    /// Parses `00-<trace id>-<span id>-<flags>`; None for a malformed value or an all-zero id,
    /// which W3C says to ignore.
    pub fn parse(v: &str) -> Option<TraceContext> {
        let p: Vec<&str> = v.trim().split('-').collect();
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
        if p.len() < 4 || !hex(p[0], 2) || p[0] == "ff" || (p[0] == "00" && p.len() != 4) {
            return None;
        }
        if !hex(p[1], 32) || !hex(p[2], 16) || !hex(p[3], 2) || !nonzero(p[1]) || !nonzero(p[2]) {
            return None;
        }
        Some(TraceContext {
            trace_id: p[1].into(),
            span_id: p[2].into(),
            flags: p[3].into(),
        })
    }

    /// A new span in the same trace whose parent is this one: same trace id and flags.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            trace_id: self.trace_id.clone(),
            span_id: random_hex(8),
            flags: self.flags.clone(),
        }
    }

    /// A new sampled trace, for a producer that is not itself inside a trace.
    pub fn new_root() -> TraceContext {
        TraceContext {
            trace_id: random_hex(16),
            span_id: random_hex(8),
            flags: "01".into(),
        }
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }
}

fn random_hex(n: usize) -> String {
    // UUIDv4 is 122 random bits from the OS generator; its first n bytes serve as an id
    // (version bits sit in byte 6, so n <= 6 bytes are fully random; byte 6+ is 4 bits fixed).
    let mut out = String::with_capacity(2 * n);
    while out.len() < 2 * n {
        let b = uuid::Uuid::new_v4().into_bytes();
        for x in &b[..6] {
            out.push_str(&format!("{x:02x}"));
        }
    }
    out.truncate(2 * n);
    if out.bytes().all(|b| b == b'0') {
        random_hex(n)
    } else {
        out
    }
}
