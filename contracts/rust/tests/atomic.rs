//! Atomic batches against a real nats-server: every event stored at consecutive sequences, or
//! none (a stored msg id in the batch refuses it whole), and every bad batch refused before
//! anything is sent.

mod support;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use jetkit::contracts::shop::customer::v1 as customer;
use jetkit::contracts::shop::inventory::v1 as inventory;
use jetkit::{EventMessage, MAX_ATOMIC_BATCH, Producer, PublishOptions, codes};
use prost::Message;
use support::Server;

fn reservation(id: &str) -> inventory::InventoryStockReserved {
    inventory::InventoryStockReserved {
        reservation_id: id.into(),
        warehouse_id: "wh-1".into(),
        ..Default::default()
    }
}

fn with_id(msg_id: &str) -> PublishOptions {
    PublishOptions {
        msg_id: Some(msg_id.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn atomic_batch_is_stored_whole_or_not_at_all() {
    if !support::available() {
        return;
    }
    let server = Server::start();
    let js = jetstream::new(async_nats::connect(&server.url).await.unwrap());
    let ev = inventory::InventoryStockReserved::event();
    assert!(
        ev.allow_atomic,
        "INVENTORY's allow_atomic read from the catalog: {ev:?}"
    );
    let domain = ev.subject.split('.').next().unwrap();
    let mut s = js
        .create_stream(stream::Config {
            name: ev.stream.clone(),
            subjects: vec![format!("{domain}.>")],
            allow_atomic_publish: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let producer = Producer::new(js.clone(), "rust-atomic");
    let ack = producer
        .publish_atomic(&[
            (reservation("r-1"), with_id("batch-1-a")),
            (reservation("r-2"), with_id("batch-1-b")),
            (reservation("r-3"), with_id("batch-1-c")),
        ])
        .await
        .unwrap();
    assert_eq!(
        (ack.stream.as_str(), ack.first_seq, ack.last_seq),
        (ev.stream.as_str(), 1, 3)
    );
    for (i, e) in ack.events.iter().enumerate() {
        let m = s.get_raw_message(e.seq).await.unwrap();
        assert_eq!(
            m.headers.get("Nats-Msg-Id").map(|v| v.to_string()),
            Some(e.msg_id.clone()),
            "event {i}"
        );
    }
    // A stored msg id in the batch: refused whole, its new event too.
    let err = producer
        .publish_atomic(&[
            (reservation("r-4"), with_id("batch-2-a")),
            (reservation("r-2"), with_id("batch-1-b")),
        ])
        .await
        .expect_err("a batch with a stored msg id");
    assert_eq!(err.code, codes::REJECTED, "{err}");
    assert_eq!(s.info().await.unwrap().state.messages, 3);

    let none: &[(inventory::InventoryStockReserved, PublishOptions)] = &[];
    assert_eq!(
        producer.publish_atomic(none).await.unwrap_err().code,
        codes::BATCH_EMPTY
    );
    let many: Vec<_> = (0..=MAX_ATOMIC_BATCH)
        .map(|i| (reservation(&format!("r-{i}")), PublishOptions::default()))
        .collect();
    assert_eq!(
        producer.publish_atomic(&many).await.unwrap_err().code,
        codes::BATCH_TOO_LARGE
    );
    let ttl = PublishOptions {
        ttl: Some(Duration::from_secs(5)),
        ..Default::default()
    };
    assert_eq!(
        producer
            .publish_atomic(&[(reservation("r-x"), ttl)])
            .await
            .unwrap_err()
            .code,
        codes::PRODUCER_OPTIONS
    );
    let checkout = customer::CustomerCheckoutInitiated::default();
    let err = producer
        .publish_atomic_of(&[
            (
                ev,
                &reservation("r-y").encode_to_vec(),
                &PublishOptions::default(),
            ),
            (
                customer::CustomerCheckoutInitiated::event(),
                &checkout.encode_to_vec(),
                &PublishOptions::default(),
            ),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.code, codes::BATCH_STREAMS, "{err}");
    let err = producer
        .publish_atomic(&[(checkout, PublishOptions::default())])
        .await
        .unwrap_err();
    assert_eq!(
        err.code,
        codes::UNSUPPORTED,
        "a stream without allow_atomic: {err}"
    );
    assert_eq!(
        s.info().await.unwrap().state.messages,
        3,
        "nothing stored by the refusals"
    );
}

#[tokio::test]
async fn registry_version_is_stamped_as_dataschema() {
    if !support::available() {
        return;
    }
    let server = Server::start();
    let js = jetstream::new(async_nats::connect(&server.url).await.unwrap());
    let ev = inventory::InventoryStockReserved::event();
    let domain = ev.subject.split('.').next().unwrap();
    let s = js
        .create_stream(stream::Config {
            name: ev.stream.clone(),
            subjects: vec![format!("{domain}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
    let plain = Producer::new(js.clone(), "rust-plain")
        .publish(&reservation("r-1"), PublishOptions::default())
        .await
        .unwrap();
    let stamped = Producer::new(js.clone(), "rust-stamped")
        .with_registry_version(7)
        .publish(&reservation("r-2"), PublishOptions::default())
        .await
        .unwrap();
    let header = |m: async_nats::jetstream::message::StreamMessage| {
        m.headers.get("ce-dataschema").map(|v| v.to_string())
    };
    assert_eq!(header(s.get_raw_message(plain.seq).await.unwrap()), None);
    assert_eq!(
        header(s.get_raw_message(stamped.seq).await.unwrap()),
        Some(format!("jetkit:registry/7#{}", ev.type_name))
    );
}
