//! The Rust side of the jetkit wire contract (contracts/WIRE.md) on `async-nats`: subjects,
//! streams and partition keys come from the contracts (the buf image compiled into
//! `jetkit-contracts`), headers are CloudEvents binary mode, publishes carry a Nats-Msg-Id,
//! W3C trace context continues across services, and unprocessable messages are dead-lettered.

mod atomic;
pub mod binding;
mod catalog;
mod consumer;
mod error;
mod events;
mod group;
mod outcome;
mod partition;
mod producer;
mod protowire;
mod trace;
pub mod wire;

pub use atomic::{AtomicPublished, MAX_ATOMIC_BATCH};
pub use catalog::{Event, event_by_subject, event_by_type, events, load};
pub use consumer::{Delivery, dead_letter, decode};
pub use error::{Error, Result, codes};
pub use events::{AnyEvent, EventMessage};
pub use group::{Backoff, Group, GroupOptions, GroupStats, HandlerError, join_group};
/// The generated contract types (prost).
pub use jetkit_contracts as contracts;
pub use partition::{fnv1a32, group_key, partition_of};
pub use producer::{DEFAULT_PUBLISH_TIMEOUT, Producer, PublishOptions, Published};
pub use trace::TraceContext;
pub use wire::FailureClass;
