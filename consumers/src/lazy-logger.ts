import type { Bindings, Logger } from "pino";

/** What a lazy child logger needs to become real: the Proxy's target. */
interface LazyTarget {
  parent: Logger;
  bindings: () => Bindings;
  real: Logger | undefined;
}

/** One handler for every lazy child (a handler per logger would cost two objects per message). */
const lazyHandler: ProxyHandler<LazyTarget> = {
  get(target, prop) {
    const real = realOf(target);
    const value = Reflect.get(real, prop, real) as unknown;
    return typeof value === "function" ? value.bind(real) : value;
  },
  // e.g. `ctx.logger.level = "debug"` sets the level of the real child
  set(target, prop, value) {
    const real = realOf(target);
    return Reflect.set(real, prop, value, real);
  },
};

function realOf(target: LazyTarget): Logger {
  target.real ??= target.parent.child(target.bindings());
  return target.real;
}

/**
 * A child logger created on first use: pino serialises a child's bindings when it is made, which
 * costs more than handling a message, and most messages never log.
 */
export function lazyChild(parent: Logger, bindings: () => Bindings): Logger {
  return new Proxy<LazyTarget>({ parent, bindings, real: undefined }, lazyHandler) as unknown as Logger;
}
