/**
 * MLflow file store, the embedded default (tracker/mlflow-file)
 * Paper: none (infrastructure). Format: MLflow's FileStore layout, docs/methods/mlflow.md#file-store-layout.
 * Implements: the Tracker contract as `<root>/<experiment_id>/<run_id>/{meta.yaml, params/, tags/, metrics/, artifacts/}`,
 *   so `mlflow ui --backend-store-uri <root>` reads it (MLflow ≥ 3.13: set MLFLOW_ALLOW_FILE_STORE=true, see docs/tracking.md).
 * Choices: files replaced atomically (temp + rename), metrics append-only, meta.yaml written last as the commit
 *   point of a new run; params immutable as in MLflow; values over MLflow's limits go whole to artifacts/oversized/.
 * Checked against: test/core/tracking/file-store.test.ts (independent parser of the docs/methods/mlflow.md#file-store-layout rules).
 */
import { z } from 'zod';
import { createFileStoreTracker, definePlugin } from 'milkit';

export const MlflowFileOptions = z.strictObject({
  root: z.string().min(1).default('mlruns').describe('store folder (the `mlruns` directory); relative paths resolve against the working directory'),
});
export type MlflowFileOptions = z.output<typeof MlflowFileOptions>;

export default definePlugin({
  kind: 'tracker',
  name: 'mlflow-file',
  summary: 'MLflow file store under ./mlruns (no server needed; `mlflow ui` reads it)',
  options: MlflowFileOptions,
  capabilities: {},
  create: (options, ctx) => createFileStoreTracker({ root: options.root, cwd: ctx.cwd, logger: ctx.logger, ...(ctx.fs ? { fs: ctx.fs } : {}) }),
});
