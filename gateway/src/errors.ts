import { JetkitError } from "@jetkit/contracts";

/** Error codes of the gateway's HTTP API; each maps to one HTTP status (see {@link httpStatusOf}). */
export const GatewayErrorCodes = {
  /** No verified client certificate, or no principal could be read from it. 401. */
  UNAUTHENTICATED: "JK_GATEWAY_UNAUTHENTICATED",
  /** The policy denies the action on the subject. 403. */
  FORBIDDEN: "JK_GATEWAY_FORBIDDEN",
  /** The subject or pattern in the path is malformed, too long, or a wildcard where a concrete subject is needed. 400. */
  BAD_SUBJECT: "JK_GATEWAY_BAD_SUBJECT",
  /** The subject names no event of the catalog. 404. */
  UNKNOWN_SUBJECT: "JK_GATEWAY_UNKNOWN_SUBJECT",
  /** The body is not the event: malformed JSON, unknown field, wrong type, undecodable protobuf. 400. */
  BAD_BODY: "JK_GATEWAY_BAD_BODY",
  /** A CloudEvent (HTTP binding, binary or structured mode) is malformed: a missing, invalid or unsupported attribute, named in `field`. 400. */
  BAD_CLOUDEVENT: "JK_GATEWAY_BAD_CLOUDEVENT",
  /** The event decodes but breaks its contract's rules. 400. */
  CONTRACT_VIOLATION: "JK_GATEWAY_CONTRACT_VIOLATION",
  /** A request header (Idempotency-Key, X-Correlation-Id, Last-Event-ID) is malformed. 400. */
  BAD_HEADER: "JK_GATEWAY_BAD_HEADER",
  /** A query parameter or request field is malformed. 400. */
  BAD_REQUEST: "JK_GATEWAY_BAD_REQUEST",
  /** The content-type is neither JSON nor protobuf. 415. */
  UNSUPPORTED_MEDIA_TYPE: "JK_GATEWAY_UNSUPPORTED_MEDIA_TYPE",
  /** The body exceeds `limits.bodyBytes`. 413. */
  BODY_TOO_LARGE: "JK_GATEWAY_BODY_TOO_LARGE",
  /** The principal exceeded its request rate. 429 with Retry-After. */
  RATE_LIMITED: "JK_GATEWAY_RATE_LIMITED",
  /** NATS is unreachable or did not acknowledge in time. 503. */
  UNAVAILABLE: "JK_GATEWAY_UNAVAILABLE",
  /** No such route or consumer. 404. */
  NOT_FOUND: "JK_GATEWAY_NOT_FOUND",
  /** An ack token is malformed, forged, or belongs to another principal. 400. */
  BAD_ACK_TOKEN: "JK_GATEWAY_BAD_ACK_TOKEN",
  /** The URL (a path parameter) is longer than the gateway reads. 414. */
  URL_TOO_LONG: "JK_GATEWAY_URL_TOO_LONG",
  /** The request head (request line and headers) is larger than the server reads; the connection is closed. 431. */
  HEADERS_TOO_LARGE: "JK_GATEWAY_HEADERS_TOO_LARGE",
  /** The consumer of an ack token's delivery no longer exists (deleted): the delivery cannot be settled, and retrying cannot help. 410. */
  DELIVERY_GONE: "JK_GATEWAY_DELIVERY_GONE",
  /** Anything unexpected; the log has the cause. 500. */
  INTERNAL: "JK_GATEWAY_INTERNAL",
  /** The gateway configuration (file or object) is invalid. */
  CONFIG: "JK_GATEWAY_CONFIG",
  /** TLS material (certificate, key, CA bundle, CRL) could not be read or is invalid. */
  TLS: "JK_GATEWAY_TLS",
  /** An auth callout request could not be read (not decryptable with the xkey, unencrypted when one is set, not signed); it is logged, not answered. */
  AUTH_CALLOUT: "JK_GATEWAY_AUTH_CALLOUT",
} as const;
export type GatewayErrorCode = (typeof GatewayErrorCodes)[keyof typeof GatewayErrorCodes];

/** Error codes of the policy engine. */
export const PolicyErrorCodes = {
  /** The policy file is not valid YAML or breaks a policy rule; the message names the problem and line. */
  INVALID: "JK_POLICY_INVALID",
  /** The policy file cannot be read. */
  UNREADABLE: "JK_POLICY_UNREADABLE",
  /** An explain/check call was given an unknown action. */
  BAD_ACTION: "JK_POLICY_BAD_ACTION",
  /** The policy cannot be compiled to a nats-server config that decides as the gateway does; the message names the rules. */
  NATS_MISMATCH: "JK_POLICY_NATS_MISMATCH",
} as const;

/** Error codes of the dev PKI. */
export const PkiErrorCodes = {
  /** An openssl command failed; the message has its stderr. */
  OPENSSL: "JK_PKI_OPENSSL",
  /** `initPki` found an existing CA in the directory (pass `force` to replace it). */
  EXISTS: "JK_PKI_EXISTS",
  /** The directory has no CA (run `initPki` / `jetkit pki init` first), or a named certificate is missing. */
  NOT_FOUND: "JK_PKI_NOT_FOUND",
  /** A principal (SPIFFE ID, DN, certificate name) is malformed. */
  BAD_PRINCIPAL: "JK_PKI_BAD_PRINCIPAL",
} as const;

const STATUS: Record<GatewayErrorCode, number> = {
  JK_GATEWAY_UNAUTHENTICATED: 401,
  JK_GATEWAY_FORBIDDEN: 403,
  JK_GATEWAY_BAD_SUBJECT: 400,
  JK_GATEWAY_UNKNOWN_SUBJECT: 404,
  JK_GATEWAY_BAD_BODY: 400,
  JK_GATEWAY_BAD_CLOUDEVENT: 400,
  JK_GATEWAY_CONTRACT_VIOLATION: 400,
  JK_GATEWAY_BAD_HEADER: 400,
  JK_GATEWAY_BAD_REQUEST: 400,
  JK_GATEWAY_UNSUPPORTED_MEDIA_TYPE: 415,
  JK_GATEWAY_BODY_TOO_LARGE: 413,
  JK_GATEWAY_RATE_LIMITED: 429,
  JK_GATEWAY_UNAVAILABLE: 503,
  JK_GATEWAY_NOT_FOUND: 404,
  JK_GATEWAY_BAD_ACK_TOKEN: 400,
  JK_GATEWAY_URL_TOO_LONG: 414,
  JK_GATEWAY_HEADERS_TOO_LARGE: 431,
  JK_GATEWAY_DELIVERY_GONE: 410,
  JK_GATEWAY_INTERNAL: 500,
  JK_GATEWAY_CONFIG: 500,
  JK_GATEWAY_TLS: 500,
  JK_GATEWAY_AUTH_CALLOUT: 500,
};

/** The HTTP status of a gateway error code (500 for anything else). */
export function httpStatusOf(code: string): number {
  return STATUS[code as GatewayErrorCode] ?? 500;
}

/** A gateway error answered to the client as `{ error: { code, message, field? } }`. */
export function gatewayError(
  code: GatewayErrorCode,
  message: string,
  details: Record<string, unknown> = {},
  cause?: unknown,
): JetkitError {
  return new JetkitError(code, message, cause === undefined ? { details } : { details, cause });
}
