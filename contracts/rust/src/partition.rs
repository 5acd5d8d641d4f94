//! The partition of a message in a partitioned consumer group (contracts/WIRE.md §6a): the same
//! function and key as the TypeScript and Go members, so members of every language agree.

use async_nats::HeaderMap;

use crate::binding::{is_structured, percent_decode, read_structured};
use crate::catalog::event_by_subject;
use crate::wire::names::{ID, PARTITION_KEY};

/// FNV-1a 32 bit of `key`'s UTF-8 bytes, modulo `partitions` (at least 1).
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    fnv1a32(key) % partitions.max(1)
}

/// FNV-1a 32 bit: offset basis 0x811c9dc5, prime 0x01000193, xor then multiply, modulo 2^32.
pub fn fnv1a32(key: &str) -> u32 {
    key.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The key a message is partitioned by, read as the TypeScript and Go members read it:
/// `ce-partitionkey` (percent-decoded; the structured event's `partitionkey`) when not empty,
/// else the contract's partition key field of the payload when not empty, else `ce-id`, else the
/// stream sequence in decimal. It never fails: a message that breaks the wire rules still has
/// one partition, whose owner dead-letters it.
pub fn group_key(
    headers: Option<&HeaderMap>,
    subject: &str,
    data: &[u8],
    stream_seq: u64,
) -> String {
    let mut id: Option<String> = None;
    let mut body: Vec<u8> = Vec::new();
    let mut structured_body = false;
    if is_structured(headers, data) {
        if let Ok((a, d)) = read_structured(headers, data) {
            if let Some(k) = a.partition_key.filter(|k| !k.is_empty()) {
                return k;
            }
            id = a.id.filter(|i| !i.is_empty());
            body = d;
            structured_body = true;
        }
    } else {
        if let Some(v) = lookup(headers, PARTITION_KEY).filter(|v| !v.is_empty()) {
            return lenient_decode(&v);
        }
        id = lookup(headers, ID).map(|v| lenient_decode(&v));
    }
    let payload: &[u8] = if structured_body { &body } else { data };
    if let Ok(ev) = event_by_subject(subject) {
        let k = ev.partition_key_of(payload);
        if !k.is_empty() {
            return k;
        }
    }
    id.unwrap_or_else(|| stream_seq.to_string())
}

/// The first value of header `name` in any case, also when empty (present counts).
fn lookup(map: Option<&HeaderMap>, name: &str) -> Option<String> {
    let map = map?;
    if let Some(v) = map.get(name) {
        return Some(v.as_str().to_string());
    }
    map.iter()
        .find(|(k, vs)| AsRef::<str>::as_ref(*k).eq_ignore_ascii_case(name) && !vs.is_empty())
        .map(|(_, vs)| vs[0].as_str().to_string())
}

/// Percent-decodes a header value, keeping it as it is when it does not decode (the message is
/// dead-lettered later for its headers).
fn lenient_decode(v: &str) -> String {
    if !v.contains('%') && !v.starts_with('"') {
        return v.to_string();
    }
    percent_decode(v).unwrap_or_else(|_| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventMessage;
    use jetkit_contracts::shop::order::v1 as order;
    use prost::Message;

    #[test]
    fn fnv1a32_matches_the_wire_vectors() {
        // contracts/WIRE.md §6a
        assert_eq!(fnv1a32(""), 2166136261);
        assert_eq!(fnv1a32("a"), 3826002220);
        assert_eq!(partition_of("a", 16), 12);
        // "é" is 0xc3 0xa9: FNV-1a over the UTF-8 bytes
        let h = [0xc3u32, 0xa9]
            .iter()
            .fold(0x811c_9dc5u32, |h, b| (h ^ b).wrapping_mul(0x0100_0193));
        assert_eq!(partition_of("é", 1000), h % 1000);
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, *v);
        }
        h
    }

    #[test]
    fn the_key_is_read_as_the_typescript_and_go_members_read_it() {
        let ev = order::OrderFulfillmentCompleted::event();
        let msg = order::OrderFulfillmentCompleted {
            order_id: "order-7".into(),
            ..Default::default()
        };
        let payload = msg.encode_to_vec();
        let cases: Vec<(&str, HeaderMap, Vec<u8>, &str)> = vec![
            (
                "ce-partitionkey, percent-decoded",
                headers(&[("ce-partitionkey", "k%201"), ("ce-id", "id-1")]),
                payload.clone(),
                "k 1",
            ),
            (
                "header names in any case",
                headers(&[("Ce-PartitionKey", "k2")]),
                payload.clone(),
                "k2",
            ),
            (
                "an empty header falls back to the contract's field",
                headers(&[("ce-partitionkey", ""), ("ce-id", "id-1")]),
                payload.clone(),
                "order-7",
            ),
            (
                "no header: the contract's field",
                headers(&[("ce-id", "id-1")]),
                payload.clone(),
                "order-7",
            ),
            (
                "undecodable payload: ce-id",
                headers(&[("ce-id", "id-1")]),
                vec![0xff],
                "id-1",
            ),
            (
                "nothing: the stream sequence",
                headers(&[]),
                vec![0xff],
                "42",
            ),
            (
                "structured mode",
                headers(&[("content-type", "application/cloudevents+json")]),
                br#"{"specversion":"1.0","id":"s1","partitionkey":"sk"}"#.to_vec(),
                "sk",
            ),
        ];
        for (name, h, data, want) in cases {
            assert_eq!(group_key(Some(&h), &ev.subject, &data, 42), want, "{name}");
        }
    }
}
