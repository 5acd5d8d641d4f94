//! The compatibility promise for an added field (contracts/WIRE.md §8), in Rust: a consumer built
//! from the next contract version (OrderFulfillmentCompleted + `string delivery_note = 6`, built
//! here from the buf image) decodes today's messages, and today's type decodes the new ones
//! (prost ignores the unknown field). interop/test/added-field.test.ts does the same live.

use jetkit::contracts::shop::order::v1::OrderFulfillmentCompleted;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use prost_types::field_descriptor_proto::{Label, Type};

#[test]
fn old_and_new_versions_read_each_other() {
    let old = OrderFulfillmentCompleted {
        order_id: "o-1".into(),
        checkout_id: "c-1".into(),
        ..Default::default()
    };
    let old_payload = old.encode_to_vec();

    let mut set = prost_types::FileDescriptorSet::decode(jetkit::contracts::IMAGE).unwrap();
    for f in &mut set.file {
        f.dependency.retain(|d| d != "buf/validate/validate.proto");
        for m in f
            .message_type
            .iter_mut()
            .filter(|m| m.name() == "OrderFulfillmentCompleted")
        {
            m.field.push(prost_types::FieldDescriptorProto {
                name: Some("delivery_note".into()),
                number: Some(6),
                json_name: Some("deliveryNote".into()),
                r#type: Some(Type::String as i32),
                label: Some(Label::Optional as i32),
                ..Default::default()
            });
        }
    }
    let mut pool = DescriptorPool::global();
    pool.add_file_descriptor_set(set).unwrap();
    let v2 = pool
        .get_message_by_name("shop.order.v1.OrderFulfillmentCompleted")
        .unwrap();

    // New consumer, old message: the added field reads as its default.
    let read = DynamicMessage::decode(v2.clone(), old_payload.as_slice()).unwrap();
    assert_eq!(
        read.get_field_by_name("order_id").unwrap().as_str(),
        Some("o-1")
    );
    assert_eq!(
        read.get_field_by_name("delivery_note").unwrap().as_str(),
        Some("")
    );

    // Old consumer, new message: decodes, the new field is ignored.
    let mut new = DynamicMessage::decode(v2, old_payload.as_slice()).unwrap();
    new.set_field_by_name(
        "delivery_note",
        prost_reflect::Value::String("leave at the door".into()),
    );
    let new_payload = new.encode_to_vec();
    assert_ne!(new_payload, old_payload);
    assert_eq!(
        OrderFulfillmentCompleted::decode(new_payload.as_slice()).unwrap(),
        old
    );
}
