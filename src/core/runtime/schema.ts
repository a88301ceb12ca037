// runtime: section of an experiment.
import { z } from 'zod';

export const RuntimeSection = z.strictObject({
  backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto').describe('tfjs backend; auto picks tensorflow-gpu > tensorflow > wasm > cpu'),
  blas: z.enum(['auto', 'on', 'off']).default('auto').describe('route wasm matmuls to system OpenBLAS (auto: when the library is found)'),
  blasThreads: z.int().positive().optional().describe('OpenBLAS threads (default: cores ÷ worker processes)'),
  memoryLimit: z
    .union([z.number().positive(), z.string().regex(/^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB)?\s*$/i, 'a size such as "3.5GB" or "512MB"')])
    .optional()
    .describe('peak tensor memory a bag may plan to use (bytes or "3.5GB"); default 85 % of the wasm heap ceiling on wasm, of RAM elsewhere'),
  memoryCheckFrom: z.int().nonnegative().optional().describe('bags with fewer instances are run without a memory estimate (default 4096)'),
});
export type RuntimeSection = z.output<typeof RuntimeSection>;
