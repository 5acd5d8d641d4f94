/** A counting semaphore: at most `size` holders; `acquire()` waits in FIFO order for a free slot. */
export class Slots {
  readonly #size: number;
  #used = 0;
  readonly #waiters: (() => void)[] = [];

  constructor(size: number) {
    this.#size = size;
  }

  acquire(): Promise<void> | undefined {
    if (this.#used < this.#size) {
      this.#used++;
      return undefined;
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  release(): void {
    const next = this.#waiters.shift();
    // The slot passes straight to the next waiter, so #used stays the same.
    if (next) next();
    else this.#used--;
  }

  get used(): number {
    return this.#used;
  }
}
