//! A static partitioned consumer group of Rust members (contracts/WIRE.md §6a) against a real
//! nats-server: every event handled once, one at a time per key in stream order, a stopped
//! member's partitions handed to its same-name standby at once, a crashed member's taken over
//! after the lease, and the records the TypeScript and Go members read.

#[allow(dead_code)] // Server::cluster is for the publish tests
mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use jetkit::contracts::shop::order::v1 as order;
use jetkit::{
    AnyEvent, Delivery, Group, GroupOptions, HandlerError, Producer, PublishOptions, codes,
    join_group, partition_of,
};
use support::Server;

const DURABLE: &str = "rust-group";
const PARTITIONS: u32 = 8;
const KEYS: u64 = 30;
const LEASE: Duration = Duration::from_secs(2);

fn key(i: u64) -> String {
    format!("0190a0b0-0000-7000-a000-{:012}", i % KEYS)
}

/// Event i: key i % KEYS, its index in the checkout id.
fn fulfillment(i: u64) -> order::OrderFulfillmentCompleted {
    order::OrderFulfillmentCompleted {
        order_id: key(i),
        checkout_id: format!("0190a0b0-0000-7000-b000-{i:012}"),
        ..Default::default()
    }
}

#[derive(Default)]
struct Record {
    /// (instance, key, index) in the order the handlers ran.
    handled: Vec<(String, String, u64)>,
    running: HashSet<String>,
    /// Keys whose events ran two at a time.
    overlaps: Vec<String>,
}

type Log = Arc<Mutex<Record>>;

fn handler(
    instance: &str,
    log: Log,
) -> impl Fn(
    Delivery,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), HandlerError>> + Send>>
+ Send
+ Sync
+ 'static {
    let instance = instance.to_string();
    move |d: Delivery| {
        let log = log.clone();
        let instance = instance.clone();
        Box::pin(async move {
            let AnyEvent::OrderFulfillmentCompleted(e) = d.message else {
                return Err(HandlerError::permanent("not a fulfillment"));
            };
            let index: u64 = e.checkout_id.rsplit('-').next().unwrap().parse().unwrap();
            if !log.lock().unwrap().running.insert(e.order_id.clone()) {
                log.lock().unwrap().overlaps.push(e.order_id.clone());
            }
            // a key's later events sleep less: run at once, they would finish out of order
            tokio::time::sleep(Duration::from_millis(4 - (index / KEYS) % 5)).await;
            let mut r = log.lock().unwrap();
            r.running.remove(&e.order_id);
            r.handled.push((instance, e.order_id, index));
            Ok(())
        })
    }
}

fn options(member: &str, instance: &str) -> GroupOptions {
    GroupOptions {
        partitions: PARTITIONS,
        lease: LEASE,
        instance: instance.into(),
        ..GroupOptions::new(DURABLE, "ORDER", &["a", "b"], member)
    }
}

async fn join(js: &jetstream::Context, member: &str, instance: &str, log: &Log) -> Group {
    join_group(
        js.clone(),
        options(member, instance),
        handler(instance, log.clone()),
    )
    .await
    .unwrap()
}

fn partitions_of(member: &str) -> Vec<u32> {
    let m = if member == "a" { 0 } else { 1 };
    (0..PARTITIONS).filter(|p| p % 2 == m).collect()
}

/// Waits until `f` holds, for up to `within`; returns how long it took.
async fn until(within: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

async fn publish(producer: &Producer, range: std::ops::Range<u64>) {
    for i in range {
        producer
            .publish(&fulfillment(i), PublishOptions::default())
            .await
            .unwrap();
    }
}

/// Every index in 0..n handled exactly once, each key's in increasing order, none two at a
/// time, and each by an instance of the member that owns its key's partition.
fn check(log: &Log, n: u64, owner: impl Fn(u64) -> Vec<&'static str>) {
    let r = log.lock().unwrap();
    assert!(
        r.overlaps.is_empty(),
        "events of one key ran at once: {:?}",
        r.overlaps
    );
    let mut count: HashMap<u64, usize> = HashMap::new();
    let mut last: HashMap<&str, u64> = HashMap::new();
    for (instance, key, index) in &r.handled {
        *count.entry(*index).or_default() += 1;
        if let Some(prev) = last.insert(key, *index) {
            assert!(prev < *index, "key {key}: event {index} ran after {prev}");
        }
        assert!(
            owner(*index).contains(&instance.as_str()),
            "event {index} (partition {}) ran on {instance}, expected one of {:?}",
            partition_of(key, PARTITIONS),
            owner(*index)
        );
    }
    let dup: Vec<_> = count.iter().filter(|(_, c)| **c > 1).collect();
    assert!(dup.is_empty(), "handled more than once: {dup:?}");
    assert_eq!(
        count.len() as u64,
        n,
        "handled {} of {n} events",
        count.len()
    );
}

fn even(i: u64) -> bool {
    partition_of(&key(i), PARTITIONS).is_multiple_of(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn static_group_of_rust_members() {
    if !support::available() {
        return;
    }
    let server = Server::start();
    let client = async_nats::connect(&server.url).await.unwrap();
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: "ORDER".into(),
        subjects: vec!["order.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    js.create_stream(stream::Config {
        name: "DLQ".into(),
        subjects: vec!["dlq.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let producer = Producer::new(js.clone(), "rust-group-test");
    let log: Log = Arc::default();

    // A backlog read at full speed: the events of a key arrive together. A message that breaks
    // the wire rules falls in one partition, whose owner dead-letters it naming the durable.
    js.publish("order.fulfillment.completed", "not an event".into())
        .await
        .unwrap()
        .await
        .unwrap();
    publish(&producer, 0..300).await;

    let a1 = join(&js, "a", "a1", &log).await;
    until(Duration::from_secs(5), "a1 owns a's partitions", || {
        a1.owned() == partitions_of("a")
    })
    .await;
    let b1 = join(&js, "b", "b1", &log).await;
    let a2 = join(&js, "a", "a2", &log).await;
    until(Duration::from_secs(5), "b1 owns b's partitions", || {
        b1.owned() == partitions_of("b")
    })
    .await;

    // Another partition count is refused: it would move keys between partitions.
    let refused = join_group(
        js.clone(),
        GroupOptions {
            partitions: 4,
            ..options("a", "a9")
        },
        handler("a9", log.clone()),
    )
    .await
    .err()
    .expect("a member with 4 partitions joins an 8-partition group");
    assert_eq!(refused.code, codes::CONSUMER_GROUP, "{refused}");

    until(Duration::from_secs(30), "300 events handled", || {
        log.lock().unwrap().handled.len() >= 300
    })
    .await;
    check(&log, 300, |i| if even(i) { vec!["a1"] } else { vec!["b1"] });
    assert!(a2.owned().is_empty(), "the standby owns {:?}", a2.owned());
    let dlq = js.get_stream("DLQ").await.unwrap();
    let dead = dlq
        .get_last_raw_message_by_subject("dlq.order.fulfillment.completed")
        .await
        .unwrap();
    let consumer = dead
        .headers
        .get("Jetkit-Dlq-Consumer")
        .map(|v| v.as_str().to_string());
    assert_eq!(consumer.as_deref(), Some(DURABLE));

    // A stopped member hands its partitions over: its standby takes them at once (no lease
    // wait) and goes on from their checkpoints.
    a1.stop(Duration::from_secs(5)).await;
    let took = until(Duration::from_secs(5), "a2 takes a's partitions", || {
        a2.owned() == partitions_of("a")
    })
    .await;
    assert!(
        took < LEASE,
        "the standby waited {took:?} for released partitions"
    );
    assert_eq!(a2.stats().taken_over, 0);
    publish(&producer, 300..600).await;
    until(Duration::from_secs(30), "600 events handled", || {
        log.lock().unwrap().handled.len() >= 600
    })
    .await;
    check(&log, 600, |i| match (i < 300, even(i)) {
        (true, true) => vec!["a1"],
        (false, true) => vec!["a2"],
        _ => vec!["b1"],
    });

    // A member that dies (dropped without stop: no release, no renewal) keeps its partitions
    // for a lease; then its standby takes them over from the last renewed checkpoint.
    let b2 = join(&js, "b", "b2", &log).await;
    tokio::time::sleep(LEASE / 2).await; // a renewal carries the checkpoint of everything handled
    assert!(
        b2.owned().is_empty(),
        "the standby took {:?} from a live owner",
        b2.owned()
    );
    drop(b1);
    let dropped = Instant::now();
    publish(&producer, 600..900).await;
    until(
        Duration::from_secs(10),
        "b2 takes b's partitions over",
        || b2.owned() == partitions_of("b"),
    )
    .await;
    let took = dropped.elapsed();
    assert!(
        took >= LEASE * 3 / 4,
        "taken over {took:?} after the owner stopped renewing"
    );
    assert_eq!(b2.stats().taken_over, partitions_of("b").len() as u64);
    until(Duration::from_secs(30), "900 events handled", || {
        log.lock().unwrap().handled.len() >= 900
    })
    .await;
    check(&log, 900, |i| match (i < 300, i < 600, even(i)) {
        (true, _, true) => vec!["a1"],
        (false, _, true) => vec!["a2"],
        (_, true, false) => vec!["b1"],
        _ => vec!["b2"],
    });
    assert_eq!(
        dlq.get_info().await.unwrap().state.messages,
        1,
        "the poison message again"
    );

    // Stopped, the members leave records with no owner and the checkpoint past every event,
    // and delete their membership records.
    a2.stop(Duration::from_secs(5)).await;
    b2.stop(Duration::from_secs(5)).await;
    let last = js
        .get_stream("ORDER")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap()
        .state
        .last_sequence;
    let kv = js.get_key_value("jetkit-groups").await.unwrap();
    for p in 0..PARTITIONS {
        let v = kv
            .get(format!("{DURABLE}.ORDER.p.{p}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&v).unwrap(),
            format!("{{\"owner\":\"\",\"member\":\"\",\"seq\":{}}}", last + 1),
            "partition {p}"
        );
    }
    let config = kv
        .get(format!("{DURABLE}.ORDER.config"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&config[..], br#"{"partitions":8,"mode":"static"}"#);
    let mut members = kv.keys().await.unwrap();
    while let Some(k) = members.next().await {
        let k = k.unwrap();
        // b1 died: its record stays (its heartbeat stopped, as the TypeScript members' do)
        if k != format!("{DURABLE}.m.b1") {
            assert!(
                !k.starts_with(&format!("{DURABLE}.m.")),
                "membership record {k} left behind"
            );
        }
    }
}

/// Stop hands a partition over at its first unfinished event: a handler still running at the
/// deadline leaves its event (and the key's later ones) to the next owner, which starts there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stop_checkpoints_the_first_unfinished_event() {
    if !support::available() {
        return;
    }
    let server = Server::start();
    let client = async_nats::connect(&server.url).await.unwrap();
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: "ORDER".into(),
        subjects: vec!["order.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let producer = Producer::new(js.clone(), "rust-group-test");
    // Event i is stream sequence i + 1; keys alternate (KEYS keys).
    publish(&producer, 0..10 * KEYS).await;
    let stuck = 4 * KEYS; // the fifth event of key 0
    let opts = |instance: &str| GroupOptions {
        partitions: 1,
        lease: LEASE,
        instance: instance.into(),
        ..GroupOptions::new("rust-stop", "ORDER", &["a"], "a")
    };
    let log: Log = Arc::default();
    let done = handler("a1", log.clone());
    let a1 = join_group(js.clone(), opts("a1"), move |d: Delivery| {
        let index = match &d.message {
            AnyEvent::OrderFulfillmentCompleted(e) => e
                .checkout_id
                .rsplit('-')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap(),
            _ => 0,
        };
        let run = done(d);
        async move {
            if index == stuck {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            run.await
        }
    })
    .await
    .unwrap();
    // every event but key 0's from the stuck one on
    let others = 10 * KEYS - 6;
    until(
        Duration::from_secs(20),
        "a1 handles all but the stuck key",
        || log.lock().unwrap().handled.len() as u64 >= others,
    )
    .await;
    a1.stop(Duration::from_millis(300)).await;
    let kv = js.get_key_value("jetkit-groups").await.unwrap();
    let record = kv.get("rust-stop.ORDER.p.0").await.unwrap().unwrap();
    assert_eq!(
        std::str::from_utf8(&record).unwrap(),
        format!("{{\"owner\":\"\",\"member\":\"\",\"seq\":{}}}", stuck + 1)
    );
    assert_eq!(log.lock().unwrap().handled.len() as u64, others);

    let log2: Log = Arc::default();
    let a2 = join_group(js.clone(), opts("a2"), handler("a2", log2.clone()))
        .await
        .unwrap();
    // from the stuck event on: key 0's six events and the replay of the others after it
    let replay = 10 * KEYS - stuck;
    until(
        Duration::from_secs(20),
        "a2 handles from the checkpoint",
        || log2.lock().unwrap().handled.len() as u64 >= replay,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut indexes: Vec<u64> = log2.lock().unwrap().handled.iter().map(|h| h.2).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (stuck..10 * KEYS).collect::<Vec<_>>());
    a2.stop(Duration::from_secs(5)).await;
}

/// A partition taken over while the member already reads ahead of its checkpoint is read again
/// from there: none of its events is skipped. The dead owner is a record left by a member that
/// died before this one started.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_taken_over_behind_the_read_position_is_read_again() {
    if !support::available() {
        return;
    }
    let server = Server::start();
    let client = async_nats::connect(&server.url).await.unwrap();
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: "ORDER".into(),
        subjects: vec!["order.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let producer = Producer::new(js.clone(), "rust-group-test");
    publish(&producer, 0..200).await;
    let kv = js
        .create_key_value(jetstream::kv::Config {
            bucket: "jetkit-groups".into(),
            history: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    kv.create(
        "rust-behind.ORDER.p.0",
        r#"{"owner":"ghost","member":"a","seq":1}"#.into(),
    )
    .await
    .unwrap();
    let log: Log = Arc::default();
    let a1 = join_group(
        js.clone(),
        GroupOptions {
            partitions: 4,
            lease: LEASE,
            instance: "a1".into(),
            ..GroupOptions::new("rust-behind", "ORDER", &["a"], "a")
        },
        handler("a1", log.clone()),
    )
    .await
    .unwrap();
    let in_p0 = (0..200).filter(|i| partition_of(&key(*i), 4) == 0).count();
    assert!(in_p0 > 0);
    until(
        Duration::from_secs(10),
        "a1 handles the other partitions",
        || log.lock().unwrap().handled.len() == 200 - in_p0,
    )
    .await;
    assert_eq!(
        a1.owned(),
        vec![1, 2, 3],
        "partition 0 taken from a live-looking owner"
    );
    until(Duration::from_secs(10), "a1 takes partition 0 over", || {
        a1.owned() == vec![0, 1, 2, 3]
    })
    .await;
    until(Duration::from_secs(10), "a1 handles partition 0", || {
        log.lock().unwrap().handled.len() >= 200
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    check(&log, 200, |_| vec!["a1"]);
    assert_eq!(a1.stats().taken_over, 1);
    a1.stop(Duration::from_secs(5)).await;
}

/// A failing handler is retried in place while its key's later events wait (other keys go on);
/// a permanent failure is dead-lettered at once as handler_permanent, naming the durable, and
/// the key goes on after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_hold_the_key_and_permanent_failures_are_dead_lettered() {
    if !support::available() {
        return;
    }
    let server = Server::start();
    let client = async_nats::connect(&server.url).await.unwrap();
    let js = jetstream::new(client);
    for (name, subject) in [("ORDER", "order.>"), ("DLQ", "dlq.>")] {
        js.create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subject.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let producer = Producer::new(js.clone(), "rust-group-test");
    publish(&producer, 0..3 * KEYS).await;
    let (flaky, broken) = (1, KEYS + 2); // key 1's first event, key 2's second
    let attempts = Arc::new(Mutex::new(0u32));
    let log: Log = Arc::default();
    let done = handler("a1", log.clone());
    let tries = attempts.clone();
    let a1 = join_group(
        js.clone(),
        GroupOptions {
            partitions: 2,
            lease: LEASE,
            instance: "a1".into(),
            backoff: Some(Arc::new(|_| Duration::from_millis(200))),
            ..GroupOptions::new("rust-retry", "ORDER", &["a"], "a")
        },
        move |d: Delivery| {
            let index = match &d.message {
                AnyEvent::OrderFulfillmentCompleted(e) => e
                    .checkout_id
                    .rsplit('-')
                    .next()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
                _ => 0,
            };
            let tries = tries.clone();
            let run = done(d);
            async move {
                if index == broken {
                    return Err(HandlerError::permanent("no such customer"));
                }
                if index == flaky {
                    let mut n = tries.lock().unwrap();
                    *n += 1;
                    if *n < 3 {
                        return Err(HandlerError::retry("database busy"));
                    }
                }
                run.await
            }
        },
    )
    .await
    .unwrap();
    until(
        Duration::from_secs(20),
        "every event but the broken one",
        || log.lock().unwrap().handled.len() as u64 >= 3 * KEYS - 1,
    )
    .await;
    assert_eq!(*attempts.lock().unwrap(), 3, "the flaky event's runs");
    let order: Vec<u64> = log.lock().unwrap().handled.iter().map(|h| h.2).collect();
    let at = |i: u64| order.iter().position(|x| *x == i).unwrap();
    // key 1's later events waited for its retried first one; other keys did not
    assert!(at(flaky) < at(flaky + KEYS) && at(flaky + KEYS) < at(flaky + 2 * KEYS));
    assert!(
        at(flaky) > at(KEYS - 1),
        "the other keys waited for key 1's retries"
    );
    assert!(!order.contains(&broken));
    assert!(
        order.contains(&(broken + KEYS)),
        "key 2 stopped at its dead letter"
    );
    check_dead_letter(&js, broken + 1).await;
    a1.stop(Duration::from_secs(5)).await;
}

async fn check_dead_letter(js: &jetstream::Context, seq: u64) {
    let dlq = js.get_stream("DLQ").await.unwrap();
    let dead = dlq
        .get_last_raw_message_by_subject("dlq.order.fulfillment.completed")
        .await
        .unwrap();
    let h = |n: &str| dead.headers.get(n).map(|v| v.as_str().to_string());
    assert_eq!(h("Jetkit-Dlq-Consumer").as_deref(), Some("rust-retry"));
    assert_eq!(
        h("Jetkit-Dlq-Failure-Class").as_deref(),
        Some("handler_permanent")
    );
    assert_eq!(h("Jetkit-Dlq-Sequence"), Some(seq.to_string()));
    assert_eq!(dlq.get_info().await.unwrap().state.messages, 1);
}

/// A member whose renewal loses the race (another instance wrote the record) drops the
/// partition and runs none of its events while the other owner's record is fresh; once that
/// record has not changed for a lease it takes the partition over from the checkpoint written
/// there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_whose_renewal_loses_the_race_is_dropped() {
    if !support::available() {
        return;
    }
    let server = Server::start();
    let client = async_nats::connect(&server.url).await.unwrap();
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: "ORDER".into(),
        subjects: vec!["order.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let producer = Producer::new(js.clone(), "rust-group-test");
    let log: Log = Arc::default();
    let a1 = join_group(
        js.clone(),
        GroupOptions {
            partitions: 1,
            lease: LEASE,
            instance: "a1".into(),
            ..GroupOptions::new("rust-lost", "ORDER", &["a"], "a")
        },
        handler("a1", log.clone()),
    )
    .await
    .unwrap();
    publish(&producer, 0..KEYS).await;
    until(Duration::from_secs(10), "the first events", || {
        log.lock().unwrap().handled.len() as u64 >= KEYS
    })
    .await;
    // Another instance writes the record (as after a pause of a1 longer than the lease); its
    // checkpoint skips the next 10 events (it handled them).
    let kv = js.get_key_value("jetkit-groups").await.unwrap();
    let skip = KEYS + 10;
    kv.put(
        "rust-lost.ORDER.p.0",
        format!(
            "{{\"owner\":\"thief\",\"member\":\"a\",\"seq\":{}}}",
            skip + 1
        )
        .into(),
    )
    .await
    .unwrap();
    let put = Instant::now();
    until(Duration::from_secs(2), "a1 drops the partition", || {
        a1.owned().is_empty()
    })
    .await;
    assert_eq!(a1.stats().lost, 1);
    publish(&producer, KEYS..3 * KEYS).await;
    tokio::time::sleep((LEASE * 3 / 4).saturating_sub(put.elapsed())).await;
    assert_eq!(
        log.lock().unwrap().handled.len() as u64,
        KEYS,
        "a1 ran events of a partition another instance owns"
    );
    until(Duration::from_secs(10), "a1 takes it over", || {
        a1.owned() == vec![0]
    })
    .await;
    assert!(
        put.elapsed() >= LEASE,
        "taken over {:?} after the other owner's write",
        put.elapsed()
    );
    until(
        Duration::from_secs(10),
        "the events after the checkpoint",
        || log.lock().unwrap().handled.len() as u64 >= 3 * KEYS - 10,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut indexes: Vec<u64> = log.lock().unwrap().handled.iter().map(|h| h.2).collect();
    indexes.sort_unstable();
    let want: Vec<u64> = (0..KEYS).chain(skip..3 * KEYS).collect();
    assert_eq!(indexes, want);
    assert_eq!(a1.stats().taken_over, 1);
    a1.stop(Duration::from_secs(5)).await;
}
