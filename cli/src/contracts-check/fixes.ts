/**
 * One-line fixes for buf's rule ids. buf says what changed; these say what to do instead, in the
 * deprecate-then-reserve workflow that jetkit's breaking config (buf.yaml) enforces.
 */

const quoted = (message: string, after: string) => new RegExp(`${after} "([^"]+)"`).exec(message)?.[1];

function reserveFix(message: string): string {
  const number = quoted(message, "field");
  const name = quoted(message, "with name");
  const owner = quoted(message, "on message");
  const what =
    number && name
      ? `\`reserved ${number}; reserved "${name}";\``
      : '`reserved <number>; reserved "<name>";`';
  return `restore the field (mark it [deprecated = true] while producers stop setting it), or reserve the number and name: ${what}${owner ? ` in message ${owner}` : ""}, so they are never reused with another meaning.`;
}

const NEW_FIELD =
  "keep the field as it was; for a different shape add a new field with a new number, deprecate the old one, and reserve its number and name once it is deleted.";
const RESTORE_OPTION =
  "restore the previous value of the option; generated code and stored events depend on it.";
const NEW_VERSION =
  "restore the previous definition; for an incompatible contract create a new versioned package (e.g. shop.order.v2) and publish both while consumers migrate.";

const BREAKING_FIXES: Record<string, (message: string) => string> = {
  FIELD_NO_DELETE: reserveFix,
  FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED: reserveFix,
  FIELD_NO_DELETE_UNLESS_NAME_RESERVED: reserveFix,
  FIELD_SAME_TYPE: () => NEW_FIELD,
  FIELD_WIRE_COMPATIBLE_TYPE: () => NEW_FIELD,
  FIELD_WIRE_JSON_COMPATIBLE_TYPE: () => NEW_FIELD,
  FIELD_SAME_NAME: () =>
    "keep the field's name (protobuf JSON, the gateway and generated code use it); add a new field if the meaning changed.",
  FIELD_SAME_JSON_NAME: () => "restore the field's json_name; JSON clients read events by it.",
  FIELD_SAME_CARDINALITY: () => NEW_FIELD,
  FIELD_SAME_LABEL: () => NEW_FIELD,
  FIELD_SAME_ONEOF: () =>
    "keep the field inside (or outside) the oneof it was in; add a new field with a new number for the new layout.",
  FIELD_SAME_DEFAULT: () => RESTORE_OPTION,
  FIELD_SAME_JSTYPE: () => RESTORE_OPTION,
  FIELD_SAME_CTYPE: () => RESTORE_OPTION,
  FIELD_SAME_UTF8_VALIDATION: () => RESTORE_OPTION,
  ENUM_VALUE_NO_DELETE: (m) => {
    const number = quoted(m, "enum value");
    const owner = quoted(m, "on enum");
    return `restore the value${number ? ` ${number}` : ""}${owner ? ` of enum ${owner}` : ""} and mark it [deprecated = true]; stored events still carry it, so enum values are never deleted.`;
  },
  ENUM_VALUE_SAME_NAME: () =>
    "keep the value's name (protobuf JSON uses it); add a new value with a new number for the new meaning.",
  ENUM_NO_DELETE: () => "restore the enum and mark it `option deprecated = true;` instead of deleting it.",
  ENUM_SAME_TYPE: () => RESTORE_OPTION,
  ENUM_SAME_JSON_FORMAT: () => RESTORE_OPTION,
  ENUM_FIRST_VALUE_SAME: () =>
    "keep the enum's first (zero) value; it is the default every decoder falls back to.",
  MESSAGE_NO_DELETE: () =>
    "restore the message and mark it `option deprecated = true;`; stored events and other contracts still use it.",
  MESSAGE_SAME_REQUIRED_FIELDS: () => NEW_FIELD,
  MESSAGE_SAME_MESSAGE_SET_WIRE_FORMAT: () => RESTORE_OPTION,
  MESSAGE_NO_REMOVE_STANDARD_DESCRIPTOR_ACCESSOR: () => RESTORE_OPTION,
  ONEOF_NO_DELETE: () => "restore the oneof; deprecate its fields instead of deleting it.",
  RESERVED_MESSAGE_NO_DELETE: () => "keep the reservation: reserved numbers and names stay reserved forever.",
  RESERVED_ENUM_NO_DELETE: () => "keep the reservation: reserved numbers and names stay reserved forever.",
  EXTENSION_NO_DELETE: () => "restore the extension; options already set with it would no longer parse.",
  EXTENSION_MESSAGE_NO_DELETE: () => "restore the extension range.",
  FILE_NO_DELETE: () =>
    "restore the file; to retire contracts, deprecate their messages (`option deprecated = true;`) and add the replacement in a new versioned package.",
  FILE_SAME_PACKAGE: () => NEW_VERSION,
  PACKAGE_NO_DELETE: () => NEW_VERSION,
  PACKAGE_ENUM_NO_DELETE: () => NEW_VERSION,
  PACKAGE_MESSAGE_NO_DELETE: () => NEW_VERSION,
  PACKAGE_SERVICE_NO_DELETE: () => NEW_VERSION,
  PACKAGE_EXTENSION_NO_DELETE: () => NEW_VERSION,
  SERVICE_NO_DELETE: () => NEW_VERSION,
  RPC_NO_DELETE: () => NEW_VERSION,
};

/** The fix for a `buf breaking` finding. */
export function breakingFix(rule: string, message: string): string {
  const fix = BREAKING_FIXES[rule];
  if (fix) return fix(message);
  if (rule.startsWith("FILE_SAME_") || rule.startsWith("RPC_SAME_")) return RESTORE_OPTION;
  return `${NEW_VERSION} (buf rule ${rule}: https://buf.build/docs/breaking/rules/)`;
}

/** The fix for a `buf lint` finding (buf's message already names the expected form). */
export function lintFix(rule: string, message: string): string {
  if (rule === "COMPILE") return "fix the proto so it compiles (`buf build` shows the same error).";
  const suggestion = /such as "([^"]+)"/.exec(message)?.[1];
  if (suggestion) return `rename it to "${suggestion}".`;
  return `follow buf's ${rule} rule as the message says (https://buf.build/docs/lint/rules/).`;
}
