// Test helper: what a thrown milkit error says, as one line `<Class>[<code>] <rendered message>`, for pinning.
import { MilkitError } from '../../../src/core/errors.js';

export function errorText(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof MilkitError) return `${error.name}[${error.code}] ${error.render()}`;
    throw error;
  }
  throw new Error('expected the call to throw');
}

export async function asyncErrorText(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof MilkitError) return `${error.name}[${error.code}] ${error.render()}`;
    throw error;
  }
  throw new Error('expected the call to reject');
}
