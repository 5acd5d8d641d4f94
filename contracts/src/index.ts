export {
  Catalog,
  type CatalogProblem,
  DEFAULT_IMAGE_PATH,
  type EventSpec,
  getCatalog,
  inspectImage,
  loadCatalog,
  partitionKeyOf,
  registryFromImage,
  type StreamSpec,
  withPlatformEvents,
} from "./catalog.js";
export { parseRegistryDataschema, registryDataschema } from "./dataschema.js";
export {
  type ContractErrorCode,
  ContractErrorCodes,
  findJetkitError,
  isJetkitError,
  JetkitError,
} from "./errors.js";
export { uuidv7 } from "./ids.js";
export { percentDecode, percentEncode } from "./percent.js";
export { headerLookup, type ReceivedEvent, readEvent } from "./read-event.js";
export {
  isStructured,
  readStructuredEvent,
  type StructuredEvent,
  type StructuredEventInput,
  structuredEventBody,
  structuredHeaders,
  type TransportHeaders,
} from "./structured.js";
export {
  deadLetterSubject,
  EVENT_SUBJECT,
  hasWildcard,
  isEventSubject,
  subjectMatches,
  subjectsOverlap,
} from "./subjects.js";
export { ContractValidator, type EventType, type FieldViolation, violationError } from "./validate.js";
export {
  CONTENT_TYPE,
  checkEventHeaders,
  DeadLetterHeaders,
  type DeadLetterInput,
  deadLetterHeaders,
  deadLetterMsgId,
  decodeHeaderValue,
  type EventHeaderInput,
  EventHeaders,
  type EventHeaderValues,
  eventHeaders,
  type FailureClass,
  FailureClasses,
  headerValue,
  isProtobufMediaType,
  isTraceparent,
  MAX_HEADER_VALUE,
  mediaType,
  NATS_BINDING_VERSION,
  pickTraceContext,
  type ReceivedEventHeaders,
  readEventHeaders,
  replayHeaders,
  SPEC_VERSION,
  STRUCTURED_JSON,
} from "./wire.js";
