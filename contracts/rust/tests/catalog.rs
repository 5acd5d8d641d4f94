//! The catalog read from the buf image, and the list of Rust event types, agree.

use jetkit::contracts::shop::order::v1::{OrderFulfillmentCompleted, Shipment};
use jetkit::{
    AnyEvent, EventMessage, TraceContext, codes, event_by_subject, event_by_type, events, wire,
};

#[test]
fn every_event_of_the_image_has_a_rust_type_and_back() {
    let mut from_image: Vec<&str> = events().iter().map(|e| e.type_name.as_str()).collect();
    let mut from_types: Vec<&str> = AnyEvent::TYPES.to_vec();
    from_image.sort();
    from_types.sort();
    assert!(!from_image.is_empty());
    assert_eq!(
        from_image, from_types,
        "update the events! list in contracts/rust/src/events.rs"
    );
}

#[test]
fn subject_stream_and_partition_key_come_from_the_contract() {
    let ev = OrderFulfillmentCompleted::event();
    assert_eq!(
        OrderFulfillmentCompleted::TYPE,
        "shop.order.v1.OrderFulfillmentCompleted"
    );
    assert_eq!(
        (ev.subject.as_str(), ev.stream.as_str()),
        ("order.fulfillment.completed", "ORDER")
    );
    assert_eq!(ev.partition_key.as_deref(), Some("order_id"));
    let payload = prost::Message::encode_to_vec(&OrderFulfillmentCompleted {
        order_id: "o-1".into(),
        shipments: vec![Shipment {
            shipment_id: "s".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    assert_eq!(ev.partition_key_of(&payload), "o-1");
    assert_eq!(event_by_subject("order.fulfillment.completed").unwrap(), ev);
    assert_eq!(
        event_by_subject("order.>").unwrap_err().code,
        codes::UNKNOWN_SUBJECT
    );
    assert_eq!(
        event_by_type("shop.order.v1.Shipment").unwrap_err().code,
        codes::UNKNOWN_TYPE
    );
}

#[test]
fn malformed_payload_is_undecodable() {
    let err = AnyEvent::decode(OrderFulfillmentCompleted::TYPE, &[0xff, 0xff, 0xff]).unwrap_err();
    assert_eq!(err.code, codes::UNDECODABLE);
    assert_eq!(jetkit::FailureClass::of(&err).as_str(), "undecodable");
}

#[test]
fn header_values_are_safe_like_typescript() {
    use jetkit::binding::percent_decode;
    assert_eq!(
        wire::header_value("  a\r\nInjected: x \t"),
        "a%20Injected:%20x"
    );
    assert_eq!(wire::header_value("\u{a0}\u{feff}key\u{2028}"), "key");
    assert_eq!(wire::header_value("keep\u{85}end"), "keep%20end");
    assert_eq!(
        wire::header_value("Euro € 😀"),
        "Euro%20%E2%82%AC%20%F0%9F%98%80"
    );
    assert_eq!(wire::header_value("plain-id_1.2:3/4"), "plain-id_1.2:3/4");
    for unit in ["x", "é", "€", "😀", "a b"] {
        for n in (300..1100).step_by(37) {
            let text = unit.repeat(n);
            let v = wire::header_value(&text);
            assert!(v.len() <= wire::MAX_HEADER_VALUE, "{unit} x {n}");
            assert!(
                v.bytes().all(|b| (0x21..=0x7e).contains(&b)),
                "{unit} x {n}: {v}"
            );
            let back = percent_decode(&v).expect("a cut never splits an escape");
            if v.ends_with("%E2%80%A6") {
                assert!(text.starts_with(back.trim_end_matches('…')), "{unit} x {n}");
            }
        }
    }
    assert!(
        percent_decode("%C0%A0").is_err(),
        "an overlong escape is refused"
    );
}

#[test]
fn time_and_ids_have_the_wire_format() {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_253_400_125);
    assert_eq!(wire::format_time(t), "2026-11-21T09:30:00.125Z"); // as JavaScript's toISOString()
    let leap = std::time::UNIX_EPOCH + std::time::Duration::from_millis(951_782_400_999);
    assert_eq!(wire::format_time(leap), "2000-02-29T00:00:00.999Z");
    let id = wire::new_id();
    assert_eq!((id.len(), &id[14..15]), (36, "7"));
}

#[test]
fn trace_context_continues() {
    let parent =
        TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
    let child = parent.child();
    assert_eq!(
        (child.trace_id.as_str(), child.flags.as_str()),
        (parent.trace_id.as_str(), "01")
    );
    assert_ne!(child.span_id, parent.span_id);
    assert_eq!(TraceContext::parse(&child.to_string()), Some(child));
    assert_eq!(
        TraceContext::parse("00-00000000000000000000000000000000-b7ad6b7169203331-01"),
        None
    );
    assert_eq!(TraceContext::parse("garbage"), None);
}
