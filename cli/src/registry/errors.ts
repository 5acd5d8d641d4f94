/** Error codes of the contract registry (`jetkit contracts push|list|show|diff|log`). */
export const RegistryErrorCodes = {
  /** The push was checked against the registered versions and refused; nothing was stored. */
  REFUSED: "JK_REGISTRY_REFUSED",
  /** The registry's servers cannot be reached, or its buckets cannot be read or created. */
  UNREACHABLE: "JK_REGISTRY_UNREACHABLE",
  /** The image is not a FileDescriptorSet, or declares no jetkit event (a foreign image). */
  IMAGE_INVALID: "JK_REGISTRY_IMAGE_INVALID",
  /** Another push stored a version while this one was being checked; nothing was stored. */
  PUSH_RACED: "JK_REGISTRY_PUSH_RACED",
  /** A version number (or a `ce-dataschema`) names a version the registry does not hold. */
  VERSION_UNKNOWN: "JK_REGISTRY_VERSION_UNKNOWN",
  /** A stored version or image does not read back as the registry wrote it (digest mismatch, bad record). */
  CORRUPT: "JK_REGISTRY_CORRUPT",
} as const;
export type RegistryErrorCode = (typeof RegistryErrorCodes)[keyof typeof RegistryErrorCodes];
