/**
 * Runs tasks one at a time per key, different keys in parallel: the task of a key starts only
 * when the previous task of that key has settled. Tasks without a key run at once.
 */
export class KeyLanes {
  readonly #tails = new Map<string, Promise<void>>();

  run(key: string | undefined, task: () => Promise<void>): Promise<void> {
    if (key === undefined) return task();
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const next = prev.then(task, task);
    const tail = next.catch(() => {});
    this.#tails.set(key, tail);
    // Forget the key once its last task settled, so the map holds only busy keys.
    tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return next;
  }

  /** Keys with a running or queued task. */
  get busy(): number {
    return this.#tails.size;
  }
}
