//! contracts/vectors/golden.json (contracts/WIRE.md §7): the Rust types encode the same bytes
//! from the vectors' protobuf JSON, and the helpers write the same headers.

use jetkit::wire::{self, DeadLetterInput, FailureClass, HeaderInput};
use jetkit::{AnyEvent, event_by_type};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::Value;

fn golden() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../vectors/golden.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The contracts' descriptors for reading protobuf JSON. The image leaves out imports: the
/// well-known types come from prost-reflect, and protovalidate's file, which declares only field
/// options, is dropped from the dependency lists.
fn pool() -> DescriptorPool {
    let mut set = prost_types::FileDescriptorSet::decode(jetkit::contracts::IMAGE).unwrap();
    for f in &mut set.file {
        f.dependency.retain(|d| d != "buf/validate/validate.proto");
        f.public_dependency.clear();
        f.weak_dependency.clear();
    }
    let mut pool = DescriptorPool::global();
    pool.add_file_descriptor_set(set).unwrap();
    pool
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn opt(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

#[test]
fn every_vector_encodes_and_heads_the_same() {
    let g = golden();
    let pool = pool();
    let vectors = g["vectors"].as_array().unwrap();
    assert!(!vectors.is_empty());
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let type_name = v["type"].as_str().unwrap();
        let event = event_by_type(type_name).unwrap();
        assert_eq!(
            event.subject,
            v["subject"].as_str().unwrap(),
            "{name}: subject"
        );
        assert_eq!(
            event.stream,
            v["stream"].as_str().unwrap(),
            "{name}: stream"
        );

        // protobuf JSON -> bytes -> the generated Rust type -> bytes: the typed encoder must write
        // the vector's payload.
        let desc = pool.get_message_by_name(type_name).unwrap();
        let dynamic = DynamicMessage::deserialize(desc, v["event"].clone()).unwrap();
        let typed = AnyEvent::decode(type_name, &dynamic.encode_to_vec()).unwrap();
        let payload = typed.encode_to_vec();
        assert_eq!(
            hex(&payload),
            v["payload_hex"].as_str().unwrap(),
            "{name}: payload"
        );

        let input = &v["header_input"];
        let headers = wire::event_headers(&HeaderInput {
            id: opt(input, "id").unwrap(),
            type_name: type_name.into(),
            source: opt(input, "source").unwrap(),
            time: opt(input, "time").unwrap(),
            partition_key: Some(event.partition_key_of(&payload)),
            correlation_id: opt(input, "correlation_id"),
            causation_id: opt(input, "causation_id"),
            traceparent: opt(input, "traceparent"),
            tracestate: opt(input, "tracestate"),
            msg_id: None,
            dataschema: None,
        });
        assert_eq!(headers, pairs(&v["headers"]), "{name}: headers");

        let map = wire::header_map(&headers).unwrap();
        assert_eq!(
            wire::ordered_headers(&map),
            headers,
            "{name}: headers survive async-nats' HeaderMap"
        );
        let received = wire::read_event_headers(Some(&map)).unwrap();
        assert_eq!(
            (received.id.as_str(), received.type_name.as_str()),
            (opt(input, "id").unwrap().as_str(), type_name)
        );
        assert_eq!(received.msg_id, received.id);
    }
}

#[test]
fn dead_letter_and_replay_headers_match() {
    let g = golden();
    let dl = &g["dead_letter"];
    let original = g["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == dl["vector"])
        .map(|v| pairs(&v["headers"]))
        .expect("the dead-letter vector names a vector");
    let input = &dl["input"];
    let class = match input["failure_class"].as_str().unwrap() {
        "handler_exhausted" => FailureClass::HandlerExhausted,
        other => panic!("vector uses failure class {other}; add it here"),
    };
    let headers = wire::dead_letter_headers(
        &original,
        &DeadLetterInput {
            stream: opt(input, "stream").unwrap(),
            sequence: input["sequence"].as_u64().unwrap(),
            subject: opt(input, "subject").unwrap(),
            consumer: opt(input, "consumer").unwrap(),
            deliveries: input["deliveries"].as_u64().unwrap(),
            failure_class: class,
            reason: opt(input, "reason").unwrap(),
            first_failure: opt(input, "first_failure").unwrap(),
            last_failure: opt(input, "last_failure").unwrap(),
        },
    );
    assert_eq!(headers, pairs(&dl["headers"]));
    let replay = wire::replay_headers(&headers, dl["replay_sequence"].as_u64().unwrap(), "DLQ");
    assert_eq!(replay, pairs(&dl["replay_headers"]));
}

#[test]
fn vectors_cover_every_event_of_the_catalog() {
    let g = golden();
    let covered: Vec<&str> = g["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["type"].as_str().unwrap())
        .collect();
    for e in jetkit::events() {
        assert!(
            covered.contains(&e.type_name.as_str()),
            "no vector for {}",
            e.type_name
        );
    }
}

fn payload_of(g: &Value, name: &str) -> Vec<u8> {
    let h = g["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("payload_of {name} names no vector"))["payload_hex"]
        .as_str()
        .unwrap()
        .to_string();
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn every_received_message_reads_as_the_vector_says() {
    let g = golden();
    let received = g["received"].as_array().unwrap();
    assert!(received.len() >= 10);
    for r in received {
        let name = r["name"].as_str().unwrap();
        let body = match r["body"].as_str() {
            Some(b) => b.as_bytes().to_vec(),
            None => payload_of(&g, r["payload_of"].as_str().unwrap()),
        };
        let headers = pairs(&r["headers"]);
        let map = if headers.is_empty() {
            None
        } else {
            Some(wire::header_map(&headers).unwrap())
        };
        let got = wire::read_event(map.as_ref(), &body);
        if let Some(code) = r["error"].as_str() {
            assert_eq!(got.err().map(|e| e.code), Some(code), "{name}");
            continue;
        }
        let (h, data) = got.unwrap_or_else(|e| panic!("{name}: {e}"));
        let x = &r["expect"];
        assert_eq!(
            wire::Received {
                id: opt(x, "id").unwrap(),
                type_name: opt(x, "type").unwrap(),
                source: opt(x, "source").unwrap(),
                time: opt(x, "time").unwrap(),
                msg_id: opt(x, "msg_id").unwrap(),
                partition_key: opt(x, "partition_key"),
                correlation_id: opt(x, "correlation_id"),
                causation_id: opt(x, "causation_id"),
                traceparent: opt(x, "traceparent"),
                tracestate: opt(x, "tracestate"),
                replay_of: None,
            },
            h,
            "{name}"
        );
        assert_eq!(
            hex(&data),
            x["payload_hex"].as_str().unwrap(),
            "{name}: data"
        );
    }
}

#[test]
fn structured_events_read_as_their_binary_vector() {
    let g = golden();
    for s in g["structured"].as_array().unwrap() {
        let v = g["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == s["vector"])
            .unwrap();
        let payload = payload_of(&g, v["name"].as_str().unwrap());
        let binary = wire::read_event(
            Some(&wire::header_map(&pairs(&v["headers"])).unwrap()),
            &payload,
        )
        .unwrap();
        let structured = wire::read_event(
            Some(&wire::header_map(&pairs(&s["headers"])).unwrap()),
            s["body"].as_str().unwrap().as_bytes(),
        )
        .unwrap();
        assert_eq!(structured, binary, "{}", s["vector"]);
    }
}
