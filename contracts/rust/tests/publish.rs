//! Publish outcomes against a real nats-server: ambiguous answers are retried with the same
//! Nats-Msg-Id until the deadline, refusals are reported at once, and a publish without a
//! definite answer is never reported as refused.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use jetkit::contracts::shop::order::v1 as order;
use jetkit::{EventMessage, Producer, PublishOptions, codes};
use support::Server;

/// The Rust helper sends what it is given (no field rules): ids are enough here.
fn fulfillment(i: u64) -> order::OrderFulfillmentCompleted {
    order::OrderFulfillmentCompleted {
        order_id: format!("0190a0b0-0000-7000-a000-{i:012}"),
        checkout_id: format!("0190a0b0-0000-7000-b000-{i:012}"),
        ..Default::default()
    }
}

fn event() -> &'static jetkit::Event {
    order::OrderFulfillmentCompleted::event()
}

async fn connect(url: &str) -> (async_nats::Client, jetstream::Context) {
    let client = async_nats::connect(url).await.unwrap();
    (client.clone(), jetstream::new(client))
}

/// The contract's stream for the event (ORDER capturing order.>), with `cfg`'s limits. A new
/// cluster may have no meta leader yet: creating it is tried again for a while.
async fn order_stream(js: &jetstream::Context, cfg: stream::Config) -> stream::Stream {
    let ev = event();
    let domain = ev.subject.split('.').next().unwrap();
    let cfg = stream::Config {
        name: ev.stream.clone(),
        subjects: vec![format!("{domain}.>")],
        ..cfg
    };
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        match js.create_stream(cfg.clone()).await {
            Ok(s) => return s,
            Err(e) if Instant::now() < until => {
                eprintln!("create stream: {e}; trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("create stream {}: {e}", cfg.name),
        }
    }
}

async fn stored(s: &stream::Stream) -> u64 {
    s.get_info().await.unwrap().state.messages
}

/// Counts the publish attempts that reach `subject`, seen by a plain subscriber. Only for
/// subjects a stream captures: a subscriber would otherwise answer as a responder.
async fn copies_on(client: &async_nats::Client, subject: &str) -> Arc<AtomicU64> {
    let mut sub = client.subscribe(subject.to_string()).await.unwrap();
    client.flush().await.unwrap();
    let n = Arc::new(AtomicU64::new(0));
    let counter = n.clone();
    tokio::spawn(async move {
        while sub.next().await.is_some() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    n
}

async fn settled(client: &async_nats::Client, n: &AtomicU64) -> u64 {
    client.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // a retry that was coming has arrived
    n.load(Ordering::Relaxed)
}

/// A publish before any stream captures the subject (as while a stream leader is elected or a
/// server restarts: no responders) is retried until the stream is there, and stored once.
#[tokio::test]
async fn publish_retries_until_the_stream_answers() {
    if !support::available() {
        return;
    }
    let server = Server::start();
    let (_, js) = connect(&server.url).await;
    let producer = Producer::new(js.clone(), "rust-test");
    let create = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        order_stream(&js, stream::Config::default()).await
    });
    let started = Instant::now();
    let opts = PublishOptions {
        deadline: Some(started + Duration::from_secs(10)),
        ..Default::default()
    };
    let published = producer.publish(&fulfillment(1), opts).await;
    let took = started.elapsed();
    let s = create.await.unwrap();
    let published = published.expect("publish while the stream is created 1 s later");
    assert!(
        took >= Duration::from_millis(900),
        "acked after {took:?}, before the stream existed"
    );
    assert_eq!(
        (
            published.stream.as_str(),
            published.seq,
            published.duplicate
        ),
        (event().stream.as_str(), 1, false)
    );
    assert_eq!(stored(&s).await, 1);
}

/// Without a definite answer by the deadline the error says the event may be stored, never that
/// it was refused, and tells how to find out.
#[tokio::test]
async fn publish_without_answer_is_outcome_unknown() {
    if !support::available() {
        return;
    }
    let server = Server::start();
    let (_, js) = connect(&server.url).await;
    let check = |result: jetkit::Result<jetkit::Published>, took: Duration, deadline: Duration| {
        let err = result.expect_err("no stream: no ack");
        assert_eq!(err.code, codes::OUTCOME_UNKNOWN, "{err}");
        assert!(
            err.message.contains("msg-1") && err.message.contains("same msg id"),
            "the message should name the msg id and say to publish again with it: {err}"
        );
        assert!(
            took + Duration::from_millis(100) >= deadline
                && took <= deadline + Duration::from_secs(1),
            "gave up after {took:?}, want about {deadline:?} (retrying until the deadline)"
        );
    };
    let opts = |deadline: Option<Instant>| PublishOptions {
        id: Some("msg-1".into()),
        deadline,
        ..Default::default()
    };

    let producer = Producer::new(js.clone(), "rust-test");
    let started = Instant::now();
    let deadline = Duration::from_millis(1500);
    let result = producer
        .publish(&fulfillment(1), opts(Some(started + deadline)))
        .await;
    check(result, started.elapsed(), deadline);

    // Without a deadline in the options, the producer's timeout.
    let producer = Producer::new(js, "rust-test").with_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let result = producer.publish_encoded(event(), vec![], opts(None)).await;
    check(result, started.elapsed(), Duration::from_secs(1));
}

/// A definite refusal (here the stream's max_msg_size) is reported at once, after one attempt.
#[tokio::test]
async fn publish_refusal_is_immediate() {
    if !support::available() {
        return;
    }
    let server = Server::start();
    let (client, js) = connect(&server.url).await;
    let cfg = stream::Config {
        max_message_size: 256,
        ..Default::default()
    };
    order_stream(&js, cfg).await;
    let copies = copies_on(&client, &event().subject).await;

    let started = Instant::now();
    let result = Producer::new(js, "rust-test")
        .publish_encoded(event(), vec![0; 1024], PublishOptions::default())
        .await;
    let took = started.elapsed();
    let err = result.expect_err("over max_msg_size");
    assert_eq!(err.code, codes::REJECTED, "{err}");
    assert!(
        err.message.contains("10054"),
        "names JetStream's error: {err}"
    );
    assert!(
        took < Duration::from_secs(1),
        "refused after {took:?}, want at once"
    );
    assert_eq!(
        settled(&client, &copies).await,
        1,
        "attempts that reached the subject"
    );
}

/// Two publishes of one msg id at once on a replicated stream: the second often meets JetStream's
/// 10158 "duplicate message id is in process" while the first is being stored. Neither may be
/// reported refused; both are acked, one as the duplicate, and the event is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publish_of_one_msg_id_is_never_refused() {
    if !support::available() {
        return;
    }
    let cluster = Server::cluster();
    let (client, js) = connect(&cluster[0].url).await;
    let cfg = stream::Config {
        num_replicas: 3,
        ..Default::default()
    };
    let s = order_stream(&js, cfg).await;
    let copies = copies_on(&client, &event().subject).await;
    let producer = Producer::new(js, "rust-test");

    let mut rounds = 0u64;
    while rounds < 200 {
        let event = fulfillment(rounds);
        let opts = PublishOptions {
            id: Some(format!("0190a0b0-0000-7000-c000-{rounds:012}")),
            ..Default::default()
        };
        let (a, b) = tokio::join!(
            producer.publish(&event, opts.clone()),
            producer.publish(&event, opts)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(
            a.duplicate != b.duplicate && a.seq == b.seq,
            "round {rounds}: acks {a:?} and {b:?}, want one stored and one duplicate of the same seq"
        );
        rounds += 1;
        // Enough rounds once some went through 10158 (a third copy on the subject is a retry).
        if rounds >= 20
            && rounds.is_multiple_of(10)
            && settled(&client, &copies).await > 2 * rounds + 5
        {
            break;
        }
    }
    let retries = settled(&client, &copies).await - 2 * rounds;
    eprintln!("{rounds} rounds, {retries} retries after 10158");
    assert!(
        retries > 0,
        "no publish met 10158 in {rounds} rounds: this test did not exercise it"
    );
    assert_eq!(stored(&s).await, rounds, "one message per msg id");
}
