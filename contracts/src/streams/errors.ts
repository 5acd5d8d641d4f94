/** Error codes of streams as code (`@jetkit/contracts/streams`). */
export const StreamsErrorCodes = {
  /** The plan holds changes that lose data; nothing was applied. */
  DESTRUCTIVE: "JK_STREAMS_DESTRUCTIVE",
  /** A catalog stream's subjects overlap a stream the catalog does not manage; nothing was applied. */
  CONFLICT: "JK_STREAMS_CONFLICT",
  /** The server could not be asked (no JetStream, no connection, no permission). */
  UNAVAILABLE: "JK_STREAMS_UNAVAILABLE",
  /** The server refused a create, update or delete while applying. */
  APPLY_FAILED: "JK_STREAMS_APPLY_FAILED",
  /** A stream asks for more replicas than the cluster (or single server) has JetStream servers; nothing was applied. */
  REPLICAS_EXCEED_CLUSTER: "JK_STREAMS_REPLICAS_EXCEED_CLUSTER",
  /** The server is in a cluster whose size cannot be read, and a stream needs the default replica count; nothing was applied. */
  CLUSTER_UNKNOWN: "JK_STREAMS_CLUSTER_UNKNOWN",
  /** The options are invalid (replicas, stream names). */
  INVALID_OPTIONS: "JK_STREAMS_INVALID_OPTIONS",
} as const;
export type StreamsErrorCode = (typeof StreamsErrorCodes)[keyof typeof StreamsErrorCodes];
