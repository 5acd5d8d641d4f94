import type { Bindings, Logger } from "pino";

/**
 * A child logger created on first use: pino serialises a child's bindings when it is made, which
 * costs more than handling a message, and most messages never log.
 */
export function lazyChild(parent: Logger, bindings: () => Bindings): Logger {
  let real: Logger | undefined;
  return new Proxy({} as Logger, {
    get(_target, prop) {
      real ??= parent.child(bindings());
      const value = Reflect.get(real, prop, real) as unknown;
      return typeof value === "function" ? value.bind(real) : value;
    },
  });
}
