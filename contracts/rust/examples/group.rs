//! A member of a static jetkit partitioned consumer group (contracts/WIRE.md §6a): it joins the
//! group that TypeScript members (createConsumer({ durable, group: { members, member } })) and
//! Go members share, handles the events of its member name's partitions in stream order (one at
//! a time per key, keys in parallel), and on SIGINT/SIGTERM hands its partitions over and exits.
//! Each handled event is appended as one JSON line to --effects (the service's effect).
//!
//!     cargo run --example group -- --server nats://127.0.0.1:4222 --durable billing \
//!       --subject order.fulfillment.completed --partitions 16 --members a,b --member a

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use jetkit::{Delivery, GroupOptions, HandlerError, join_group, partition_of};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let client = async_nats::ConnectOptions::new()
        .name("jetkit-rust-group")
        .retry_on_initial_connect()
        .connect(&args.server)
        .await
        .expect("connect");
    let js = jetstream::new(client);
    let out = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&args.effects)
        .expect("open --effects");
    let out = Arc::new(Mutex::new(out));
    let members: Vec<&str> = args.members.split(',').collect();
    let opts = GroupOptions {
        subjects: args
            .subject
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        partitions: args.partitions,
        lease: Duration::from_millis(args.lease_ms),
        instance: args.instance.clone(),
        deliver_new: args.deliver_new,
        ..GroupOptions::new(&args.durable, &args.stream, &members, &args.member)
    };
    let (instance, partitions, work) = (
        args.instance.clone(),
        args.partitions,
        Duration::from_millis(args.work_ms),
    );
    let group = join_group(js, opts, move |d: Delivery| {
        let out = out.clone();
        let instance = instance.clone();
        async move {
            tokio::time::sleep(work).await;
            let key = d.headers.partition_key.clone().unwrap_or_default();
            let line = serde_json::json!({
                "by": "rust", "instance": instance, "id": d.headers.id, "key": key,
                "seq": d.sequence, "partition": partition_of(&key, partitions),
            });
            // One write per line: appends from several processes never interleave.
            let mut f = out.lock().unwrap();
            f.write_all(format!("{line}\n").as_bytes())
                .map_err(HandlerError::retry)
        }
    })
    .await;
    let group = match group {
        Ok(g) => g,
        Err(e) => {
            eprintln!("could not join the group: {e}");
            std::process::exit(2);
        }
    };
    let (mut term, mut int) = (
        signal(SignalKind::terminate()).unwrap(),
        signal(SignalKind::interrupt()).unwrap(),
    );
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    group.stop(Duration::from_secs(10)).await;
    eprintln!("left the group");
}

struct Args {
    server: String,
    stream: String,
    subject: String,
    durable: String,
    partitions: u32,
    members: String,
    member: String,
    lease_ms: u64,
    instance: String,
    effects: String,
    work_ms: u64,
    deliver_new: bool,
}

impl Args {
    /// `--server URL --stream NAME --subject A,B --durable NAME --partitions N --members A,B
    /// --member A --lease-ms MS --instance ID --effects FILE --work-ms MS --new true|false`
    fn parse() -> Args {
        let mut a = Args {
            server: "nats://127.0.0.1:4222".into(),
            stream: "ORDER".into(),
            subject: String::new(),
            durable: "rust-group".into(),
            partitions: 16,
            members: String::new(),
            member: String::new(),
            lease_ms: 5000,
            instance: String::new(),
            effects: "effects.jsonl".into(),
            work_ms: 0,
            deliver_new: false,
        };
        let mut it = std::env::args().skip(1);
        while let (Some(flag), Some(value)) = (it.next(), it.next()) {
            match flag.as_str() {
                "--server" => a.server = value,
                "--stream" => a.stream = value,
                "--subject" => a.subject = value,
                "--durable" => a.durable = value,
                "--partitions" => {
                    a.partitions = value.parse().expect("--partitions takes a number")
                }
                "--members" => a.members = value,
                "--member" => a.member = value,
                "--lease-ms" => a.lease_ms = value.parse().expect("--lease-ms takes milliseconds"),
                "--instance" => a.instance = value,
                "--effects" => a.effects = value,
                "--work-ms" => a.work_ms = value.parse().expect("--work-ms takes milliseconds"),
                "--new" => a.deliver_new = value == "true",
                other => panic!("unknown flag {other}"),
            }
        }
        a
    }
}
