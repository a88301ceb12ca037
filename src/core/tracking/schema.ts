// tracking: section of an experiment.
import { z } from 'zod';

export const TrackingSection = z.strictObject({
  uri: z.string().optional().describe('MLflow tracking URI; http(s) for a server, a path or file: for the local store (default ./mlruns, or $MLFLOW_TRACKING_URI)'),
  experimentName: z.string().min(1).optional().describe('MLflow experiment name (default: the experiment name)'),
  enabled: z.boolean().default(true).describe('log runs at all'),
});
export type TrackingSection = z.output<typeof TrackingSection>;
