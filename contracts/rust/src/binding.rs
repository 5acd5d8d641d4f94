//! Header values and content modes of the CloudEvents NATS binding 1.0.3-wip (contracts/WIRE.md
//! §4.1-§4.3): percent-encoding, names and media types in any case, structured mode.

use async_nats::HeaderMap;
use base64::Engine;
use serde_json::Value;

use crate::error::{Error, Result, codes};

/// The CloudEvents NATS protocol binding version jetkit follows.
pub const NATS_BINDING_VERSION: &str = "1.0.3-wip";
/// Media type of a structured-mode event in the JSON event format.
pub const STRUCTURED_JSON: &str = "application/cloudevents+json";
/// `…` percent-encoded: what ends a value that was cut.
const CUT_MARK: &str = "%E2%80%A6";
const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn plain(c: char) -> bool {
    ('\u{21}'..='\u{7e}').contains(&c) && c != '"' && c != '%'
}

/// `value` percent-encoded as the binding §3.1.3.2 says: space, `"`, `%` and every character
/// outside U+0021-U+007E become the `%XY` escapes (upper-case) of their UTF-8 bytes. A result
/// longer than `max` characters is cut at a character boundary and ends with `…` (`%E2%80%A6`),
/// the whole at most `max` characters, exactly as the TypeScript `percentEncode`.
pub fn percent_encode(value: &str, max: usize) -> String {
    let plain_len = value.find(|c| !plain(c)).unwrap_or(value.len());
    if plain_len == value.len() && plain_len <= max {
        return value.to_string();
    }
    if plain_len > max {
        return format!("{}{CUT_MARK}", &value[..max - CUT_MARK.len()]);
    }
    let mut out = String::with_capacity(value.len() * 3);
    out.push_str(&value[..plain_len]);
    let mut fits = plain_len.min(max - CUT_MARK.len());
    for c in value[plain_len..].chars() {
        if plain(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
        if out.len() <= max - CUT_MARK.len() {
            fits = out.len();
        } else if out.len() > max {
            out.truncate(fits);
            out.push_str(CUT_MARK);
            return out;
        }
    }
    out
}

/// A received `ce-*` header value decoded as the binding says: a double-quoted value unquoted
/// (backslash escapes processed), then one round of percent-decoding (lower-case hex accepted).
/// Escapes giving bytes that are not valid UTF-8 fail; a `%` not followed by two hex digits is
/// kept (senders that predate §3.1.3.2 write it unescaped).
pub fn percent_decode(value: &str) -> std::result::Result<String, &'static str> {
    let mut v = value.to_string();
    let b = value.as_bytes();
    if b.len() >= 2 && b[0] == b'"' && b[b.len() - 1] == b'"' {
        let inner: Vec<char> = value[1..value.len() - 1].chars().collect();
        let mut s = String::with_capacity(inner.len());
        let mut i = 0;
        while i < inner.len() {
            if inner[i] == '\\' && i + 1 < inner.len() {
                i += 1;
            }
            s.push(inner[i]);
            i += 1;
        }
        v = s;
    }
    if !v.contains('%') {
        return Ok(v);
    }
    let bytes = v.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi << 4 | lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| "its percent-escapes decode to bytes that are not valid UTF-8")
}

/// The media type of a content-type value, lower-cased, parameters dropped: media types are
/// case-insensitive.
pub fn media_type(v: &str) -> String {
    v.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether a datacontenttype names protobuf binary.
pub fn is_protobuf_media_type(v: &str) -> bool {
    let t = media_type(v);
    t == "application/protobuf" || t == "application/x-protobuf"
}

/// The first value of header `name` in any case (binding §3.1.3.1); None when absent or empty.
pub fn header_get(map: Option<&HeaderMap>, name: &str) -> Option<String> {
    let map = map?;
    let v = map.get(name).map(|v| v.as_str().to_string()).or_else(|| {
        map.iter()
            .find(|(k, vs)| AsRef::<str>::as_ref(*k).eq_ignore_ascii_case(name) && !vs.is_empty())
            .map(|(_, vs)| vs[0].as_str().to_string())
    });
    v.filter(|s| !s.is_empty())
}

/// The event attributes of a received message before any check.
#[derive(Debug, Default)]
pub(crate) struct Attributes {
    pub id: Option<String>,
    pub spec_version: Option<String>,
    pub type_name: Option<String>,
    pub source: Option<String>,
    pub time: Option<String>,
    pub data_content_type: Option<String>,
    pub partition_key: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    pub ce_traceparent: Option<String>,
    pub ce_tracestate: Option<String>,
    pub msg_id: Option<String>,
    pub replay_of: Option<String>,
}

/// Binary mode: names in any case, `ce-*` values percent-decoded.
pub(crate) fn binary_attributes(map: Option<&HeaderMap>) -> Result<Attributes> {
    let ce = |name: &str| -> Result<Option<String>> {
        match header_get(map, name) {
            None => Ok(None),
            Some(v) => percent_decode(&v).map(Some).map_err(|why| {
                Error::new(
                    codes::WIRE_HEADERS,
                    format!("header {name} is malformed: {why}"),
                )
            }),
        }
    };
    use crate::wire::names::*;
    Ok(Attributes {
        id: ce(ID)?,
        spec_version: ce(SPEC_VERSION)?,
        type_name: ce(TYPE)?,
        source: ce(SOURCE)?,
        time: ce(TIME)?,
        // sdk-go's binary reader takes content-type for datacontenttype
        data_content_type: ce(DATA_CONTENT_TYPE)?.or_else(|| header_get(map, CONTENT_TYPE)),
        partition_key: ce(PARTITION_KEY)?,
        correlation_id: ce(CORRELATION_ID)?,
        causation_id: ce(CAUSATION_ID)?,
        ce_traceparent: ce(CE_TRACEPARENT)?,
        ce_tracestate: ce(CE_TRACESTATE)?,
        traceparent: header_get(map, TRACEPARENT),
        tracestate: header_get(map, TRACESTATE),
        msg_id: header_get(map, MSG_ID),
        replay_of: header_get(map, REPLAY_OF),
    })
}

/// Structured mode: a content-type naming a CloudEvents format, or neither that header nor
/// ce-specversion and a JSON object body (sdk-go v2's NATS JetStream sender writes no
/// content-type).
pub(crate) fn is_structured(map: Option<&HeaderMap>, body: &[u8]) -> bool {
    use crate::wire::names::*;
    if let Some(ct) = header_get(map, CONTENT_TYPE) {
        return media_type(&ct).starts_with("application/cloudevents");
    }
    if header_get(map, SPEC_VERSION).is_some() {
        return false;
    }
    body.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .is_some_and(|b| *b == b'{')
}

fn refused(why: impl std::fmt::Display) -> Error {
    Error::new(codes::WIRE_STRUCTURED, format!("structured event: {why}"))
}

/// Reads a structured-mode event in the JSON event format: its attributes (never
/// percent-encoded) and its data from `data_base64`.
pub(crate) fn read_structured(
    map: Option<&HeaderMap>,
    body: &[u8],
) -> Result<(Attributes, Vec<u8>)> {
    use crate::wire::names::*;
    if let Some(ct) = header_get(map, CONTENT_TYPE).filter(|ct| media_type(ct) != STRUCTURED_JSON) {
        return Err(refused(format!(
            "content-type {ct:?} is not supported: jetkit reads the JSON event format ({STRUCTURED_JSON}) in structured mode, and batches not at all (the NATS binding has no batch mode)"
        )));
    }
    let text = std::str::from_utf8(body).map_err(|_| refused("the body is not UTF-8 JSON"))?;
    let event: Value =
        serde_json::from_str(text).map_err(|e| refused(format!("the body is not JSON: {e}")))?;
    let e = event
        .as_object()
        .ok_or_else(|| refused("the body must be a JSON object (the JSON event format)"))?;
    let attr = |name: &str| -> Result<Option<String>> {
        match e.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(refused(format!(
                "member {name:?} must be a string, number or boolean"
            ))),
        }
    };
    let data = match (e.get("data_base64"), e.get("data")) {
        (Some(Value::Null) | None, None | Some(Value::Null)) => Vec::new(),
        (Some(b64), None) => b64
            .as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .ok_or_else(|| refused("member \"data_base64\" is not base64"))?,
        (None | Some(Value::Null), Some(_)) => {
            return Err(refused(
                "it carries \"data\" as JSON; jetkit events are protobuf binary: put the encoded event in \"data_base64\" with datacontenttype application/protobuf",
            ));
        }
        (Some(_), Some(_)) => return Err(refused("it has both \"data\" and \"data_base64\"")),
    };
    Ok((
        Attributes {
            id: attr("id")?,
            spec_version: attr("specversion")?,
            type_name: attr("type")?,
            source: attr("source")?,
            time: attr("time")?,
            data_content_type: attr("datacontenttype")?,
            partition_key: attr("partitionkey")?,
            correlation_id: attr("correlationid")?,
            causation_id: attr("causationid")?,
            ce_traceparent: attr("traceparent")?,
            ce_tracestate: attr("tracestate")?,
            traceparent: header_get(map, TRACEPARENT),
            tracestate: header_get(map, TRACESTATE),
            msg_id: header_get(map, MSG_ID),
            replay_of: header_get(map, REPLAY_OF),
        },
        data,
    ))
}
