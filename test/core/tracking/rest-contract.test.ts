// Contract tests: the REST client against a server that answers exactly as the recorded MLflow 3.6 server did
// (test/reference/fixtures/mlflow-fixtures.json.gz, 86 exchanges). Each case checks that the request matches the
// recorded one (method, path, body) and that the client handles the recorded answer (value or typed error).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../../src/core/logger.js';
import { MlflowRestClient } from '../../../src/core/tracking/rest-client.js';
import {
  MlflowApiError,
  MlflowBadResponseError,
  MlflowHttpError,
  MlflowInternalError,
  MlflowInvalidParameterValueError,
  MlflowResourceAlreadyExistsError,
  MlflowResourceDoesNotExistError,
} from '../../../src/core/tracking/rest-errors.js';
import { MlflowRestTracker } from '../../../src/core/tracking/rest-tracker.js';
import { fixture, mlflowFixtures, ReplayServer, usedFixtures, type RecordedExchange } from '../../helpers/mlflow-replay-server.js';

const RUN = 'fa8449d2e037429a8be4067d3789133e';
const PROXIED_RUN = 'a05c5edae6684005849ecf6b717173fd';
const PROXIED_URI = `mlflow-artifacts:/ts-proxied/${PROXIED_RUN}/artifacts`;

let server: ReplayServer;
let client: MlflowRestClient;
const sleeps: number[] = [];

beforeAll(async () => {
  server = await ReplayServer.start();
  client = new MlflowRestClient({ uri: server.uri, retries: 1, timeoutMs: 5000, sleep: async (ms) => void sleeps.push(ms), random: () => 0.5 });
});
afterAll(async () => server.close());
afterEach(() => {
  expect(server.pending).toBe(0);
  server.received.length = 0;
  sleeps.length = 0;
});

/** The request the client sent matches the recorded one: method, path with query, JSON body. */
function expectSameRequest(index: number, recorded: RecordedExchange): void {
  const got = server.received[index];
  expect(got, `request #${index} for ${recorded.notes}`).toBeDefined();
  if (!got) return;
  expect(got.method).toBe(recorded.method);
  expect(got.url).toBe(recorded.path);
  if (recorded.request_body !== null && !recorded.request_body_is_raw_text) {
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.json).toEqual(recorded.request_body);
  }
}

describe('MLflow REST client against the recorded server', () => {
  it('replays a bundle of all 86 recorded exchanges', () => {
    expect(Object.keys(mlflowFixtures())).toHaveLength(86);
  });

  it('01 creates an experiment and returns its string id', async () => {
    server.answer(fixture('01'));
    await expect(client.createExperiment('ts-client-fixtures', { tags: { team: 'ml' } })).resolves.toBe('1');
    expectSameRequest(0, fixture('01'));
  });

  it('02 maps RESOURCE_ALREADY_EXISTS to a typed error without retrying', async () => {
    server.answer(fixture('02'));
    const error = await client.createExperiment('ts-client-fixtures').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MlflowResourceAlreadyExistsError);
    expect(error).toMatchObject({ errorCode: 'RESOURCE_ALREADY_EXISTS', status: 400, code: 'mlflow-resource-already-exists' });
    expect(server.received).toHaveLength(1);
    expectSameRequest(0, fixture('02'));
  });

  it('04 → 02 → 03 get-or-create survives losing a creation race', async () => {
    server.answer(fixture('04'), fixture('02'), fixture('03'));
    await expect(client.getOrCreateExperiment('ts-client-fixtures')).resolves.toBe('1');
    expect(server.received.map((r) => `${r.method} ${r.pathname}`)).toEqual([
      'GET /api/2.0/mlflow/experiments/get-by-name',
      'POST /api/2.0/mlflow/experiments/create',
      'GET /api/2.0/mlflow/experiments/get-by-name',
    ]);
    expect(server.received[0]?.url).toBe(fixture('03').path);
  });

  it('03/04 get-by-name returns the experiment with tags, or undefined for RESOURCE_DOES_NOT_EXIST', async () => {
    server.answer(fixture('03'), fixture('04'));
    await expect(client.getExperimentByName('ts-client-fixtures')).resolves.toEqual({
      experimentId: '1', name: 'ts-client-fixtures', artifactLocation: '/srv/mlflow/artifacts/1', lifecycleStage: 'active', tags: { team: 'ml' },
    });
    await expect(client.getExperimentByName('does-not-exist')).resolves.toBeUndefined();
    expectSameRequest(0, fixture('03'));
    expectSameRequest(1, fixture('04'));
  });

  it('05/06 get by id; an unknown id is RESOURCE_DOES_NOT_EXIST (404)', async () => {
    server.answer(fixture('05'), fixture('06'));
    await expect(client.getExperiment('1')).resolves.toMatchObject({ name: 'ts-client-fixtures' });
    await expect(client.getExperiment('987654321')).rejects.toBeInstanceOf(MlflowResourceDoesNotExistError);
    expectSameRequest(0, fixture('05'));
    expectSameRequest(1, fixture('06'));
  });

  it('07 searches experiments with the recorded body', async () => {
    server.answer(fixture('07'));
    const out = await client.searchExperiments({ maxResults: 10, filter: "name LIKE 'ts-client%'", orderBy: ['name ASC'] });
    expect(out.experiments.map((e) => e.name)).toEqual(['ts-client-fixtures']);
    expectSameRequest(0, fixture('07'));
  });

  it('08/64 creates runs (full and minimal) and reads run info', async () => {
    server.answer(fixture('08'), fixture('64'));
    const run = await client.createRun({ experimentId: '1', startTime: 1795311078969, runName: 'fixture-run-1', tags: { source: 'ts-client' } });
    expect(run.info).toMatchObject({ runId: RUN, experimentId: '1', runName: 'fixture-run-1', status: 'RUNNING', startTime: 1795311078969, userId: '' });
    expect(run.tags).toEqual({ source: 'ts-client', 'mlflow.runName': 'fixture-run-1' });
    const minimal = await client.createRun({ experimentId: '1' });
    expect(minimal.info).toMatchObject({ runName: 'bemused-ram-50', startTime: 0 });
    expectSameRequest(0, fixture('08'));
    expectSameRequest(1, fixture('64'));
  });

  it('09 log-batch sends metrics, params and tags in one call shaped as recorded', async () => {
    const recorded = fixture('09').request_body as { metrics: Array<{ key: string; value: number; timestamp: number; step: number }>; params: Array<{ key: string; value: string }>; tags: Array<{ key: string; value: string }> };
    server.answer(fixture('09'));
    await client.logBatch(RUN, {
      metrics: recorded.metrics,
      params: Object.fromEntries(recorded.params.map((p) => [p.key, p.value])),
      tags: Object.fromEntries(recorded.tags.map((t) => [t.key, t.value])),
    });
    expectSameRequest(0, fixture('09'));
  });

  it('10/11/63 log single metrics with and without step', async () => {
    server.answer(fixture('10'), fixture('11'), fixture('63'));
    await client.logMetric(RUN, { key: 'loss', value: 0.125, timestamp: 1795311078972, step: 3 });
    await client.logMetric(RUN, { key: 'lat_ms', value: 12, timestamp: 1795311078969 });
    await client.logMetric(RUN, { key: 'after_finish', value: 1, timestamp: 1795311078969 });
    expectSameRequest(0, fixture('10'));
    expectSameRequest(1, fixture('11'));
    expectSameRequest(2, fixture('63'));
  });

  it('12/14 sends NaN and Infinity as the strings MLflow accepts, never null (15) or a bare NaN token (13)', async () => {
    server.answer(fixture('12'), fixture('14'));
    await client.logMetric(RUN, { key: 'nan_metric', value: NaN, timestamp: 1795311078969, step: 0 });
    await client.logMetric(RUN, { key: 'inf_metric', value: Infinity, timestamp: 1795311078969, step: 0 });
    expectSameRequest(0, fixture('12'));
    expectSameRequest(1, fixture('14'));
    for (const request of server.received) {
      const text = request.raw.toString('utf8');
      expect(text).not.toMatch(/:\s*(NaN|null|Infinity)\s*[,}]/);
    }
    // The same holds inside log-batch, -Infinity included.
    server.answer({ status: 200, body: {} });
    await client.logBatch(RUN, { metrics: [{ key: 'a', value: NaN, step: 0, timestamp: 1 }, { key: 'b', value: -Infinity, step: 0, timestamp: 1 }] });
    expect((server.received[2]?.json as { metrics: unknown[] }).metrics).toEqual([
      { key: 'a', value: 'NaN', timestamp: 1, step: 0 },
      { key: 'b', value: '-Infinity', timestamp: 1, step: 0 },
    ]);
  });

  it.each(['15', '16', '17', '18', '41', '42', '43', '44', '46', '47', '50', '57'])('%s maps the recorded INVALID_PARAMETER_VALUE answer to a typed error, not retried', async (id) => {
    server.answer(fixture(id));
    const error = await client.logMetric(RUN, { key: 'x', value: 1, timestamp: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MlflowInvalidParameterValueError);
    expect(error).toMatchObject({ errorCode: 'INVALID_PARAMETER_VALUE', status: 400 });
    expect(server.received).toHaveLength(1);
  });

  it('19/20/21 logs params: the same value again succeeds, a different one is a typed conflict', async () => {
    server.answer(fixture('19'), fixture('20'), fixture('21'));
    await client.logParam(RUN, 'optimizer', 'adam');
    await client.logParam(RUN, 'optimizer', 'adam');
    await expect(client.logParam(RUN, 'optimizer', 'sgd')).rejects.toBeInstanceOf(MlflowInvalidParameterValueError);
    expectSameRequest(0, fixture('19'));
    expectSameRequest(1, fixture('20'));
    expectSameRequest(2, fixture('21'));
  });

  it('22 a conflicting param inside log-batch is a typed error', async () => {
    server.answer(fixture('22'));
    await expect(client.logBatch(RUN, { params: { lr: '0.01' } })).rejects.toBeInstanceOf(MlflowInvalidParameterValueError);
    expectSameRequest(0, fixture('22'));
  });

  it('23/24/25 sets, overwrites and deletes tags', async () => {
    server.answer(fixture('23'), fixture('24'), fixture('25'));
    await client.setTag(RUN, 'note', 'hello');
    await client.setTag(RUN, 'note', 'hello again');
    await client.deleteTag(RUN, 'phase');
    expectSameRequest(0, fixture('23'));
    expectSameRequest(1, fixture('24'));
    expectSameRequest(2, fixture('25'));
  });

  it('26/27/28 missing runs: get gives undefined, logging gives RESOURCE_DOES_NOT_EXIST', async () => {
    const missing = '0123456789abcdef0123456789abcdef';
    server.answer(fixture('26'), fixture('27'), fixture('28'));
    await expect(client.getRun(missing)).resolves.toBeUndefined();
    await expect(client.logMetric(missing, { key: 'x', value: 1, timestamp: 1795311078969 })).rejects.toBeInstanceOf(MlflowResourceDoesNotExistError);
    await expect(client.logBatch(missing, { params: { a: 'b' } })).rejects.toBeInstanceOf(MlflowResourceDoesNotExistError);
    expectSameRequest(0, fixture('26'));
    expectSameRequest(1, fixture('27'));
    expectSameRequest(2, fixture('28'));
  });

  it('30 sends exactly 1000 metrics as the one recorded call', async () => {
    const body = fixture('30').request_body as { metrics: Array<{ key: string; value: number; timestamp: number; step: number }> };
    server.answer(fixture('30'));
    await expect(client.logBatch(RUN, { metrics: body.metrics })).resolves.toBe(1);
    expectSameRequest(0, fixture('30'));
  });

  it.each([
    ['29', 'metrics'],
    ['31', 'params'],
    ['32', 'tags'],
    ['33', 'all'],
  ])('%s chunks the recorded over-limit batch (%s) into calls within every limit, losing nothing', async (id) => {
    const body = fixture(id).request_body as { metrics?: Array<{ key: string; value: number; timestamp: number; step: number }>; params?: Array<{ key: string; value: string }>; tags?: Array<{ key: string; value: string }> };
    server.answer({ status: 200, body: {} }, { status: 200, body: {} });
    const calls = await client.logBatch(RUN, {
      metrics: body.metrics ?? [],
      params: Object.fromEntries((body.params ?? []).map((p) => [p.key, p.value])),
      tags: Object.fromEntries((body.tags ?? []).map((t) => [t.key, t.value])),
    });
    expect(calls).toBe(2);
    const sent = server.received.map((r) => r.json as { metrics?: unknown[]; params?: unknown[]; tags?: unknown[] });
    for (const s of sent) {
      expect(s.metrics?.length ?? 0).toBeLessThanOrEqual(1000);
      expect(s.params?.length ?? 0).toBeLessThanOrEqual(100);
      expect(s.tags?.length ?? 0).toBeLessThanOrEqual(100);
      expect((s.metrics?.length ?? 0) + (s.params?.length ?? 0) + (s.tags?.length ?? 0)).toBeLessThanOrEqual(1000);
    }
    expect(sent.flatMap((s) => s.metrics ?? [])).toEqual(body.metrics ?? []);
    expect(sent.flatMap((s) => s.params ?? [])).toEqual(body.params ?? []);
    expect(sent.flatMap((s) => s.tags ?? [])).toEqual(body.tags ?? []);
  });

  it.each(['29', '31', '32', '33', '34', '37', '38', '39'])('%s maps the recorded limit/key rejection to a typed error', async (id) => {
    server.answer(fixture(id));
    await expect(client.logBatch(RUN, { params: { a: 'b' } })).rejects.toBeInstanceOf(MlflowInvalidParameterValueError);
  });

  it('40 sends nothing for an empty batch', async () => {
    await expect(client.logBatch(RUN, {})).resolves.toBe(0);
    expect(server.received).toHaveLength(0);
  });

  it('45 a create the server accepts with unknown fields is the plain create (we never send extras)', async () => {
    server.answer(fixture('45'));
    await expect(client.createExperiment('ts-client-unknown-field')).resolves.toBe('2');
    expect(server.received[0]?.json).toEqual({ name: 'ts-client-unknown-field' });
  });

  it('48 sends int64 fields as JSON numbers (the server also takes strings) and reads either', async () => {
    const recorded = fixture('48').request_body as { run_id: string; key: string; value: number; timestamp: string; step: string };
    server.answer(fixture('48'));
    await client.logMetric(RUN, { key: 'str_ts', value: 2.5, timestamp: Number(recorded.timestamp), step: Number(recorded.step) });
    expect(server.received[0]?.json).toEqual({ ...recorded, timestamp: 1795311078969, step: 7 });
    server.received.length = 0;
    server.answer({ status: 200, body: { run: { info: { run_id: RUN, experiment_id: '1', status: 'RUNNING', start_time: '1795311078969' }, data: { metrics: [{ key: 'str_ts', value: 2.5, timestamp: '1795311078969', step: '7' }] } } } });
    const run = await client.getRun(RUN);
    expect(run?.info.startTime).toBe(1795311078969);
    expect(run?.metrics.str_ts).toEqual({ key: 'str_ts', value: 2.5, timestamp: 1795311078969, step: 7 });
  });

  it('52 finishes a run as recorded; 49 an ignored status change is reported, not swallowed', async () => {
    server.answer(fixture('52'));
    await expect(client.updateRun(RUN, { status: 'FINISHED', endTime: 1795311083969 })).resolves.toMatchObject({ status: 'FINISHED', endTime: 1795311083969 });
    expectSameRequest(0, fixture('52'));
    server.answer(fixture('49'));
    await expect(client.updateRun(RUN, { status: 'FINISHED' })).rejects.toBeInstanceOf(MlflowBadResponseError);
  });

  it('53 reads a full run: NaN back from "NaN", ±DBL_MAX as ±Infinity, params and tags', async () => {
    server.answer(fixture('53'));
    const run = await client.getRun(RUN);
    if (!run) throw new Error('run missing');
    expectSameRequest(0, fixture('53'));
    expect(run.info.status).toBe('FINISHED');
    expect(Number.isNaN(run.metrics.nan_metric?.value)).toBe(true);
    expect(run.metrics.inf_metric?.value).toBe(Infinity);
    expect(run.metrics.loss).toEqual({ key: 'loss', value: 0.125, timestamp: 1795311078972, step: 3 });
    expect(run.params.optimizer).toBe('adam');
    expect(run.params.long_val).toHaveLength(6000);
    expect(run.tags.note).toBe('hello again');
  });

  it('54/55/56 searches runs; no match is an empty list', async () => {
    server.answer(fixture('54'), fixture('55'), fixture('56'));
    const a = await client.searchRuns({ experimentIds: ['1'], filter: "params.lr = '0.001'", maxResults: 10, orderBy: ['attributes.start_time DESC'] });
    expect(a.runs.map((r) => r.info.runId)).toEqual([RUN]);
    await expect(client.searchRuns({ experimentIds: ['1'], filter: 'metrics.loss > 100' })).resolves.toEqual({ runs: [] });
    const c = await client.searchRuns({ experimentIds: ['1'], filter: "tags.source = 'ts-client' and attributes.status = 'FINISHED' and metrics.loss < 0.5" });
    expect(c.runs).toHaveLength(1);
    expectSameRequest(0, fixture('54'));
    expectSameRequest(1, fixture('55'));
    expectSameRequest(2, fixture('56'));
  });

  it('65 follows runs/search pages', async () => {
    server.answer(fixture('65'), { status: 200, body: { runs: [{ info: { run_id: 'second', experiment_id: '1' } }] } });
    const runs = await client.searchAllRuns({ experimentIds: ['1'], maxResults: 1 });
    expect(runs.map((r) => r.info.runId)).toEqual([RUN, 'second']);
    expectSameRequest(0, fixture('65'));
    expect((server.received[1]?.json as { page_token: string }).page_token).toBe((fixture('65').response_body as { next_page_token: string }).next_page_token);
  });

  it('60 always sends max_results=25000 for get-history and reads the full series', async () => {
    server.answer(fixture('60'));
    const history = await client.getMetricHistory(RUN, 'loss');
    expectSameRequest(0, fixture('60'));
    expect(history.map((p) => [p.step, p.value])).toEqual([[0, 0.9], [1, 0.5], [2, 0.25], [3, 0.125]]);
  });

  it('58 a server answering with the non-advancing token and no metrics does not loop', async () => {
    server.answer(fixture('58'));
    await expect(client.getMetricHistory(RUN, 'loss')).resolves.toEqual([]);
    expect(server.received).toHaveLength(1);
    expect(server.received[0]?.query.get('max_results')).toBe('25000');
  });

  it('59/61 pages get-history with the URL-encoded token', async () => {
    server.answer(fixture('59'), fixture('61'), { status: 200, body: { metrics: [{ key: 'bulk', value: 6, timestamp: 1795311078975, step: 6 }] } });
    const history = await client.getMetricHistory(RUN, 'bulk', { pageSize: 3 });
    expect(history.map((p) => p.step)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expectSameRequest(0, fixture('59'));
    expectSameRequest(1, fixture('61'));
  });

  it('62 an unknown metric key has an empty history', async () => {
    server.answer(fixture('62'));
    await expect(client.getMetricHistory(RUN, 'nope')).resolves.toEqual([]);
  });

  it('66/67/68/69 delete, log to a deleted run (typed error), search deleted, restore', async () => {
    const minimal = '325894c75d18461497f696b2a472fc68';
    server.answer(fixture('66'), fixture('67'), fixture('68'), fixture('69'));
    await client.deleteRun(minimal);
    await expect(client.logParam(minimal, 'a', 'b')).rejects.toBeInstanceOf(MlflowInvalidParameterValueError);
    const deleted = await client.searchRuns({ experimentIds: ['1'], runViewType: 'DELETED_ONLY' });
    expect(deleted.runs[0]?.info.lifecycleStage).toBe('deleted');
    await client.restoreRun(minimal);
    for (const [i, id] of ['66', '67', '68', '69'].entries()) expectSameRequest(i, fixture(id));
  });

  it('70/71/72/73 proxied artifacts: uploads go to mlflow-artifacts/artifacts/<uri path>/<file>', async () => {
    server.answer(fixture('70'), fixture('71'), fixture('72'), fixture('73'));
    await expect(client.createExperiment('ts-client-proxied', { artifactLocation: 'mlflow-artifacts:/ts-proxied' })).resolves.toBe('3');
    const run = await client.createRun({ experimentId: '3', startTime: 1795311078969, runName: 'proxied-run' });
    expect(run.info.artifactUri).toBe(PROXIED_URI);
    await client.uploadArtifact(run.info.artifactUri, 'hello.txt', Buffer.from('hello artifact\n'), 'text/plain');
    await client.uploadArtifact(run.info.artifactUri, 'dir/data.json', Buffer.from('{"a": 1}'));
    expectSameRequest(0, fixture('70'));
    expectSameRequest(1, fixture('71'));
    expect(server.received[2]?.url).toBe(fixture('72').path);
    expect(server.received[2]?.raw.toString()).toBe(fixture('72').request_body);
    expect(server.received[3]?.url).toBe(fixture('73').path);
    expect(server.received[3]?.raw.toString()).toBe(fixture('73').request_body);
  });

  it('75/76 downloads bytes; a missing artifact is INTERNAL_ERROR (500, retried, then typed)', async () => {
    server.answer(fixture('75'), fixture('76'), fixture('76'));
    await expect(client.downloadArtifact(PROXIED_URI, 'hello.txt').then((b) => b.toString())).resolves.toBe('hello artifact\n');
    await expect(client.downloadArtifact(PROXIED_URI, 'nope.txt')).rejects.toBeInstanceOf(MlflowInternalError);
    expect(server.received).toHaveLength(3);
    expect(sleeps).toHaveLength(1);
  });

  it('77/78 lists run artifacts (root only when empty)', async () => {
    server.answer(fixture('77'), fixture('78'));
    await expect(client.listArtifacts(PROXIED_RUN, '')).resolves.toEqual({
      rootUri: PROXIED_URI,
      files: [{ path: 'dir', isDir: true, size: undefined }, { path: 'hello.txt', isDir: false, size: 15 }],
    });
    await expect(client.listArtifacts(RUN)).resolves.toEqual({ rootUri: '/srv/mlflow/artifacts/1/fa8449d2e037429a8be4067d3789133e/artifacts', files: [] });
    expectSameRequest(0, fixture('77'));
    expectSameRequest(1, fixture('78'));
  });

  it('78 a plain-path artifact root cannot be uploaded over HTTP: a clear error, no request', () => {
    expect(() => client.proxyPath('/srv/mlflow/artifacts/1/x/artifacts')).toThrow(/not served through the MLflow artifact proxy/);
  });

  it.each([
    ['80', 'mlflow-endpoint-not-found', 404],
    ['81', 'mlflow-method-not-allowed', 405],
    ['51', 'mlflow-host-rejected', 403],
  ])('%s a non-MLflow error page becomes MlflowHttpError %s (never "does not exist")', async (id, code, status) => {
    server.answer(fixture(id));
    const error = await client.getExperimentByName('ts-client-fixtures').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MlflowHttpError);
    expect(error).not.toBeInstanceOf(MlflowApiError);
    expect(error).toMatchObject({ code, status });
    expect(server.received).toHaveLength(1);
  });

  it('82/83 creating a run in a deleted experiment is a typed error; get-or-create refuses a deleted name', async () => {
    server.answer(fixture('82'), fixture('83'));
    await client.deleteExperiment('3');
    await expect(client.createRun({ experimentId: '3', startTime: 1795311078969 })).rejects.toBeInstanceOf(MlflowInvalidParameterValueError);
    expectSameRequest(0, fixture('82'));
    expectSameRequest(1, fixture('83'));
    const deleted = JSON.parse(JSON.stringify(fixture('03'))) as RecordedExchange & { response_body: { experiment: { lifecycle_stage: string } } };
    deleted.response_body.experiment.lifecycle_stage = 'deleted';
    server.answer(deleted);
    await expect(client.getOrCreateExperiment('ts-client-fixtures')).rejects.toMatchObject({ code: 'experiment-deleted' });
  });

  it('84/85 health and version are plain text', async () => {
    server.answer(fixture('84'), fixture('85'));
    await expect(client.health()).resolves.toBe('OK');
    await expect(client.version()).resolves.toBe('3.6.1.dev0');
  });

  it('a 200 whose body is not MLflow JSON (a proxy login page) is mlflow-bad-response', async () => {
    server.answer({ status: 200, contentType: 'text/html', rawBody: '<html>login</html>' }, { status: 200, body: { experiment: { name: 'no id' } } });
    await expect(client.getExperimentByName('x')).rejects.toMatchObject({ code: 'mlflow-bad-response' });
    await expect(client.getExperimentByName('x')).rejects.toThrow(/unexpected JSON shape/);
  });
});

describe('MLflow REST tracker limits against the recorded server', () => {
  const logger = new MemoryLogger();
  const tracker = (): MlflowRestTracker => new MlflowRestTracker({ uri: server.uri, logger, retries: 0 });

  it('34/37/38 rejects over-long or invalid keys before sending anything', async () => {
    const t = tracker();
    await expect(t.logParams(RUN, { ['k'.repeat(251)]: 'v' })).rejects.toMatchObject({ code: 'invalid-key' });
    await expect(t.logMetrics(RUN, [{ key: 'm'.repeat(251), value: 1, step: 0, timestamp: 1 }])).rejects.toMatchObject({ code: 'invalid-key' });
    await expect(t.logParams(RUN, { 'bad key!': 'v' })).rejects.toMatchObject({ code: 'invalid-key' });
    expect(server.received).toHaveLength(0);
  });

  it('35/36 never lets the server cut a value: over-limit params and tags are uploaded whole as artifacts', async () => {
    const t = tracker();
    // The recorded over-limit values: the server answered 200 and kept only the first 6000/8000 characters.
    const param = (fixture('35').request_body as { params: Array<{ value: string }> }).params[0]?.value ?? '';
    const tag = (fixture('36').request_body as { tags: Array<{ value: string }> }).tags[0]?.value ?? '';
    expect([param.length, tag.length]).toEqual([6001, 8001]);
    server.answer(
      { status: 200, body: { run: { info: { run_id: PROXIED_RUN, experiment_id: '3', artifact_uri: PROXIED_URI, status: 'RUNNING' } } } },
      fixture('72'),
      fixture('40'),
      fixture('72'),
      fixture('40'),
    );
    await t.logParams(PROXIED_RUN, { long_val: param });
    await t.setTags(PROXIED_RUN, { long_tag: tag });
    const [get, putParam, listParam, putTag, listTag] = server.received;
    expect(get?.url).toBe(`/api/2.0/mlflow/runs/get?run_id=${PROXIED_RUN}`);
    expect(putParam?.url).toBe(`/api/2.0/mlflow-artifacts/artifacts/ts-proxied/${PROXIED_RUN}/artifacts/oversized/params/long_val.txt`);
    expect(putParam?.raw.toString()).toBe(param);
    expect(listParam?.json).toEqual({ run_id: PROXIED_RUN, tags: [{ key: 'milkit.params.oversized', value: 'long_val' }] });
    expect(putTag?.raw.toString()).toBe(tag);
    expect(listTag?.json).toEqual({ run_id: PROXIED_RUN, tags: [{ key: 'milkit.tags.oversized', value: 'long_tag' }] });
    // The value itself was never sent as a param or tag.
    expect(server.received.some((r) => JSON.stringify(r.json ?? '').includes(param.slice(0, 100)))).toBe(false);
  });

  it('sends bearer and basic credentials', async () => {
    const bearer = new MlflowRestClient({ uri: server.uri, token: 'tok-123456' });
    const basic = new MlflowRestClient({ uri: server.uri.replace('http://', 'http://user:p%40ss@') });
    server.answer(fixture('84'), fixture('84'));
    await bearer.health();
    await basic.health();
    expect(server.received[0]?.headers.authorization).toBe('Bearer tok-123456');
    expect(server.received[1]?.headers.authorization).toBe(`Basic ${Buffer.from('user:p@ss').toString('base64')}`);
    expect(basic.uri).toBe(server.uri);
  });
});

// Exchanges of endpoints milkit never calls (the UI's routes) or requests it never builds.
const NOT_REPLAYED: Readonly<Record<string, string>> = {
  '13-runs-log-metric-nan-literal': 'a bare NaN token is never produced (checked in the 12/14 case)',
  '74-mlflow-artifacts-list': 'milkit lists run artifacts through artifacts/list (77/78)',
  '79-get-artifact-run': "the UI's legacy download route",
  '86-graphql-get-experiment': "the UI's GraphQL endpoint",
};

describe('fixture coverage', () => {
  it('replays every recorded exchange except the documented few', () => {
    const missing = Object.keys(mlflowFixtures()).filter((name) => !usedFixtures.has(name) && !(name in NOT_REPLAYED));
    expect(missing).toEqual([]);
  });
});
