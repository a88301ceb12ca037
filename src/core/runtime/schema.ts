// runtime: section of an experiment.
import { z } from 'zod';

export const RuntimeSection = z.strictObject({
  backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto').describe('tfjs backend; auto picks tensorflow-gpu > tensorflow > wasm > cpu'),
  blas: z.enum(['auto', 'on', 'off']).default('auto').describe('route wasm matmuls to system OpenBLAS (auto: when the library is found)'),
  blasThreads: z.int().positive().optional().describe('OpenBLAS threads (default: cores ÷ worker processes)'),
});
export type RuntimeSection = z.output<typeof RuntimeSection>;
