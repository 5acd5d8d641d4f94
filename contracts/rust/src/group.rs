//! A member of a partitioned consumer group (contracts/WIRE.md §6a): the same bucket, records,
//! partition function and lease rules as the TypeScript members (`createConsumer({ durable,
//! group })`) and the Go ones (`jetkit.JoinGroup`), so a Rust process joins their group.
//!
//! Only static groups: partition p belongs to `members[p % members.len()]`, and instances with
//! the same member name are hot standbys of each other.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use async_nats::jetstream::{self, Message};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use serde_json::Value;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::consumer::{Delivery, decode, store_dead_letter};
use crate::error::{Error, Result, codes};
use crate::partition::{group_key, partition_of};
use crate::wire::{DeadLetterInput, FailureClass, format_time};

/// How long a failing handler waits before retry `n` (1 after the first failure).
pub type Backoff = Arc<dyn Fn(u32) -> Duration + Send + Sync>;

/// The options of a static group member. Build with `GroupOptions::new` and set the rest with
/// struct update syntax or the fields.
#[derive(Clone)]
pub struct GroupOptions {
    /// The group's name: the durable name its TypeScript members use. Required.
    pub durable: String,
    /// The stream the group reads. Required.
    pub stream: String,
    /// Subjects filtering the stream (the subjects the TypeScript members consume). Default:
    /// every subject of the stream.
    pub subjects: Vec<String>,
    /// Partitions of the group; every member must agree. Default 16, at most 1024.
    pub partitions: u32,
    /// The static group's member names: partition p belongs to `members[p % members.len()]`.
    /// Required (elastic groups are not supported by the Rust member).
    pub members: Vec<String>,
    /// This process's member name, one of `members`.
    pub member: String,
    /// How long a partition stays with an owner that stopped renewing it. Default 5 s, at least
    /// 1 s; every member should use the same.
    pub lease: Duration,
    /// The KV bucket of membership, ownership and checkpoints. Default `jetkit-groups`.
    pub bucket: String,
    /// Replicas of the bucket when this member creates it. Default 1.
    pub replicas: usize,
    /// Handlers running at once (one per key at most). Default 16.
    pub concurrency: usize,
    /// Messages read and not finished, at most. Default 1000.
    pub max_in_flight: usize,
    /// Runs of a failing handler (in place, holding its key) before the message is
    /// dead-lettered as `handler_exhausted`. Default 5.
    pub max_deliver: u32,
    /// The wait before retry n. Default 500 ms doubling up to 30 s, with up to 20 % jitter.
    pub backoff: Option<Backoff>,
    /// A partition never owned before starts at the end of the stream (the TypeScript
    /// deliverPolicy "new") instead of its first message.
    pub deliver_new: bool,
    /// This process's instance id. Default `<hostname>-<pid>-<random>`. Letters, digits, - and _.
    pub instance: String,
}

impl GroupOptions {
    pub fn new(durable: &str, stream: &str, members: &[&str], member: &str) -> GroupOptions {
        GroupOptions {
            durable: durable.into(),
            stream: stream.into(),
            subjects: Vec::new(),
            partitions: 16,
            members: members.iter().map(|m| m.to_string()).collect(),
            member: member.into(),
            lease: Duration::from_secs(5),
            bucket: "jetkit-groups".into(),
            replicas: 1,
            concurrency: 16,
            max_in_flight: 1000,
            max_deliver: 5,
            backoff: None,
            deliver_new: false,
            instance: String::new(),
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn config_error(msg: impl Into<String>) -> Error {
    Error::new(codes::CONSUMER_CONFIG, msg)
}

fn group_error(msg: impl Into<String>) -> Error {
    Error::new(codes::CONSUMER_GROUP, msg)
}

impl GroupOptions {
    fn resolve(mut self) -> Result<GroupOptions> {
        if !valid_name(&self.durable) {
            return Err(config_error(format!(
                "option durable {:?} is invalid: name the group (letters, digits, - and _), as its TypeScript members' durable",
                self.durable
            )));
        }
        if self.stream.is_empty() {
            return Err(config_error(
                "option stream is required: the stream the group reads (e.g. ORDER)",
            ));
        }
        if self.partitions == 0 {
            self.partitions = 16;
        }
        if self.partitions > 1024 {
            return Err(config_error(format!(
                "option partitions must be within 1..1024, got {}",
                self.partitions
            )));
        }
        if self.lease.is_zero() {
            self.lease = Duration::from_secs(5);
        }
        if self.lease < Duration::from_secs(1) {
            return Err(config_error(format!(
                "option lease must be at least 1s, got {:?}",
                self.lease
            )));
        }
        if self.bucket.is_empty() {
            self.bucket = "jetkit-groups".into();
        }
        if !self
            .bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(config_error(format!(
                "option bucket {:?} is not a valid KV bucket name",
                self.bucket
            )));
        }
        if self.members.is_empty() {
            return Err(config_error(
                "option members is empty: the Rust member joins static groups only (list the member names; elastic groups need TypeScript or Go members)",
            ));
        }
        let mut seen = HashSet::new();
        for m in &self.members {
            if !valid_name(m) || !seen.insert(m.as_str()) {
                return Err(config_error(
                    "option members must list distinct member names (letters, digits, - and _, up to 100)",
                ));
            }
        }
        if self.members.len() > self.partitions as usize {
            return Err(config_error(format!(
                "option members lists {} members for {} partitions: some would own nothing; raise partitions or list fewer members",
                self.members.len(),
                self.partitions
            )));
        }
        if !seen.contains(self.member.as_str()) {
            return Err(config_error(format!(
                "option member must name this process's member (one of {}), got {:?}",
                self.members.join(", "),
                self.member
            )));
        }
        self.replicas = self.replicas.max(1);
        self.concurrency = if self.concurrency == 0 {
            16
        } else {
            self.concurrency
        };
        self.max_in_flight = if self.max_in_flight == 0 {
            1000
        } else {
            self.max_in_flight
        };
        self.max_deliver = self.max_deliver.max(1);
        if self.instance.is_empty() {
            self.instance = new_instance_id();
        }
        if !valid_name(&self.instance) {
            return Err(config_error(format!(
                "option instance {:?} is invalid: use letters, digits, - and _ (up to 100)",
                self.instance
            )));
        }
        Ok(self)
    }
}

fn default_backoff(n: u32) -> Duration {
    let mut d = Duration::from_millis(500);
    for _ in 1..n {
        if d >= Duration::from_secs(30) {
            break;
        }
        d *= 2;
    }
    let d = d.min(Duration::from_secs(30));
    let r = uuid::Uuid::new_v4().as_bytes()[0] as f64 / 255.0;
    d.mul_f64(1.0 - 0.2 * r)
}

fn new_instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_else(|| "rust".into());
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let rand = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let id = format!("{host}-{}-{rand}", std::process::id());
    id[id.len().saturating_sub(100)..].to_string()
}

/// Why a handler did not finish its event.
#[derive(Debug, Clone)]
pub enum HandlerError {
    /// Retried in place (the key's later events wait) up to `max_deliver` runs, then
    /// dead-lettered as `handler_exhausted`.
    Retry(String),
    /// Dead-lettered at once as `handler_permanent`.
    Permanent(String),
}

impl HandlerError {
    pub fn retry(e: impl fmt::Display) -> HandlerError {
        HandlerError::Retry(e.to_string())
    }
    pub fn permanent(e: impl fmt::Display) -> HandlerError {
        HandlerError::Permanent(e.to_string())
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerError::Retry(s) | HandlerError::Permanent(s) => f.write_str(s),
        }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = std::result::Result<(), HandlerError>> + Send>>;
type Handler = Arc<dyn Fn(Delivery) -> BoxFuture + Send + Sync>;

/// Partition changes of this member so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    pub acquired: u64,
    pub taken_over: u64,
    pub released: u64,
    pub lost: u64,
}

struct PartRecord {
    owner: String,
    seq: Option<u64>,
}

fn parse_part(value: &[u8]) -> Option<PartRecord> {
    let v: Value = serde_json::from_slice(value).ok()?;
    Some(PartRecord {
        owner: v.get("owner")?.as_str()?.to_string(),
        seq: v.get("seq").and_then(Value::as_u64),
    })
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// A partition record, fields in the order the TypeScript members write them.
fn part_record(owner: &str, member: &str, seq: u64) -> Bytes {
    format!(
        "{{\"owner\":{},\"member\":{},\"seq\":{seq}}}",
        json_str(owner),
        json_str(member)
    )
    .into()
}

/// A key of the bucket as the watcher last saw it.
struct Seen {
    revision: u64,
    part: Option<PartRecord>,
    at: Instant, // when this revision was first seen here
}

/// A partition this instance owns.
struct Owned {
    epoch: u64,
    revision: u64,
    sent_at: Instant,
    write: Arc<tokio::sync::Mutex<()>>, // one write of the record at a time
}

/// An owned partition from the reader's side.
struct Part {
    epoch: u64,
    next: u64,              // next stream sequence of this partition to take
    pending: VecDeque<u64>, // taken and not finished, in stream order
    done: HashSet<u64>,
    run: u64, // reader run from which read_next also counts for it
}

impl Part {
    fn take(&mut self, seq: u64) {
        self.pending.push_back(seq);
        self.next = seq + 1;
    }

    fn finish(&mut self, seq: u64) {
        if self.pending.front() == Some(&seq) {
            self.pending.pop_front();
            while let Some(s) = self.pending.front() {
                if !self.done.remove(s) {
                    break;
                }
                self.pending.pop_front();
            }
            return;
        }
        self.done.insert(seq);
    }

    fn in_flight(&self) -> usize {
        self.pending.len() - self.done.len()
    }
}

#[derive(Default)]
struct State {
    seen: HashMap<String, Seen>,
    owned: HashMap<u32, Owned>,
    parts: HashMap<u32, Part>,
    read_next: u64,
    run: u64,
    restart: bool,
    in_flight: usize,
    stopping: bool,
    member_rev: u64,
    epochs: u64,
    stats: GroupStats,
}

impl State {
    /// The checkpoint of p: its first unfinished sequence, else how far the reader saw it.
    fn checkpoint(&self, p: u32) -> u64 {
        let Some(part) = self.parts.get(&p) else {
            return 0;
        };
        if let Some(first) = part.pending.front() {
            return *first;
        }
        // Every message before read_next was seen by a run that started at or before part.next.
        if part.run > self.run {
            return part.next;
        }
        part.next.max(self.read_next)
    }
}

struct Task {
    msg: Message,
    partition: u32,
    epoch: u64,
    seq: u64,
    key: String,
}

struct Inner {
    js: jetstream::Context,
    kv: kv::Store,
    o: GroupOptions,
    handler: Handler,
    backoff: Backoff,
    start_seq: u64,
    st: Mutex<State>,
    changed: Notify,
    restart: Notify,
    stop_tx: watch::Sender<bool>,
    sem: Semaphore,
    lanes: Mutex<HashMap<String, VecDeque<Task>>>,
    lanes_running: AtomicUsize,
    lanes_idle: Notify,
}

/// This process's membership of a static partitioned consumer group: it owns the partitions of
/// its member name (while no other instance of that name holds them) and runs their events in
/// stream order, one at a time per key, keys in parallel. `stop` hands them over with their
/// checkpoints; dropping the `Group` without `stop` abandons them (like a crash: they lapse
/// after the lease and a standby of the same name takes them over).
pub struct Group {
    inner: Arc<Inner>,
    loops: Vec<JoinHandle<()>>,
    stopped: bool,
}

/// Joins (creating the bucket and the group's config record when missing) the static group
/// `o.durable` on `o.stream` and starts handling the events of the partitions it gets with
/// `handler`. Fails with JK_CONSUMER_CONFIG for an invalid option and JK_CONSUMER_GROUP when the
/// bucket cannot be used or the group exists with another partition count or mode.
pub async fn join_group<F, Fut>(
    js: jetstream::Context,
    o: GroupOptions,
    handler: F,
) -> Result<Group>
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), HandlerError>> + Send + 'static,
{
    let o = o.resolve()?;
    let kv = match js.get_key_value(&o.bucket).await {
        Ok(kv) => kv,
        Err(_) => match js
            .create_key_value(kv::Config {
                bucket: o.bucket.clone(),
                history: 1,
                num_replicas: o.replicas,
                ..Default::default()
            })
            .await
        {
            Ok(kv) => kv,
            Err(first) => js.get_key_value(&o.bucket).await.map_err(|_| {
                group_error(format!(
                    "could not create or open the consumer group bucket {}: {first}. Check JetStream is enabled and the account may create KV buckets",
                    o.bucket
                ))
            })?,
        },
    };
    let key = format!("{}.{}.config", o.durable, o.stream);
    let want = format!("{{\"partitions\":{},\"mode\":\"static\"}}", o.partitions);
    if let Err(e) = kv.create(&key, want.into()).await {
        if !create_conflict(&e) {
            return Err(group_error(format!(
                "could not write the config of consumer group {}: {e}",
                o.durable
            )));
        }
        let have = kv.get(&key).await.map_err(|e| {
            group_error(format!(
                "could not read the config of consumer group {}: {e}",
                o.durable
            ))
        })?;
        let have: Value = have
            .as_deref()
            .and_then(|v| serde_json::from_slice(v).ok())
            .ok_or_else(|| {
                group_error(format!(
                    "the config record {key} of consumer group {} is missing or not JSON",
                    o.durable
                ))
            })?;
        let parts = have.get("partitions").and_then(Value::as_u64);
        let mode = have.get("mode").and_then(Value::as_str);
        if parts != Some(o.partitions as u64) || mode != Some("static") {
            return Err(group_error(format!(
                "consumer group {} on stream {} exists with {} partitions ({}); this member asks for {} (static). Every member must use the same partition count and mode: changing them would move keys between partitions and break their order. To change them, stop every member, then delete the group's keys {}.{}.* and {}.m.* from bucket {} or pick a new durable name",
                o.durable,
                o.stream,
                parts.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
                mode.unwrap_or("?"),
                o.partitions,
                o.durable,
                o.stream,
                o.durable,
                o.bucket
            )));
        }
    }
    let start_seq = if o.deliver_new {
        let mut s = js
            .get_stream(&o.stream)
            .await
            .map_err(|e| group_error(format!("could not read stream {}: {e}", o.stream)))?;
        let info = s
            .info()
            .await
            .map_err(|e| group_error(format!("could not read stream {}: {e}", o.stream)))?;
        info.state.last_sequence + 1
    } else {
        1
    };
    let handler = Arc::new(handler);
    let handler: Handler = Arc::new(move |d| {
        let h = handler.clone();
        Box::pin(async move { h(d).await })
    });
    let backoff = o
        .backoff
        .clone()
        .unwrap_or_else(|| Arc::new(default_backoff));
    let (stop_tx, _) = watch::channel(false);
    let inner = Arc::new(Inner {
        js,
        kv,
        handler,
        backoff,
        start_seq,
        st: Mutex::new(State::default()),
        changed: Notify::new(),
        restart: Notify::new(),
        stop_tx,
        sem: Semaphore::new(o.concurrency),
        lanes: Mutex::new(HashMap::new()),
        lanes_running: AtomicUsize::new(0),
        lanes_idle: Notify::new(),
        o,
    });
    // The first tick acts on what the bucket holds: wait for the watcher's initial values.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let watcher = tokio::spawn(inner.clone().watch_loop(ready_tx));
    let _ = tokio::time::timeout(inner.op_timeout(), ready_rx).await;
    let ticker = tokio::spawn(inner.clone().tick_loop());
    let reader = tokio::spawn(inner.clone().read_loop());
    tracing::info!(group = %inner.o.durable, stream = %inner.o.stream, instance = %inner.o.instance, member = %inner.o.member, partitions = inner.o.partitions, "consumer group joined");
    Ok(Group {
        inner,
        loops: vec![watcher, ticker, reader],
        stopped: false,
    })
}

fn chain_has_cas_code(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(j) = c.downcast_ref::<jetstream::Error>() {
            let code = j.error_code();
            if code == jetstream::ErrorCode::STREAM_WRONG_LAST_SEQUENCE
                || code == jetstream::ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT
            {
                return true;
            }
        }
        cur = c.source();
    }
    let text = e.to_string();
    text.contains("10071") || text.contains("10164")
}

/// A compare-and-set update that lost the race: 10071, or 10164 from a replicated bucket while
/// another write of the key is in flight.
fn update_conflict(e: &kv::UpdateError) -> bool {
    e.kind() == UpdateErrorKind::WrongLastRevision || chain_has_cas_code(e)
}

fn create_conflict(e: &kv::CreateError) -> bool {
    e.kind() == CreateErrorKind::AlreadyExists || chain_has_cas_code(e)
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn op_timeout(&self) -> Duration {
        (self.o.lease / 2).max(Duration::from_secs(2))
    }

    fn part_prefix(&self) -> String {
        format!("{}.{}.p.", self.o.durable, self.o.stream)
    }

    fn part_key(&self, p: u32) -> String {
        format!("{}{p}", self.part_prefix())
    }

    fn member_key(&self) -> String {
        format!("{}.m.{}", self.o.durable, self.o.instance)
    }

    async fn stopped(&self) {
        let mut rx = self.stop_tx.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Sleeps d; false when the member stops meanwhile.
    async fn hold(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.stopped() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    /// Waits for a change of the parts, in-flight count or stopping (or a short while).
    async fn changed(&self) {
        let _ = tokio::time::timeout(Duration::from_millis(100), self.changed.notified()).await;
    }

    async fn watch_loop(self: Arc<Self>, ready: tokio::sync::oneshot::Sender<()>) {
        let mut ready = Some(ready);
        let keys = [
            format!("{}.m.>", self.o.durable),
            format!("{}>", self.part_prefix()),
        ];
        loop {
            match self.kv.watch_many_with_history(keys.iter()).await {
                Ok(mut w) => {
                    let mut initial_done = false;
                    loop {
                        // a watch of keys with no values delivers nothing: ready after a short quiet
                        let next = if ready.is_some() && !initial_done {
                            match tokio::time::timeout(Duration::from_millis(300), w.next()).await {
                                Ok(n) => n,
                                Err(_) => {
                                    initial_done = true;
                                    if let Some(r) = ready.take() {
                                        let _ = r.send(());
                                    }
                                    continue;
                                }
                            }
                        } else {
                            w.next().await
                        };
                        let Some(entry) = next else { break };
                        let Ok(e) = entry else { break };
                        let now = Instant::now();
                        let mut st = self.lock();
                        match e.operation {
                            Operation::Put => {
                                if st.seen.get(&e.key).map(|s| s.revision) != Some(e.revision) {
                                    let part = if e.key.starts_with(&self.part_prefix()) {
                                        parse_part(&e.value)
                                    } else {
                                        None
                                    };
                                    st.seen.insert(
                                        e.key.clone(),
                                        Seen {
                                            revision: e.revision,
                                            part,
                                            at: now,
                                        },
                                    );
                                }
                            }
                            Operation::Delete | Operation::Purge => {
                                st.seen.remove(&e.key);
                            }
                        }
                        drop(st);
                        if let Some(r) = ready.take_if(|_| e.seen_current) {
                            let _ = r.send(());
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(group = %self.o.durable, err = %e, "consumer group watch failed; watching again");
                }
            }
            if !self.hold(Duration::from_millis(500)).await {
                return;
            }
        }
    }

    async fn tick_loop(self: Arc<Self>) {
        let every = (self.o.lease / 4).max(Duration::from_millis(100));
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.stopped() => return,
                _ = t.tick() => {}
            }
            self.tick().await;
        }
    }

    async fn heartbeat(&self) {
        let raw = format!(
            "{{\"member\":{},\"instance\":{}}}",
            json_str(&self.o.member),
            json_str(&self.o.instance)
        );
        match tokio::time::timeout(
            self.op_timeout(),
            self.kv.put(self.member_key(), raw.into()),
        )
        .await
        {
            Ok(Ok(rev)) => self.lock().member_rev = rev,
            Ok(Err(e)) => {
                tracing::warn!(group = %self.o.durable, err = %e, "consumer group heartbeat failed; retrying")
            }
            Err(_) => {
                tracing::warn!(group = %self.o.durable, "consumer group heartbeat timed out; retrying")
            }
        }
    }

    async fn tick(self: &Arc<Self>) {
        self.heartbeat().await;
        let now = Instant::now();
        let mut work = Vec::new();
        {
            let st = self.lock();
            if st.stopping {
                return;
            }
            let n = self.o.members.len();
            for p in 0..self.o.partitions {
                if let Some(o) = st.owned.get(&p) {
                    // renewed while its handlers finish too
                    work.push(self.clone().renew(p, o.epoch).boxed());
                } else if self.o.members[p as usize % n] == self.o.member {
                    work.push(self.clone().try_acquire(p, now).boxed());
                }
            }
        }
        futures::future::join_all(work).await;
    }

    async fn try_acquire(self: Arc<Self>, p: u32, now: Instant) {
        let key = self.part_key(p);
        let mut from = String::new();
        let mut seq = self.start_seq;
        let known = {
            let st = self.lock();
            match st.seen.get(&key) {
                None => None,
                Some(s) => {
                    if let Some(r) = &s.part {
                        if !r.owner.is_empty() && r.owner != self.o.instance {
                            if now.duration_since(s.at) < self.o.lease {
                                return; // a live owner: wait for it to release or lapse
                            }
                            from = r.owner.clone();
                        }
                        if let Some(s) = r.seq {
                            seq = s;
                        }
                    }
                    Some(s.revision)
                }
            }
        };
        let raw = part_record(&self.o.instance, &self.o.member, seq);
        let sent_at = Instant::now();
        let res = match known {
            Some(rev) => tokio::time::timeout(self.op_timeout(), self.kv.update(&key, raw, rev))
                .await
                .map(|r| r.map_err(|e| (update_conflict(&e), e.to_string()))),
            None => tokio::time::timeout(self.op_timeout(), self.kv.create(&key, raw))
                .await
                .map(|r| r.map_err(|e| (create_conflict(&e), e.to_string()))),
        };
        let rev = match res {
            Ok(Ok(rev)) => rev,
            Ok(Err((conflict, e))) => {
                if !conflict {
                    tracing::warn!(group = %self.o.durable, partition = p, err = %e, "could not acquire partition");
                }
                return; // lost the race: the watcher shows the winner
            }
            Err(_) => {
                tracing::warn!(group = %self.o.durable, partition = p, "acquiring partition timed out");
                return;
            }
        };
        let mut st = self.lock();
        if st.stopping {
            drop(st);
            // stopped meanwhile: hand it straight back
            let write = Arc::new(tokio::sync::Mutex::new(()));
            tokio::spawn(async move { self.write_release(p, rev, write, seq).await });
            return;
        }
        st.epochs += 1;
        let epoch = st.epochs;
        st.owned.insert(
            p,
            Owned {
                epoch,
                revision: rev,
                sent_at,
                write: Arc::new(tokio::sync::Mutex::new(())),
            },
        );
        st.stats.acquired += 1;
        if from.is_empty() {
            tracing::info!(group = %self.o.durable, partition = p, seq, "partition acquired");
        } else {
            st.stats.taken_over += 1;
            tracing::info!(group = %self.o.durable, partition = p, seq, from = %from, "partition taken over from an owner that stopped renewing it");
        }
        // acquired: read it from seq; re-read when that lies behind the read position
        let behind = st.run > 0 && seq < st.read_next;
        let mut run = st.run;
        if behind {
            run += 1;
            st.restart = true;
            self.restart.notify_one();
        }
        st.parts.insert(
            p,
            Part {
                epoch,
                next: seq,
                pending: VecDeque::new(),
                done: HashSet::new(),
                run,
            },
        );
        drop(st);
        self.changed.notify_waiters();
    }

    async fn renew(self: Arc<Self>, p: u32, epoch: u64) {
        let (write, raw, rev) = {
            let st = self.lock();
            let Some(o) = st.owned.get(&p).filter(|o| o.epoch == epoch) else {
                return;
            };
            (
                o.write.clone(),
                part_record(&self.o.instance, &self.o.member, st.checkpoint(p)),
                o.revision,
            )
        };
        let Ok(_guard) = write.try_lock() else {
            return; // the previous renewal is still in flight
        };
        let sent_at = Instant::now();
        let res = tokio::time::timeout(
            self.op_timeout(),
            self.kv.update(self.part_key(p), raw, rev),
        )
        .await;
        let mut st = self.lock();
        let Some(o) = st.owned.get_mut(&p).filter(|o| o.epoch == epoch) else {
            return; // released meanwhile
        };
        match res {
            Ok(Ok(rev)) => {
                o.revision = rev;
                o.sent_at = sent_at;
            }
            Ok(Err(e)) if update_conflict(&e) => {
                st.owned.remove(&p);
                st.stats.lost += 1;
                if let Some(part) = st.parts.remove(&p) {
                    st.in_flight -= part.in_flight();
                }
                drop(st);
                self.changed.notify_waiters();
                tracing::warn!(group = %self.o.durable, partition = p, "partition lost: another member took it over (this one paused or was cut off)");
            }
            Ok(Err(e)) => {
                tracing::warn!(group = %self.o.durable, partition = p, err = %e, "could not renew partition; retrying")
            }
            Err(_) => {
                tracing::warn!(group = %self.o.durable, partition = p, "renewing partition timed out; retrying")
            }
        }
    }

    /// Writes p's record with no owner and checkpoint seq, after the write in flight.
    async fn write_release(
        &self,
        p: u32,
        rev: u64,
        write: Arc<tokio::sync::Mutex<()>>,
        seq: u64,
    ) -> bool {
        let _guard = write.lock().await;
        match tokio::time::timeout(
            self.op_timeout(),
            self.kv
                .update(self.part_key(p), part_record("", "", seq), rev),
        )
        .await
        {
            Ok(Ok(_)) => true,
            other => {
                // Taken over meanwhile, or the store is down: the record lapses and the next
                // owner starts from the last checkpoint written (at most a replay).
                let err = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                tracing::warn!(group = %self.o.durable, partition = p, err = %err, "could not write the released partition's checkpoint");
                false
            }
        }
    }

    async fn read_loop(self: Arc<Self>) {
        let mut failures = 0u32;
        loop {
            let from = loop {
                {
                    let mut st = self.lock();
                    if st.stopping {
                        return;
                    }
                    if !st.parts.is_empty() {
                        let (run, read_next) = (st.run, st.read_next);
                        let mut from = u64::MAX;
                        for part in st.parts.values_mut() {
                            // what the run that ends saw counts for the partitions it served from their start
                            if part.run <= run && read_next > part.next {
                                part.next = read_next;
                            }
                            from = from.min(part.next);
                        }
                        let from = from.max(1);
                        st.restart = false;
                        st.run += 1;
                        let run = st.run;
                        for part in st.parts.values_mut() {
                            part.run = run;
                        }
                        st.read_next = from;
                        break from;
                    }
                }
                self.changed().await;
            };
            match self.read_from(from).await {
                Ok(()) => failures = 0,
                Err(e) => {
                    failures += 1;
                    if self.lock().stopping {
                        return;
                    }
                    tracing::warn!(group = %self.o.durable, err = %e, attempt = failures, "group reader failed; reading again");
                    let wait =
                        Duration::from_millis(100 << failures.min(6)).min(Duration::from_secs(5));
                    if !self.hold(wait).await {
                        return;
                    }
                }
            }
        }
    }

    /// One ordered read from stream sequence `from` until a restart, a stop or an error.
    async fn read_from(self: &Arc<Self>, from: u64) -> std::result::Result<(), String> {
        let stream = self
            .js
            .get_stream(&self.o.stream)
            .await
            .map_err(|e| e.to_string())?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subjects: self.o.subjects.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        loop {
            let again = {
                let st = self.lock();
                st.restart || st.stopping
            };
            if again {
                return Ok(());
            }
            let next = tokio::select! {
                _ = self.restart.notified() => return Ok(()),
                _ = self.stopped() => return Ok(()),
                n = messages.next() => n,
            };
            let msg = match next {
                None => return Err("the ordered consumer ended".into()),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(m)) => m,
            };
            let Ok(info) = msg.info() else { continue };
            let seq = info.stream_sequence;
            let key = group_key(msg.headers.as_ref(), &msg.subject, &msg.payload, seq);
            let p = partition_of(&key, self.o.partitions);
            let taken = {
                let mut st = self.lock();
                st.read_next = seq + 1;
                let mut taken = None;
                if let Some(part) = st.parts.get_mut(&p).filter(|part| seq >= part.next) {
                    part.take(seq);
                    taken = Some(part.epoch);
                }
                if taken.is_some() {
                    st.in_flight += 1;
                }
                taken
            };
            let Some(epoch) = taken else { continue };
            self.dispatch(Task {
                msg,
                partition: p,
                epoch,
                seq,
                key,
            });
            loop {
                {
                    let st = self.lock();
                    if st.in_flight < self.o.max_in_flight || st.stopping || st.restart {
                        break;
                    }
                }
                self.changed().await;
            }
        }
    }

    /// Queues t on its key's lane: one message of a key at a time, in stream order.
    fn dispatch(self: &Arc<Self>, t: Task) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = lanes.get_mut(&t.key) {
            q.push_back(t);
            return;
        }
        let key = t.key.clone();
        lanes.insert(key.clone(), VecDeque::from([t]));
        drop(lanes);
        self.lanes_running.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(self.clone().run_lane(key));
    }

    async fn run_lane(self: Arc<Self>, key: String) {
        loop {
            let t = {
                let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
                match lanes.get_mut(&key).and_then(|q| q.pop_front()) {
                    Some(t) => t,
                    None => {
                        lanes.remove(&key);
                        drop(lanes);
                        self.lanes_running.fetch_sub(1, Ordering::SeqCst);
                        self.lanes_idle.notify_waiters();
                        return;
                    }
                }
            };
            tokio::select! {
                biased;
                _ = self.stopped() => {} // left pending: the checkpoint stays before it
                permit = self.sem.acquire() => {
                    let _permit = permit;
                    self.run_task(t).await;
                }
            }
        }
    }

    /// Whether this instance may start a handler of t's partition; false when the partition was
    /// lost or the member stops (the message stays pending for the next owner).
    async fn wait_fresh(&self, t: &Task) -> bool {
        loop {
            {
                let st = self.lock();
                let mine = st
                    .parts
                    .get(&t.partition)
                    .is_some_and(|p| p.epoch == t.epoch);
                if !mine || st.stopping {
                    return false;
                }
                let fresh = st
                    .owned
                    .get(&t.partition)
                    .is_some_and(|o| o.epoch == t.epoch && o.sent_at.elapsed() < self.o.lease / 2);
                if fresh {
                    return true;
                }
            }
            if !self.hold(Duration::from_millis(50)).await {
                return false;
            }
        }
    }

    fn finish(&self, t: &Task) {
        let mut st = self.lock();
        let Some(part) = st
            .parts
            .get_mut(&t.partition)
            .filter(|p| p.epoch == t.epoch)
        else {
            return;
        };
        part.finish(t.seq);
        st.in_flight -= 1;
        drop(st);
        self.changed.notify_waiters();
    }

    async fn run_task(&self, t: Task) {
        if !self.wait_fresh(&t).await {
            return;
        }
        let d = match decode(&t.msg) {
            Ok(d) => d,
            Err(e) => {
                let class = FailureClass::of(&e);
                tracing::warn!(group = %self.o.durable, seq = t.seq, subject = %t.msg.subject, failure_class = class.as_str(), reason = %e, "poison message; dead-lettering it without retries");
                self.dead_letter(&t, class, &e.to_string(), 1).await;
                return;
            }
        };
        let mut attempt = 1u32;
        loop {
            let run = std::panic::AssertUnwindSafe((self.handler)(d.clone()))
                .catch_unwind()
                .await;
            let err = match run {
                Ok(Ok(())) => {
                    self.finish(&t);
                    return;
                }
                Ok(Err(e)) => e,
                Err(_) => HandlerError::Retry("handler panicked".into()),
            };
            if let HandlerError::Permanent(why) = &err {
                tracing::warn!(group = %self.o.durable, seq = t.seq, err = %why, "handler failed permanently");
                self.dead_letter(&t, FailureClass::HandlerPermanent, why, attempt as u64)
                    .await;
                return;
            }
            if attempt >= self.o.max_deliver {
                tracing::warn!(group = %self.o.durable, seq = t.seq, err = %err, "handler failed on the last delivery");
                self.dead_letter(
                    &t,
                    FailureClass::HandlerExhausted,
                    &err.to_string(),
                    attempt as u64,
                )
                .await;
                return;
            }
            let delay = (self.backoff)(attempt);
            tracing::info!(group = %self.o.durable, seq = t.seq, err = %err, delay = ?delay, "handler failed; retrying in place to keep the key's order");
            // a partition lost meanwhile is the new owner's: never retry it here
            if !self.hold(delay).await || !self.wait_fresh(&t).await {
                return;
            }
            attempt += 1;
        }
    }

    async fn dead_letter(&self, t: &Task, class: FailureClass, reason: &str, deliveries: u64) {
        let first = format_time(SystemTime::now());
        let mut attempt = 1;
        loop {
            let input = DeadLetterInput {
                stream: self.o.stream.clone(),
                sequence: t.seq,
                subject: t.msg.subject.to_string(),
                consumer: self.o.durable.clone(),
                deliveries,
                failure_class: class,
                reason: reason.to_string(),
                first_failure: first.clone(),
                last_failure: format_time(SystemTime::now()),
            };
            match store_dead_letter(&self.js, &t.msg, input).await {
                Ok(()) => {
                    tracing::warn!(group = %self.o.durable, seq = t.seq, failure_class = class.as_str(), "message dead-lettered");
                    self.finish(t);
                    return;
                }
                Err(e) => {
                    let delay = (self.backoff)(attempt);
                    tracing::error!(group = %self.o.durable, seq = t.seq, err = %e, "could not dead-letter the message; retrying in place");
                    if !self.hold(delay).await || !self.wait_fresh(t).await {
                        return;
                    }
                    attempt += 1;
                }
            }
        }
    }
}

impl Group {
    /// The partitions this member owns now, sorted.
    pub fn owned(&self) -> Vec<u32> {
        let st = self.inner.lock();
        let mut out: Vec<u32> = st.owned.keys().copied().collect();
        out.sort_unstable();
        out
    }

    /// Partition changes of this member so far.
    pub fn stats(&self) -> GroupStats {
        self.inner.lock().stats
    }

    /// This process's instance id in the group.
    pub fn instance(&self) -> &str {
        &self.inner.o.instance
    }

    /// Leaves the group: stops reading, lets the running handlers finish for up to `deadline`,
    /// and hands every partition over with its checkpoint (an event not finished stays after
    /// it, for the next owner). A handler still running after the deadline is not cancelled,
    /// but its outcome no longer moves the checkpoint.
    pub async fn stop(mut self, deadline: Duration) {
        self.stopped = true;
        let inner = self.inner.clone();
        inner.lock().stopping = true;
        let _ = inner.stop_tx.send(true);
        inner.changed.notify_waiters();
        inner.restart.notify_one();
        let watcher = self.loops.remove(0);
        for l in self.loops.drain(..) {
            let _ = l.await;
        }
        let idle = async {
            loop {
                let notified = inner.lanes_idle.notified();
                if inner.lanes_running.load(Ordering::SeqCst) == 0 {
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            }
        };
        if tokio::time::timeout(deadline, idle).await.is_err() {
            tracing::warn!(group = %inner.o.durable, "in-flight handlers passed the stop deadline; handing their partitions over without them");
        }
        // The ticker has ended, so no renewal is in flight: the revisions are current.
        let (owned, rev) = {
            let mut st = inner.lock();
            let owned: Vec<(u32, u64, Arc<tokio::sync::Mutex<()>>, u64)> = st
                .owned
                .iter()
                .map(|(p, o)| (*p, o.revision, o.write.clone(), st.checkpoint(*p)))
                .collect();
            st.owned.clear();
            (owned, st.member_rev)
        };
        let releases = owned.into_iter().map(|(p, rev, write, seq)| {
            let inner = inner.clone();
            async move {
                if inner.write_release(p, rev, write, seq).await {
                    inner.lock().stats.released += 1;
                    tracing::info!(group = %inner.o.durable, partition = p, seq, "partition released");
                }
            }
        });
        futures::future::join_all(releases).await;
        let _ = tokio::time::timeout(
            inner.op_timeout(),
            inner
                .kv
                .delete_expect_revision(inner.member_key(), Some(rev)),
        )
        .await;
        watcher.abort();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        // Abandoned: no more heartbeats, renewals or handler starts; the partitions lapse after
        // the lease (what a crash does).
        self.inner.lock().stopping = true;
        let _ = self.inner.stop_tx.send(true);
        for l in &self.loops {
            l.abort();
        }
    }
}
