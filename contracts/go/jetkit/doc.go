// Package jetkit is the Go side of the jetkit wire contract (contracts/WIRE.md): it reads an
// event's subject, stream and partition key from the generated contract descriptors, builds and
// reads the CloudEvents headers, publishes with JetStream de-duplication, continues W3C trace
// context and dead-letters messages it cannot process, on top of nats.go and its jetstream
// package.
//
// Import the generated contract packages you use (jetkit.dev/contracts/gen/go/...): importing
// them registers their descriptors, which is where this package finds every subject.
package jetkit
