import type { DescField, DescFile, DescMessage, DescOneof } from "@bufbuild/protobuf";

// Field numbers of FileDescriptorProto / DescriptorProto, as source-code-info paths use them.
const FILE_MESSAGE = 4;
const FILE_OPTIONS = 8;
const MESSAGE_FIELD = 2;
const MESSAGE_NESTED = 3;
const MESSAGE_OPTIONS = 7;
const MESSAGE_ONEOF = 8;

/** The source-code-info path of a message: `[4, i]`, `[4, i, 3, j]`, ... */
export function messagePath(m: DescMessage): number[] {
  const parent = m.parent;
  if (parent) return [...messagePath(parent), MESSAGE_NESTED, parent.proto.nestedType.indexOf(m.proto)];
  return [FILE_MESSAGE, m.file.proto.messageType.indexOf(m.proto)];
}

export function fieldPath(f: DescField): number[] {
  return [...messagePath(f.parent), MESSAGE_FIELD, f.parent.proto.field.indexOf(f.proto)];
}

export function oneofPath(o: DescOneof): number[] {
  return [...messagePath(o.parent), MESSAGE_ONEOF, o.parent.proto.oneofDecl.indexOf(o.proto)];
}

/** The path of a field of a file option (`option (jetkit.v1.stream) = { retention: ... }`). */
export function fileOptionPath(extensionNumber: number, ...fields: number[]): number[] {
  return [FILE_OPTIONS, extensionNumber, ...fields];
}

/** The path of a field of a message option (`option (jetkit.v1.event) = { partition_key: ... }`). */
export function messageOptionPath(m: DescMessage, extensionNumber: number, ...fields: number[]): number[] {
  return [...messagePath(m), MESSAGE_OPTIONS, extensionNumber, ...fields];
}

const startsWith = (path: readonly number[], prefix: readonly number[]) =>
  prefix.length <= path.length && prefix.every((n, i) => path[i] === n);

/**
 * The 1-based line where `path` is declared in the file's source (kept in the buf image). When
 * the exact path has no location (an option left at its default), the nearest enclosing one.
 */
export function lineAt(file: DescFile, path: readonly number[]): number | undefined {
  const locations = file.proto.sourceCodeInfo?.location ?? [];
  for (let n = path.length; n > 0; n--) {
    const prefix = path.slice(0, n);
    const found =
      locations.find((l) => l.path.length === n && startsWith(l.path, prefix)) ??
      locations.find((l) => startsWith(l.path, prefix));
    const start = found?.span[0];
    if (start !== undefined) return start + 1;
  }
  return undefined;
}
