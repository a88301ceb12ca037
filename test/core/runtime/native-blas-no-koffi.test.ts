import { describe, expect, it, vi } from 'vitest';
import { MemoryLogger } from '../../../src/core/logger.js';
import { loadNativeBlas } from '../../../src/core/runtime/native-blas.js';

// As if koffi's native part failed to install on this platform.
vi.mock('koffi', () => {
  throw new Error('No native build was found for platform=plan9');
});

describe('loadNativeBlas without koffi', () => {
  it('reports "not available" with one log line instead of throwing', async () => {
    const logger = new MemoryLogger();
    const result = await loadNativeBlas({ env: {}, logger });
    expect(result.available).toBe(false);
    expect(result.available ? '' : result.reason).toMatch(/^the koffi FFI package cannot be loaded: /); // vitest wraps the mock factory's error
    expect(logger.lines).toHaveLength(1);
  });
});
