//! Reads contract events from a durable JetStream pull consumer with the jetkit crate: every
//! message is checked against contracts/WIRE.md, decoded into its generated type and handled,
//! or dead-lettered with the reason. Prints one JSON line per message.
//!
//!     cargo run --example consumer -- --server nats://127.0.0.1:4222 --stream ORDER --durable rust-audit --count 3

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use jetkit::{AnyEvent, Delivery, FailureClass};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let client = async_nats::ConnectOptions::new()
        .name("jetkit-rust-consumer")
        .connect(&args.server)
        .await?;
    let js = jetstream::new(client);
    let stream = js.get_stream(&args.stream).await?;
    let consumer = stream
        .get_or_create_consumer(
            &args.durable,
            pull::Config {
                durable_name: Some(args.durable.clone()),
                filter_subject: args.subject.clone(),
                max_deliver: 5,
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_secs);
    for _ in 0..args.count {
        let msg = tokio::time::timeout_at(deadline, messages.next())
            .await
            .map_err(|_| "timed out waiting for messages")?
            .ok_or("message stream ended")??;
        match jetkit::decode(&msg) {
            Ok(delivery) => {
                let line = handle(&delivery, &msg);
                msg.double_ack().await?;
                println!("{line}");
            }
            Err(err) => {
                let class = FailureClass::of(&err);
                jetkit::dead_letter(&js, &msg, class, &err.to_string()).await?;
                let line = serde_json::json!({
                    "subject": msg.subject.as_str(), "dead_letter": true, "class": class.as_str(), "reason": err.to_string(),
                });
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// The service's work; here it reports what it received, including the trace it continued
/// (`delivery.trace` is this consumer's span, a child of the producer's traceparent).
fn handle(d: &Delivery, msg: &jetstream::Message) -> serde_json::Value {
    let order_id = match &d.message {
        AnyEvent::OrderFulfillmentCompleted(done) => Some(done.order_id.clone()),
        AnyEvent::OrderFulfillmentStarted(started) => Some(started.order_id.clone()),
        _ => None,
    };
    let parent = d
        .headers
        .traceparent
        .as_deref()
        .and_then(jetkit::TraceContext::parse);
    let headers = msg
        .headers
        .as_ref()
        .map(jetkit::wire::ordered_headers)
        .unwrap_or_default();
    serde_json::json!({
        "subject": d.event.subject, "type": d.event.type_name, "stream": d.event.stream,
        "id": d.headers.id, "msg_id": d.headers.msg_id, "correlation_id": d.headers.correlation_id,
        "trace_id": parent.map(|p| p.trace_id), "traceparent": d.headers.traceparent,
        "child_traceparent": d.trace.to_string(), "headers": headers, "order_id": order_id,
        "payload_hex": d.message.encode_to_vec().iter().map(|x| format!("{x:02x}")).collect::<String>(),
    })
}

struct Args {
    server: String,
    stream: String,
    durable: String,
    subject: String,
    count: u32,
    timeout_secs: u64,
}

impl Args {
    /// `--server URL --stream NAME --durable NAME --subject FILTER --count N --timeout SECS`
    fn parse() -> Args {
        let mut a = Args {
            server: "nats://127.0.0.1:4222".into(),
            stream: "ORDER".into(),
            durable: "rust-consumer".into(),
            subject: String::new(),
            count: 1,
            timeout_secs: 30,
        };
        let mut it = std::env::args().skip(1);
        while let (Some(flag), Some(value)) = (it.next(), it.next()) {
            match flag.as_str() {
                "--server" => a.server = value,
                "--stream" => a.stream = value,
                "--durable" => a.durable = value,
                "--subject" => a.subject = value,
                "--count" => a.count = value.parse().expect("--count takes a number"),
                "--timeout" => a.timeout_secs = value.parse().expect("--timeout takes seconds"),
                other => panic!("unknown flag {other}"),
            }
        }
        a
    }
}
