// Packs the MLflow REST recordings (86 exchanges with a real MLflow 3.6.1.dev0 server, see
// docs/methods/mlflow.md#server-behaviour) into one gzip file the contract tests replay, so CI needs neither the
// shared folder nor a server. Run: node test/reference/mlflow-fixtures-bundle.mjs [source-dir]
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const source = process.argv[2] ?? '/work/shared/mlflow-fixtures';
const bundle = { source: 'MLflow 3.6.1.dev0 (upstream 046e2116), mlflow server --serve-artifacts, SQLite backend', exchanges: {} };
for (const file of readdirSync(source).filter((f) => f.endsWith('.json')).sort()) {
  bundle.exchanges[file.replace(/\.json$/, '')] = JSON.parse(readFileSync(join(source, file), 'utf8'));
}
const out = new URL('./fixtures/mlflow-fixtures.json.gz', import.meta.url);
writeFileSync(out, gzipSync(JSON.stringify(bundle), { level: 9 }));
console.log(`${Object.keys(bundle.exchanges).length} exchanges → ${out.pathname}`);
