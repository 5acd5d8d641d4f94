//! The Rust type of every event of the contracts. prost generates plain structs without their
//! protobuf names, so this list binds each to its fully-qualified name (built from the module
//! path, which mirrors the proto package); a test checks it covers exactly the events of the buf
//! image, so a new contract that is not listed here fails the build's tests.

use jetkit_contracts as c;

use crate::catalog::{Event, event_by_type};
use crate::error::{Error, Result, codes};

/// A generated message that is an event of the contracts.
pub trait EventMessage: prost::Message + Default + Sized {
    /// Fully-qualified protobuf name (ce-type).
    const TYPE: &'static str;
    /// The event's contract: subject, stream, partition key.
    fn event() -> &'static Event {
        event_by_type(Self::TYPE).expect("every EventMessage is an event of the buf image")
    }
}

macro_rules! events {
    ($($variant:ident => $first:ident $(:: $rest:ident)*),+ $(,)?) => {
        $(impl EventMessage for c::$first $(:: $rest)* {
            const TYPE: &'static str = concat!(stringify!($first) $(, ".", stringify!($rest))*);
        })+

        /// Any event of the contracts, decoded: match on it to handle the events you care about.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum AnyEvent {
            $($variant(c::$first $(:: $rest)*),)+
        }

        impl AnyEvent {
            /// Decodes `payload` as the event named `type_name` (ce-type).
            pub fn decode(type_name: &str, payload: &[u8]) -> Result<AnyEvent> {
                match type_name {
                    $(<c::$first $(:: $rest)* as EventMessage>::TYPE =>
                        <c::$first $(:: $rest)* as prost::Message>::decode(payload)
                            .map(AnyEvent::$variant)
                            .map_err(|e| undecodable(type_name, e)),)+
                    _ => Err(Error::new(codes::UNKNOWN_TYPE, format!(
                        "{type_name:?} has no Rust type in jetkit::AnyEvent; update the jetkit crate"))),
                }
            }

            /// The protobuf encoding of the event.
            pub fn encode_to_vec(&self) -> Vec<u8> {
                match self { $(AnyEvent::$variant(m) => prost::Message::encode_to_vec(m),)+ }
            }

            /// Fully-qualified protobuf name of the event.
            pub fn type_name(&self) -> &'static str {
                match self { $(AnyEvent::$variant(_) => <c::$first $(:: $rest)* as EventMessage>::TYPE,)+ }
            }

            /// Every type name this enum knows.
            pub const TYPES: &'static [&'static str] =
                &[$(<c::$first $(:: $rest)* as EventMessage>::TYPE),+];
        }
    };
}

fn undecodable(type_name: &str, e: prost::DecodeError) -> Error {
    Error::new(
        codes::UNDECODABLE,
        format!("payload is not a {type_name}: {e}"),
    )
}

events! {
    AuditGatewayDecision => jetkit::v1::AuditGatewayDecision,
    CustomerAccountRegistered => shop::customer::v1::CustomerAccountRegistered,
    CustomerCheckoutInitiated => shop::customer::v1::CustomerCheckoutInitiated,
    InventoryStockReserved => shop::inventory::v1::InventoryStockReserved,
    InventoryStockDepleted => shop::inventory::v1::InventoryStockDepleted,
    OrderFulfillmentStarted => shop::order::v1::OrderFulfillmentStarted,
    OrderFulfillmentCompleted => shop::order::v1::OrderFulfillmentCompleted,
    OrderLifecycleCancelled => shop::order::v1::OrderLifecycleCancelled,
    PaymentChargeAuthorized => shop::payment::v1::PaymentChargeAuthorized,
    PaymentChargeDeclined => shop::payment::v1::PaymentChargeDeclined,
}
