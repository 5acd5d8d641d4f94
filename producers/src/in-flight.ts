/**
 * Bounds the publishes unacknowledged at once. `acquire()` waits (FIFO) while the window is
 * full: callers feel backpressure instead of the producer buffering without limit.
 */
export class InFlightWindow {
  readonly limit: number;
  #used = 0;
  #highWater = 0;
  #queue: (() => void)[] = [];
  #idle: (() => void)[] = [];

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Slots in use now. */
  get size(): number {
    return this.#used;
  }

  /** Most slots ever in use at once. */
  get highWater(): number {
    return this.#highWater;
  }

  /** Callers waiting for a slot. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Takes a slot, waiting for one if the window is full. */
  acquire(): Promise<void> | undefined {
    if (this.#used < this.limit && this.#queue.length === 0) {
      this.#take();
      return undefined;
    }
    return new Promise((resolve) => {
      this.#queue.push(() => {
        this.#take();
        resolve();
      });
    });
  }

  /** Gives a slot back and hands it to the next waiter. */
  release(): void {
    this.#used--;
    const next = this.#queue.shift();
    if (next) next();
    else if (this.#used === 0) {
      const idle = this.#idle;
      this.#idle = [];
      for (const resolve of idle) resolve();
    }
  }

  /** Resolves when no slot is in use. */
  idle(): Promise<void> {
    if (this.#used === 0 && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #take(): void {
    this.#used++;
    if (this.#used > this.#highWater) this.#highWater = this.#used;
  }
}
