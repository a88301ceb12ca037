// Secrets: values under keys matching /token|secret|password|key$/i and the values of secret environment
// variables never reach a tracking store — not as params, not as tags, not inside artifacts — local or server.
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { flattenParams, redactConfig, REDACTED } from '../../../src/core/tracking/index.js';
import { isSecretKeyPath, scrubSecrets, secretEnvExpressions, secretValuesFromEnv } from '../../../src/core/tracking/redact.js';
import { FakeMlflowServer } from '../../helpers/fake-mlflow-server.js';
import { fastSection, makeTracker, tempWorkspace } from '../../helpers/tracking-kit.js';

let cwd: string | undefined;
let server: FakeMlflowServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
  if (cwd) rmSync(cwd, { recursive: true, force: true });
  cwd = undefined;
});

function allFileText(dir: string): string {
  let out = '';
  for (const entry of readdirSync(dir)) {
    const full = path.join(dir, entry);
    out += `\n${entry}\n`;
    out += statSync(full).isDirectory() ? allFileText(full) : readFileSync(full, 'utf8');
  }
  return out;
}

const SECRETS = {
  apiKey: 'ak-7f3e9c1d2b',
  password: 'hunter2-but-longer',
  token: 'tok-env-5a6b7c8d9e',
  clientSecret: 'cs-0011223344',
};

describe('secret redaction', () => {
  it('matches the documented key pattern on any segment of a dotted path', () => {
    for (const key of ['data.auth.apiKey', 'tracking.token', 'db.password', 'db.passwd', 'storage.secretAccess', 'ssh_key', 'x.Secrets.y', 'AWS_ACCESS_KEY_ID_token', 'privateKey', 'client_key', 'x.credentials'])
      expect(isSecretKeyPath(key), key).toBe(true);
    // A bare "...Key" names array keys of data files, not credentials: hiding them made saved configs unusable.
    for (const key of ['model.aggregator.name', 'train.lr', 'data.keys', 'keyboard', 'split.fold', 'data.dataset.featuresKey', 'data.dataset.coordsKey', 'data.dataset.thumbsKey', 'monkey.see', 'sortKey'])
      expect(isSecretKeyPath(key), key).toBe(false);
  });

  it('writes a secret that came from ${env:VAR} back as that expression, and keeps data-file keys in clear', () => {
    const env = { MLFLOW_TRACKING_TOKEN: SECRETS.token, HOME: '/root', API_KEY: '123' };
    const expressions = secretEnvExpressions(env);
    expect(expressions).toEqual([{ value: SECRETS.token, expression: '${env:MLFLOW_TRACKING_TOKEN}' }]);
    const config = {
      data: { dataset: { featuresKey: 'features', coordsKey: 'coords', thumbsKey: 'thumbs' } },
      tracking: { uri: `https://mlflow.lab.org/?t=${SECRETS.token}`, note: SECRETS.token },
    };
    expect(redactConfig(config, '', expressions)).toEqual({
      data: { dataset: { featuresKey: 'features', coordsKey: 'coords', thumbsKey: 'thumbs' } },
      tracking: { uri: 'https://mlflow.lab.org/?t=${env:MLFLOW_TRACKING_TOKEN}', note: '${env:MLFLOW_TRACKING_TOKEN}' },
    });
  });

  it('flattenParams redacts secret values, keeps their keys, and copies nothing else', () => {
    const { params, oversized } = flattenParams({
      model: { aggregator: { name: 'abmil', attnDim: 128 } },
      data: { auth: { apiKey: SECRETS.apiKey, user: 'bob' }, secrets: { a: 1, b: 2 } },
      db: { password: SECRETS.password },
      tracking: { uri: `https://bob:${SECRETS.password}@mlflow.lab.org` },
    });
    expect(params).toEqual({
      'data.auth.apiKey': REDACTED,
      'data.auth.user': 'bob',
      'data.secrets': REDACTED,
      'db.password': REDACTED,
      'model.aggregator.attnDim': '128',
      'model.aggregator.name': 'abmil',
      'tracking.uri': `https://bob:${REDACTED}@mlflow.lab.org`,
    });
    expect(oversized).toEqual({});
    expect(redactConfig({ a: { token: 'x', list: [{ password: 'y', ok: 1 }] } })).toEqual({ a: { token: REDACTED, list: [{ password: REDACTED, ok: 1 }] } });
  });

  it('scrubs the values of secret environment variables, but not short or innocent ones', () => {
    const secrets = secretValuesFromEnv({ MLFLOW_TRACKING_TOKEN: SECRETS.token, MLFLOW_TRACKING_PASSWORD: SECRETS.password, HOME: '/root', API_KEY: '123', PATH: '/bin' });
    expect(secrets.sort()).toEqual([SECRETS.password, SECRETS.token].sort());
    expect(scrubSecrets(`url?t=${SECRETS.token}&p=${SECRETS.password}`, secrets)).toBe(`url?t=${REDACTED}&p=${REDACTED}`);
    expect(scrubSecrets('postgresql://u:pw9@db:5432/x and http://host/no-user', [])).toBe(`postgresql://u:${REDACTED}@db:5432/x and http://host/no-user`);
  });

  it('never writes a secret to the local store or the server: params, tags, run name, artifacts', async () => {
    const workspace = tempWorkspace();
    cwd = workspace;
    server = await new FakeMlflowServer().start();
    const env = { MLFLOW_TRACKING_TOKEN: SECRETS.token, MLFLOW_TRACKING_PASSWORD: SECRETS.password };
    const { tracker } = await makeTracker(workspace, fastSection(server.uri), env);
    const config = { model: { aggregator: { name: 'abmil' } }, data: { auth: { apiKey: SECRETS.apiKey } }, cloud: { clientSecret: SECRETS.clientSecret } };
    const run = await tracker.startRun({
      experimentName: 'secrets',
      runName: `run-${SECRETS.token}`,
      tags: { 'auth.token': SECRETS.token, note: `called with --password ${SECRETS.password}`, 'milkit.run_key': 'k-1' },
    });
    await tracker.logParams(run, flattenParams(config).params);
    // Params logged without flattenParams still pass the same filter.
    await tracker.logParams(run, { 'storage.accessKey': SECRETS.apiKey, endpoint: `https://x?token=${SECRETS.token}` });
    await tracker.setTags(run, { clientSecret: SECRETS.clientSecret });
    const resolved = path.join(workspace, 'config.resolved.yaml');
    writeFileSync(resolved, `tracking:\n  uri: https://u:${SECRETS.password}@host\nauth:\n  bearer: ${SECRETS.token}\n`);
    await tracker.logArtifact(run, resolved);
    await tracker.endRun(run, 'FINISHED');
    await tracker.flush();

    const local = allFileText(path.join(workspace, 'mlruns'));
    const remote = JSON.stringify([...server.runs.values()].map((r) => ({ name: r.runName, params: [...r.params], tags: [...r.tags] }))) + [...server.artifacts.values()].map((b) => b.toString()).join('\n');
    for (const [name, value] of Object.entries(SECRETS)) {
      expect(local, `${name} in the local store`).not.toContain(value);
      expect(remote, `${name} on the server`).not.toContain(value);
    }
    // What was logged says that something was there.
    expect(local).toContain(`run-${REDACTED}`);
    expect(remote).toContain(`["storage.accessKey","${REDACTED}"]`);
    expect(remote).toContain(`auth:\n  bearer: ${REDACTED}`);
    // The user's file itself is untouched.
    expect(readFileSync(resolved, 'utf8')).toContain(SECRETS.token);
  });
});
