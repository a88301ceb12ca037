// Writes of one record from concurrent callers, one at a time and in call order. Each write reads the record's
// state when it runs, so the last write always carries the newest state: without the queue, the rename of an older
// write that happened to be slower could land after (and over) a newer one. A failed write rejects its own caller
// only; the writes queued behind it still run.
export function serialWrites(write: () => Promise<void>): () => Promise<void> {
  let tail: Promise<void> = Promise.resolve();
  return () => {
    const next = tail.then(write);
    tail = next.catch(() => undefined);
    return next;
  };
}
