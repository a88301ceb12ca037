// Test-only fault hook (docs/reliability.md#test-only-hold): lets a reliability test deliver a signal exactly while a
// file is half written or while the tracker waits for the MLflow server. Off unless MILKIT_TEST_HOLD is set; read in
// this one place so no other module knows about it.
//
//   MILKIT_TEST_HOLD=write:<path fragment>   the first atomic write whose target contains the fragment writes half
//                                            its bytes to the temporary file, then holds
//   MILKIT_TEST_HOLD=flush                   the first tracker flush that waits for a server holds before draining
//   MILKIT_TEST_HOLD_MS=<ms>                 how long a hold lasts (default 1500)
//
// A hold prints `milkit-test-hold: <point> <target>` to stderr, then waits on a timer, so the event loop (and the
// signal handlers) keep running while it holds.

export type HoldPoint = 'write' | 'flush';

const DEFAULT_HOLD_MS = 1500;

let used = false;

function matches(point: HoldPoint, target: string): boolean {
  const spec = process.env.MILKIT_TEST_HOLD;
  if (!spec || used) return false;
  if (point === 'flush') return spec === 'flush';
  return spec.startsWith('write:') && target.includes(spec.slice('write:'.length));
}

/** Whether this call is the one to hold at (at most one hold per process). */
export function shouldHold(point: HoldPoint, target: string): boolean {
  if (!matches(point, target)) return false;
  used = true;
  return true;
}

/** Says where it holds (stderr), then waits MILKIT_TEST_HOLD_MS, or less when `until` settles first. */
export async function hold(point: HoldPoint, target: string, until?: Promise<unknown>): Promise<void> {
  const ms = Number(process.env.MILKIT_TEST_HOLD_MS ?? DEFAULT_HOLD_MS);
  process.stderr.write(`milkit-test-hold: ${point} ${target}\n`);
  let timer: NodeJS.Timeout | undefined;
  const elapsed = new Promise((resolve) => {
    timer = setTimeout(resolve, Number.isFinite(ms) && ms >= 0 ? ms : DEFAULT_HOLD_MS);
  });
  try {
    await Promise.race(until ? [elapsed, until] : [elapsed]);
  } finally {
    // A pending timer would keep the process alive after it is done.
    clearTimeout(timer);
  }
}
