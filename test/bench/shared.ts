// Helpers the benchmark modules share: a line-protocol client for the PyTorch reference scripts of test/bench
// (one JSON request per line on stdin, one JSON reply per line on stdout, a `{torch: version}` hello first),
// and the median the tables report.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';

export class TorchReference {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly pending: Array<{ resolve: (line: string) => void; reject: (error: Error) => void }> = [];
  private readonly early: string[] = [];
  version = '';

  constructor(python: string, script: string, args: readonly string[] = []) {
    this.child = spawn(python, [script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (chunk: Buffer) => process.stderr.write(`[torch] ${chunk.toString()}`));
    this.lines = createInterface({ input: this.child.stdout });
    // A line that arrives before anyone waits for it (the hello of a second process started alongside) is kept.
    this.lines.on('line', (line) => {
      const waiter = this.pending.shift();
      if (waiter) waiter.resolve(line);
      else this.early.push(line);
    });
    this.child.once('exit', (code) => this.pending.splice(0).forEach(({ reject }) => reject(new Error(`torch reference exited with ${code}`))));
  }

  private next(): Promise<string> {
    const line = this.early.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  }

  /** Waits for the script's hello and records its torch version. */
  async ready(): Promise<void> {
    this.version = (JSON.parse(await this.next()) as { torch: string }).torch;
  }

  /** Sends one request and returns the parsed reply. */
  async request<T>(message: Readonly<Record<string, unknown>>): Promise<T> {
    const reply = this.next();
    this.child.stdin.write(`${JSON.stringify(message)}\n`);
    return JSON.parse(await reply) as T;
  }

  close(): void {
    this.child.stdin.end();
    this.lines.close();
  }
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}
