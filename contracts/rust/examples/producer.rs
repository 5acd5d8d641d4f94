//! Publishes OrderFulfillmentCompleted events from Rust with the jetkit crate: subject, stream
//! and headers come from the contract, never typed here. Prints one JSON line per JetStream
//! acknowledgement.
//!
//!     cargo run --example producer -- --server nats://127.0.0.1:4222 --count 3

use jetkit::contracts::shop::{common::v1::Money, order::v1 as order};
use jetkit::{Producer, PublishOptions, TraceContext};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let client = async_nats::ConnectOptions::new()
        .name("jetkit-rust-producer")
        .connect(&args.server)
        .await?;
    let producer = Producer::new(async_nats::jetstream::new(client), "rust-fulfillment");

    let trace = args
        .traceparent
        .as_deref()
        .and_then(TraceContext::parse)
        .map(|p| p.child());
    let trace = trace.unwrap_or_else(TraceContext::new_root);
    for i in 1..=args.count {
        let event = order::OrderFulfillmentCompleted {
            order_id: format!("0190a0b0-0000-7000-a000-{i:012}"),
            checkout_id: format!("0190a0b0-0000-7000-b000-{i:012}"),
            shipments: vec![order::Shipment {
                shipment_id: format!("shp-rs-{i}"),
                carrier: order::Carrier::Ups as i32,
                tracking_number: format!("1Z{i:09}"),
                skus: vec!["SKU-9".into()],
            }],
            shipping_cost: Some(Money {
                currency_code: "EUR".into(),
                units: 7,
                nanos: 500_000_000,
            }),
            completed_at: Some(prost_types::Timestamp {
                seconds: 1_795_253_400 + i as i64,
                nanos: 0,
            }),
        };
        let opts = PublishOptions {
            id: args.msg_id.clone(),
            traceparent: Some(trace.to_string()),
            ..Default::default()
        };
        let published = producer.publish(&event, opts).await?;
        println!(
            "{}",
            serde_json::json!({
                "subject": published.subject, "stream": published.stream, "seq": published.seq,
                "duplicate": published.duplicate, "id": published.id, "msg_id": published.msg_id,
                "payload_hex": hex(&prost::Message::encode_to_vec(&event)),
            })
        );
    }
    Ok(())
}

struct Args {
    server: String,
    count: u32,
    msg_id: Option<String>,
    traceparent: Option<String>,
}

impl Args {
    /// `--server URL --count N --msg-id ID --traceparent TP`
    fn parse() -> Args {
        let mut a = Args {
            server: "nats://127.0.0.1:4222".into(),
            count: 1,
            msg_id: None,
            traceparent: None,
        };
        let mut it = std::env::args().skip(1);
        while let (Some(flag), Some(value)) = (it.next(), it.next()) {
            match flag.as_str() {
                "--server" => a.server = value,
                "--count" => a.count = value.parse().expect("--count takes a number"),
                "--msg-id" => a.msg_id = Some(value),
                "--traceparent" => a.traceparent = Some(value),
                other => panic!("unknown flag {other}"),
            }
        }
        a
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
