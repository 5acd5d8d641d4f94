export type { AuditRecord } from "./audit.js";
export { AUDIT_SUBJECT, Auditor } from "./audit.js";
export type { AltName, CertificateFacts } from "./certificate.js";
export { certificateFacts, escapeDnValue } from "./certificate.js";
export { loadGatewayConfig } from "./config.js";
export type { GatewayErrorCode } from "./errors.js";
export { GatewayErrorCodes, httpStatusOf, PkiErrorCodes, PolicyErrorCodes } from "./errors.js";
export type { Gateway, GatewayConfig } from "./gateway.js";
export { certificateIdentity, startGateway } from "./gateway.js";
export type { EventPublisher, Limits } from "./http/context.js";
export { DEFAULT_LIMITS } from "./http/context.js";
export type { Identity, IdentityOptions, PrincipalSource } from "./identity.js";
export { identityOf, parseSpiffeId } from "./identity.js";
export type { MetricsOptions } from "./metrics.js";
export { Metrics } from "./metrics.js";
export type { AuthCallout, AuthCalloutOptions } from "./nats-auth/callout.js";
export { AUTH_CALLOUT_SUBJECT, SERVER_XKEY_HEADER, startAuthCallout } from "./nats-auth/callout.js";
export type { CalloutConfig, CalloutConfigOptions } from "./nats-auth/callout-config.js";
export { calloutConfig } from "./nats-auth/callout-config.js";
export type { InitPkiOptions, IssuedCert, IssueOptions, PkiPaths, PrincipalSpec } from "./pki/pki.js";
export {
  generateCrl,
  initPki,
  issueClientCert,
  issueServerCert,
  pkiPaths,
  revokeClientCert,
} from "./pki/pki.js";
export type { Action, Decision, ExplainOptions } from "./policy/evaluate.js";
export { explain, isFiltered } from "./policy/evaluate.js";
export type { NatsConfigOptions, NatsUserPermissions } from "./policy/nats-config.js";
export { natsAuthorization, natsPermissions, permissionsOf } from "./policy/nats-config.js";
export { natsMatches, patternCovers, patternProblem, principalMatches } from "./policy/patterns.js";
export type { Binding, DenyRule, Policy, Role } from "./policy/policy.js";
export { parsePolicy } from "./policy/policy.js";
export type { PolicyStoreOptions } from "./policy/store.js";
export { loadPolicyFile, PolicyStore } from "./policy/store.js";
export type { TlsFiles } from "./tls/material.js";
