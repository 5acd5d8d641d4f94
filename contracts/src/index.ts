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
} from "./catalog.js";
export {
  type ContractErrorCode,
  ContractErrorCodes,
  findJetkitError,
  isJetkitError,
  JetkitError,
} from "./errors.js";
export { uuidv7 } from "./ids.js";
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
  type EventHeaderInput,
  EventHeaders,
  type EventHeaderValues,
  eventHeaders,
  type FailureClass,
  FailureClasses,
  headerValue,
  MAX_HEADER_VALUE,
  type ReceivedEventHeaders,
  readEventHeaders,
  replayHeaders,
  SPEC_VERSION,
} from "./wire.js";
