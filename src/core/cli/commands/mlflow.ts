// `milkit mlflow sync [--to URI]` uploads runs that did not reach the tracking server (offline nodes, outages);
// `milkit mlflow ping [--uri URI]` checks that a URI is an MLflow server and the credentials work.
import type { Command } from 'commander';
import { TrackingError } from '../../errors.js';
import type { SyncReport } from '../../tracking/sync.js';
import { loadActionCode, type CliApp } from '../app.js';

// The tracking modules load inside the actions, not at the top: they pull in axios, zod and the file store,
// which `milkit --help` must not pay (BENCHMARKS.md "coldstart").

const collect = (value: string, previous: string[]): string[] => [...previous, value];
const positiveInt = (name: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new TrackingError('invalid-option', `--${name} must be a non-negative integer, got "${value}".`);
  return n;
};

async function renderReport(report: SyncReport): Promise<string> {
  const { renderTable } = await loadActionCode('mlflow sync', () => import('../../tracking/runs-query.js'));
  const rows = report.runs.map((r) => [
    r.localRunId.slice(0, 8),
    `${r.experiment}/${r.runName}`,
    r.status,
    r.remoteRunId ? r.remoteRunId.slice(0, 8) : '',
    String(r.metricsSent),
    String(r.metricsAlreadyThere),
    r.problems.join('; '),
  ]);
  return renderTable({ header: ['run', 'experiment/name', 'status', 'server id', 'metrics sent', 'already there', 'notes'], rows }, 'text');
}

export function register(program: Command, app: CliApp): void {
  const mlflow = program.command('mlflow').description('MLflow server utilities: sync offline runs, check a server');

  mlflow
    .command('sync')
    .description('upload local runs that did not reach the tracking server (idempotent: nothing is sent twice)')
    .option('--to <uri>', 'server to sync to (default: the URI each run was meant for, else $MLFLOW_TRACKING_URI)')
    .option('--mlruns <dir>', 'local store to read (default: ./mlruns)')
    .option('-e, --experiment <name>', 'only this experiment (repeatable)', collect, [] as string[])
    .option('--force', 'also re-check runs already marked synced')
    .option('--dry-run', 'list what would be synced; change nothing')
    .option('--skip-artifacts', 'sync params, tags and metrics only')
    .option('--timeout-ms <n>', 'per-request timeout', positiveInt('timeout-ms'), 30_000)
    .option('--retries <n>', 'retries on network errors, 429 and 5xx', positiveInt('retries'), 5)
    .option('--json', 'machine-readable report')
    .action(async (opts: { to?: string; mlruns?: string; experiment: string[]; force?: boolean; dryRun?: boolean; skipArtifacts?: boolean; timeoutMs: number; retries: number; json?: boolean }) => {
      const [{ localStoreRoot, restEnvOptions }, { syncStore }] = await loadActionCode('mlflow sync', () => Promise.all([import('../../tracking/create-tracker.js'), import('../../tracking/sync.js')]));
      const root = localStoreRoot(app.cwd, app.env, opts.mlruns);
      const report = await syncStore({
        root,
        ...(opts.to ? { to: opts.to } : {}),
        env: app.env,
        ...(opts.experiment.length > 0 ? { experiments: opts.experiment } : {}),
        force: opts.force === true,
        dryRun: opts.dryRun === true,
        skipArtifacts: opts.skipArtifacts === true,
        client: { ...restEnvOptions(app.env), timeoutMs: opts.timeoutMs, retries: opts.retries },
        logger: app.logger,
      });
      if (opts.json) app.io.out(JSON.stringify(report, null, 2));
      else if (report.runs.length === 0) app.io.out(`nothing to sync in ${root}: every run is marked synced (use --force to re-check).`);
      else {
        app.io.out(await renderReport(report));
        const synced = report.runs.filter((r) => r.status === 'synced').length;
        const created = report.runs.filter((r) => r.created).length;
        app.io.out(opts.dryRun
          ? `${report.runs.filter((r) => r.status === 'planned').length} run(s) would be synced.`
          : `${synced} run(s) synced (${created} created on the server), ${report.metricsSent} metric point(s) sent, ${report.metricsAlreadyThere} already there; ${report.partial} partial, ${report.failed} failed.`);
      }
      if (report.failed > 0) {
        throw new TrackingError('sync-incomplete', `${report.failed} run(s) did not reach the server; they stay marked unsynced in ${root}.`, {
          hint: 'Fix the cause shown above (server down, credentials, URI) and run `milkit mlflow sync` again.',
        });
      }
    });

  mlflow
    .command('ping')
    .description('check that a URI answers as an MLflow tracking server (version, auth)')
    .option('--uri <uri>', 'server URI (default: $MLFLOW_TRACKING_URI)')
    .action(async (opts: { uri?: string }) => {
      const uri = opts.uri ?? app.env.MLFLOW_TRACKING_URI;
      if (!uri || !/^https?:\/\//i.test(uri)) {
        throw new TrackingError('no-server-uri', 'no http(s) tracking server given.', { hint: 'Pass --uri http://host:5000 or set MLFLOW_TRACKING_URI.' });
      }
      const [{ restEnvOptions }, { MlflowRestClient }, { stripUrlCredentials }] = await loadActionCode('mlflow ping', () => Promise.all([
        import('../../tracking/create-tracker.js'),
        import('../../tracking/rest-client.js'),
        import('../../tracking/system-tags.js'),
      ]));
      const client = new MlflowRestClient({ uri, ...restEnvOptions(app.env), retries: 0, logger: app.logger });
      const version = await client.version();
      // An authenticated API call: health and version are open even when auth is on.
      await client.searchExperiments({ maxResults: 1 });
      app.io.out(`${stripUrlCredentials(uri)}: MLflow ${version}, API reachable${app.env.MLFLOW_TRACKING_TOKEN ? ' (bearer token)' : app.env.MLFLOW_TRACKING_USERNAME ? ' (basic auth)' : ''}.`);
    });
}
