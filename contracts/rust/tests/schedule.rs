//! Per-message TTLs and scheduled events against a real nats-server: a scheduled event arrives
//! no earlier than its time, a cancelled one never, a TTL is written in whole seconds, and every
//! option the stream cannot take is refused before anything is sent.

mod support;

use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use jetkit::contracts::shop::customer::v1 as customer;
use jetkit::contracts::shop::order::v1 as order;
use jetkit::{EventMessage, Producer, PublishOptions, codes};
use support::Server;

/// The Rust helper sends what it is given (no field rules): ids are enough here.
fn checkout() -> customer::CustomerCheckoutInitiated {
    customer::CustomerCheckoutInitiated {
        checkout_id: jetkit::wire::new_id(),
        customer_id: "0190a0b0-0000-7000-8000-000000000001".into(),
        ..Default::default()
    }
}

/// The contract's stream of `ev` (its domain's `<domain>.>`), with `cfg`'s options.
async fn stream_of(
    js: &jetstream::Context,
    ev: &jetkit::Event,
    cfg: stream::Config,
) -> stream::Stream {
    let domain = ev.subject.split('.').next().unwrap();
    let cfg = stream::Config {
        name: ev.stream.clone(),
        subjects: vec![format!("{domain}.>")],
        ..cfg
    };
    js.create_stream(cfg).await.unwrap()
}

#[tokio::test]
async fn scheduled_event_arrives_at_its_time_and_can_be_cancelled() {
    if !support::available() {
        return;
    }
    let server = Server::start();
    let js = jetstream::new(async_nats::connect(&server.url).await.unwrap());
    let ev = customer::CustomerCheckoutInitiated::event();
    assert!(
        ev.allow_msg_schedules && ev.allow_msg_ttl,
        "stream options read from the catalog: {ev:?}"
    );
    assert_eq!(ev.stream_max_age, Some(Duration::from_secs(30 * 86_400)));
    let s = stream_of(
        &js,
        ev,
        stream::Config {
            allow_message_ttl: true,
            allow_message_schedules: true,
            ..Default::default()
        },
    )
    .await;
    let consumer = s
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: ev.subject.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let producer = Producer::new(js.clone(), "rust-schedule");
    let sent = Instant::now();
    let later = producer
        .publish(
            &checkout(),
            PublishOptions {
                delay: Some(Duration::from_millis(1500)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let cancelled = producer
        .publish(
            &checkout(),
            PublishOptions {
                deliver_at: Some(SystemTime::now() + Duration::from_secs(2)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        producer
            .cancel_scheduled(ev, &cancelled.msg_id)
            .await
            .unwrap(),
        "a waiting schedule is cancelled"
    );
    let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("the scheduled event arrived")
        .unwrap()
        .unwrap();
    assert!(
        sent.elapsed() >= Duration::from_millis(1500),
        "delivered after {:?}, before its time",
        sent.elapsed()
    );
    let id = m
        .headers
        .as_ref()
        .and_then(|h| h.get("ce-id"))
        .map(|v| v.to_string());
    assert_eq!(id.as_deref(), Some(later.id.as_str()));
    // The cancelled one (due at +2 s) never comes.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), messages.next())
            .await
            .is_err(),
        "a cancelled event was delivered"
    );
    assert!(
        !producer.cancel_scheduled(ev, &later.msg_id).await.unwrap(),
        "nothing left to cancel once delivered"
    );
}

#[tokio::test]
async fn ttl_header_and_refusals_send_nothing() {
    if !support::available() {
        return;
    }
    let server = Server::start();
    let js = jetstream::new(async_nats::connect(&server.url).await.unwrap());
    let ev = customer::CustomerCheckoutInitiated::event();
    let mut customers = stream_of(
        &js,
        ev,
        stream::Config {
            allow_message_ttl: true,
            allow_message_schedules: true,
            ..Default::default()
        },
    )
    .await;
    let mut orders = stream_of(
        &js,
        order::OrderFulfillmentCompleted::event(),
        stream::Config::default(),
    )
    .await;
    let producer = Producer::new(js.clone(), "rust-ttl");
    let published = producer
        .publish(
            &checkout(),
            PublishOptions {
                ttl: Some(Duration::from_millis(1500)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let stored = customers.get_raw_message(published.seq).await.unwrap();
    assert_eq!(
        stored
            .headers
            .get("Nats-TTL")
            .map(|v| v.to_string())
            .as_deref(),
        Some("2s")
    );

    let order_event = order::OrderFulfillmentCompleted::default();
    let cases: Vec<(&str, jetkit::Result<jetkit::Published>, &str)> = vec![
        (
            "a TTL on a stream without allow_msg_ttl",
            producer
                .publish(
                    &order_event,
                    PublishOptions {
                        ttl: Some(Duration::from_secs(5)),
                        ..Default::default()
                    },
                )
                .await,
            codes::UNSUPPORTED,
        ),
        (
            "a schedule on a stream without allow_msg_schedules",
            producer
                .publish(
                    &order_event,
                    PublishOptions {
                        delay: Some(Duration::from_secs(1)),
                        ..Default::default()
                    },
                )
                .await,
            codes::UNSUPPORTED,
        ),
        (
            "a TTL under a second",
            producer
                .publish(
                    &checkout(),
                    PublishOptions {
                        ttl: Some(Duration::from_millis(10)),
                        ..Default::default()
                    },
                )
                .await,
            codes::PRODUCER_OPTIONS,
        ),
        (
            "a delivery time a minute ago",
            producer
                .publish(
                    &checkout(),
                    PublishOptions {
                        deliver_at: Some(SystemTime::now() - Duration::from_secs(60)),
                        ..Default::default()
                    },
                )
                .await,
            codes::PRODUCER_OPTIONS,
        ),
        (
            "a delivery time beyond the stream's 30-day max age",
            producer
                .publish(
                    &checkout(),
                    PublishOptions {
                        delay: Some(Duration::from_secs(31 * 86_400)),
                        ..Default::default()
                    },
                )
                .await,
            codes::PRODUCER_OPTIONS,
        ),
    ];
    for (what, result, code) in cases {
        let err = result.expect_err(what);
        assert_eq!(err.code, code, "{what}: {err}");
    }
    assert_eq!(
        customers.info().await.unwrap().state.messages,
        1,
        "only the TTL'd event stored"
    );
    assert_eq!(
        orders.info().await.unwrap().state.messages,
        0,
        "nothing stored in ORDER"
    );
}
