// `milkit extract`: a cohort of slides → one CLAM-layout feature file per slide in <out>/h5_files/, and
// <out>/process_list.csv saying per slide what happened. Finished slides are skipped on a re-run (their file
// exists; --force redoes them); each file is written under a temporary name and renamed, so a killed run leaves
// no half-written .h5; a slide that fails is recorded and the others go on. Slides run in this process one after
// another, or in parallel as executor jobs (local worker processes or a Slurm array) of kind `extract-slide`
// (docs/slides.md#feature-extraction).
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { writeFileDurably } from '../io/disk.js';
import { serialWrites } from '../io/serial-writes.js';
import { ConfigError, DataError, MilkitError, renderError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Registry } from '../../registry/registry.js';
import type { Executor, ExecutorJob, WorkerCommand } from '../../registry/contracts/executor.js';
import type { SlideOpener } from '../slides/reader.js';
import type { TissueDetector } from '../slides/tissue.js';
import type { Progress } from '../engine/progress.js';
import type { FeatureExtractor } from './extractor.js';
import { readFeatureFileAttributes } from './feature-file.js';
import { extractSlide, type PatchingOptions } from './pipeline.js';

/** `{ name, ...options }` of a plugin slot. */
export type PluginRef = Readonly<Record<string, unknown>> & { readonly name: string };

export interface SlideEntry {
  readonly slideId: string;
  /** Absolute path of the slide file. */
  readonly file: string;
}

/** Everything a process needs to extract any slide of the cohort (written to disk for executor workers). */
export interface ExtractSpec {
  readonly version: 1;
  /** Absolute output folder: h5_files/, process_list.csv, .extract/ (executor state). */
  readonly outDir: string;
  readonly cwd: string;
  readonly reader: PluginRef;
  readonly detector: PluginRef;
  readonly extractor: PluginRef;
  readonly patching: PatchingOptions;
  readonly slides: readonly SlideEntry[];
}

export type SlideStatus = 'extracted' | 'existing' | 'failed' | 'pending';

export interface ProcessRow {
  readonly slideId: string;
  readonly file: string;
  status: SlideStatus;
  patches: number | undefined;
  seconds: number | undefined;
  error: string;
}

/** File extensions of the slide formats OpenSlide reads, for `milkit extract FOLDER`. */
export const SLIDE_EXTENSIONS = ['.svs', '.tif', '.tiff', '.ndpi', '.vms', '.vmu', '.scn', '.mrxs', '.svslide', '.bif'];

export function featureFilePath(outDir: string, slideId: string): string {
  return path.join(outDir, 'h5_files', `${slideId}.h5`);
}

export function processListPath(outDir: string): string {
  return path.join(outDir, 'process_list.csv');
}

const slideIdOf = (file: string): string => path.basename(file).replace(/\.[^.]+$/, '');

/**
 * The slides named on the command line: slide files, folders (every slide file inside, sorted), or a slide table
 * CSV with `slide_id` and `slide_file` (relative to the CSV's folder; `milkit data slides` writes one).
 */
export async function listSlides(inputs: readonly string[], cwd: string): Promise<SlideEntry[]> {
  const slides: SlideEntry[] = [];
  for (const input of inputs) {
    const target = path.resolve(cwd, input);
    let info;
    try {
      info = await stat(target);
    } catch {
      throw new ConfigError('missing-input', 'slide file, folder or slide table not found.', { where: { file: target }, hint: 'Pass slide files, a folder of slides, or a CSV with slide_id and slide_file columns.' });
    }
    if (info.isDirectory()) {
      const names = (await readdir(target)).filter((n) => SLIDE_EXTENSIONS.includes(path.extname(n).toLowerCase())).sort();
      if (names.length === 0) throw new ConfigError('no-slides', `no slide files (${SLIDE_EXTENSIONS.join(', ')}) in the folder.`, { where: { file: target } });
      for (const name of names) slides.push({ slideId: slideIdOf(name), file: path.join(target, name) });
    } else if (path.extname(target).toLowerCase() === '.csv') {
      const rows = parseCsv(await readFile(target, 'utf8'), { columns: true, skip_empty_lines: true, trim: true }) as Array<Record<string, string>>;
      const column = ['slide_file', 'slide_path', 'path'].find((c) => rows[0]?.[c] !== undefined);
      if (!column || rows[0]?.slide_id === undefined) {
        throw new ConfigError('bad-slide-table', 'the slide table needs a slide_id column and a slide_file (or slide_path) column.', { where: { file: target }, hint: '`milkit data slides` writes such a table; add a slide_file column with paths relative to the CSV.' });
      }
      for (const row of rows) slides.push({ slideId: row.slide_id as string, file: path.resolve(path.dirname(target), row[column] as string) });
    } else {
      slides.push({ slideId: slideIdOf(target), file: target });
    }
  }
  const seen = new Map<string, string>();
  for (const slide of slides) {
    const other = seen.get(slide.slideId);
    if (other !== undefined && other !== slide.file) throw new ConfigError('duplicate-slide-id', `slide id "${slide.slideId}" names two files: ${other} and ${slide.file}.`, { hint: 'Slide ids name the output files; rename one slide or use a slide table.' });
    seen.set(slide.slideId, slide.file);
  }
  return slides.filter((slide, i) => slides.findIndex((s) => s.slideId === slide.slideId) === i);
}

/** The plugins one process uses for every slide it extracts. */
export interface ExtractTools {
  readonly opener: SlideOpener;
  readonly detector: TissueDetector;
  readonly extractor: FeatureExtractor;
}

export async function createExtractTools(registry: Registry, spec: Pick<ExtractSpec, 'reader' | 'detector' | 'extractor' | 'cwd'>, logger: Logger): Promise<ExtractTools> {
  const ctx = { logger };
  const opener = registry.create(await registry.resolve('slide-reader', spec.reader, { key: 'reader' }), ctx);
  const detector = registry.create(await registry.resolve('tissue-detector', spec.detector, { key: 'detector' }), ctx);
  const extractor = await registry.create(await registry.resolve('feature-extractor', spec.extractor, { key: 'extractor' }), { logger, baseDir: spec.cwd, key: 'extractor' });
  return { opener, detector, extractor };
}

/** One line of an error for the process list (the CSV keeps it on one row). */
function oneLine(error: unknown): string {
  return renderError(error).replace(/\s*\n\s*/g, ' | ').trim();
}

export interface SlideOutcome {
  readonly status: 'extracted' | 'failed';
  readonly patches: number;
  readonly seconds: number;
  readonly error: string;
}

/** Extracts one slide; failures are returned (with the error on one line), never thrown. */
export async function extractOneSlide(tools: ExtractTools, spec: ExtractSpec, slide: SlideEntry, logger: Logger, onPatches?: (done: number, total: number) => void): Promise<SlideOutcome> {
  const started = performance.now();
  const outFile = featureFilePath(spec.outDir, slide.slideId);
  await removePartials(outFile);
  try {
    const reader = await tools.opener.open(slide.file);
    try {
      const result = await extractSlide(reader, outFile, spec.patching, { detector: tools.detector, extractor: tools.extractor, logger, ...(onPatches ? { onPatches } : {}) });
      return { status: 'extracted', patches: result.patches, seconds: (performance.now() - started) / 1000, error: '' };
    } finally {
      await reader.close();
    }
  } catch (error) {
    return { status: 'failed', patches: 0, seconds: (performance.now() - started) / 1000, error: oneLine(error) };
  }
}

/** Temporary files a killed run left for this slide (`<id>.h5.<pid>.partial`). */
async function removePartials(outFile: string): Promise<void> {
  const dir = path.dirname(outFile);
  const prefix = `${path.basename(outFile)}.`;
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith(prefix) && n.endsWith('.partial')).map((n) => rm(path.join(dir, n), { force: true })));
}

export async function writeProcessList(outDir: string, rows: readonly ProcessRow[]): Promise<void> {
  const records = [
    ['slide_id', 'slide_file', 'status', 'patches', 'seconds', 'error'],
    ...rows.map((r) => [r.slideId, r.file, r.status, r.patches === undefined ? '' : String(r.patches), r.seconds === undefined ? '' : r.seconds.toFixed(2), r.error]),
  ];
  await writeFileDurably(processListPath(outDir), stringify(records), { action: 'write the process list' });
}

export interface RunExtractionDeps {
  readonly registry: Registry;
  readonly logger: Logger;
  readonly progress: Progress;
  /** Redo slides whose feature file exists. */
  readonly force: boolean;
  /** Run the slides as executor jobs instead of in this process. */
  readonly executor?: { readonly executor: Executor; readonly worker: WorkerCommand; readonly signal?: AbortSignal };
}

export interface ExtractionReport {
  readonly rows: readonly ProcessRow[];
  readonly processList: string;
}

/** Extracts every slide of `spec` not already done; throws a DataError at the end when any slide failed. */
export async function runExtraction(spec: ExtractSpec, deps: RunExtractionDeps): Promise<ExtractionReport> {
  await mkdir(path.join(spec.outDir, 'h5_files'), { recursive: true });
  const rows: ProcessRow[] = [];
  for (const slide of spec.slides) {
    const file = featureFilePath(spec.outDir, slide.slideId);
    const row: ProcessRow = { slideId: slide.slideId, file: slide.file, status: 'pending', patches: undefined, seconds: undefined, error: '' };
    if (!deps.force && existsSync(file)) {
      row.status = 'existing';
      row.patches = await readFeatureFileAttributes(file).then((a) => a.patches, () => undefined);
    }
    rows.push(row);
  }
  const todo = rows.filter((r) => r.status === 'pending');
  // The plugins are built before anything is written, so a bad option (a missing model file) fails at once with its
  // own error instead of once per slide. With an executor this process only checks them; the workers build their own.
  const tools = todo.length > 0 ? await createExtractTools(deps.registry, spec, deps.logger) : undefined;
  if (tools && deps.executor) await tools.extractor.close();
  await writeProcessList(spec.outDir, rows);
  const skipped = rows.length - todo.length;
  if (skipped > 0) deps.logger.info(`${skipped} slide(s) already extracted in ${path.join(spec.outDir, 'h5_files')}: skipped (--force redoes them).`);
  const bar = deps.progress.bar('slides', todo.length, 'slides');
  let finished = 0;
  // Executor outcomes arrive concurrently: writes of the list are queued (serial-writes.ts).
  const saveList = serialWrites(() => writeProcessList(spec.outDir, rows));
  const record = async (row: ProcessRow, outcome: SlideOutcome): Promise<void> => {
    row.status = outcome.status;
    row.patches = outcome.patches;
    row.seconds = outcome.seconds;
    row.error = outcome.error;
    finished += 1;
    bar.update(finished, `${row.slideId}: ${outcome.status === 'failed' ? 'FAILED' : `${outcome.patches} patches`}`);
    if (outcome.status === 'failed') deps.progress.log(`${row.slideId}: failed: ${outcome.error}`);
    await saveList();
  };
  try {
    if (deps.executor && todo.length > 0) await runOnExecutor(spec, todo, deps.executor, record);
    else if (tools) {
      try {
        for (const row of todo) {
          const slide = { slideId: row.slideId, file: row.file };
          const outcome = await extractOneSlide(tools, spec, slide, deps.logger, (done, total) => bar.update(finished + (total > 0 ? done / total : 0), `${row.slideId}: ${done}/${total} patches`));
          await record(row, outcome);
        }
      } finally {
        await tools.extractor.close();
      }
    }
  } finally {
    bar.stop();
    deps.progress.stop();
  }
  const failed = rows.filter((r) => r.status === 'failed');
  const list = processListPath(spec.outDir);
  if (failed.length > 0) {
    throw new DataError('extract-failed', `${failed.length} of ${rows.length} slide(s) failed (${failed.map((r) => r.slideId).join(', ')}); the others were extracted. The process list has each error.`, {
      where: { file: list },
      hint: 'Fix or remove the failed slides and run the same command again: finished slides are skipped.',
    });
  }
  return { rows, processList: list };
}

// ---- executor jobs (`milkit worker` with a manifest of job kind `extract-slide`) ----

/** The job kind executors' workers hand to runExtractSlideJob. */
export const EXTRACT_JOB_KIND = 'extract-slide';

async function runOnExecutor(spec: ExtractSpec, todo: readonly ProcessRow[], run: NonNullable<RunExtractionDeps['executor']>, record: (row: ProcessRow, outcome: SlideOutcome) => Promise<void>): Promise<void> {
  const stateDir = path.join(spec.outDir, '.extract');
  const specText = `${JSON.stringify(spec, null, 2)}\n`;
  const specHash = createHash('sha256').update(specText).digest('hex').slice(0, 12);
  const specPath = path.join(stateDir, `spec-${specHash}.json`);
  await mkdir(stateDir, { recursive: true });
  await writeFileDurably(specPath, specText, { action: 'write the extraction spec' });
  const jobs = todo.map((row, index) => {
    const id = createHash('sha256').update(`${specHash}\0${row.slideId}`).digest('hex').slice(0, 16);
    return { index, id, fold: 0, label: row.slideId, overrides: [`slide=${row.slideId}`], dir: path.join('jobs', id) };
  });
  // These slides have no feature file (or --force): results of earlier attempts must not mark them done.
  await Promise.all(jobs.map((job) => rm(path.join(stateDir, job.dir, 'result.json'), { force: true })));
  const manifest = { version: 1, sweep: 'extract', jobKind: EXTRACT_JOB_KIND, experimentFile: specPath, cwd: spec.cwd, lockStaleMs: 600_000, jobs };
  const manifestText = `${JSON.stringify(manifest, null, 2)}\n`;
  const manifestPath = path.join(stateDir, `manifest-${createHash('sha256').update(manifestText).digest('hex').slice(0, 12)}.json`);
  await writeFileDurably(manifestPath, manifestText, { action: 'write the job manifest' });
  const executorJobs: ExecutorJob[] = jobs.map((job) => {
    const dir = path.join(stateDir, job.dir);
    return { index: job.index, id: job.id, label: job.label, resultPath: path.join(dir, 'result.json'), errorPath: path.join(dir, 'error.json'), logPath: path.join(dir, 'log.txt') };
  });
  const recorded: Array<Promise<void>> = [];
  await run.executor.run(
    { name: 'extract', stateDir, manifestPath, jobs: executorJobs, worker: run.worker, cwd: spec.cwd, ...(run.signal ? { signal: run.signal } : {}) },
    {
      onDone: (outcome) => {
        const row = todo[outcome.index] as ProcessRow;
        const job = executorJobs[outcome.index] as ExecutorJob;
        recorded.push((async () => {
          if (outcome.status === 'succeeded') {
            const result = JSON.parse(await readFile(job.resultPath, 'utf8')) as { metrics?: { patches?: number; seconds?: number } };
            await record(row, { status: 'extracted', patches: result.metrics?.patches ?? 0, seconds: result.metrics?.seconds ?? 0, error: '' });
          } else {
            await record(row, { status: 'failed', patches: 0, seconds: 0, error: (outcome.error ?? `job ${outcome.status}`).replace(/\s*\n\s*/g, ' | ') });
          }
        })());
      },
    },
  );
  // Outcomes the executor never reported (an abort) stay `pending` in the process list.
  await Promise.all(recorded);
}

const toolCache = new Map<string, Promise<ExtractTools>>();

/** Payload fields of a worker job (the sweep's JobPayload shape: the spec is the "experiment file"). */
export interface ExtractJobPayload {
  readonly id: string;
  readonly experimentFile: string;
  readonly overrides: readonly string[];
  readonly outDir: string;
}

/**
 * Runs one `extract-slide` job in a worker: the slide named by the `slide=<id>` override of the spec file. Tools
 * are kept per spec, so a long-lived worker (`--serve`) loads the encoder once. A failed slide throws, so the
 * worker writes error.json and the parent records the error.
 */
export async function runExtractSlideJob(payload: ExtractJobPayload, deps: { registry: Registry; logger: Logger }): Promise<{ id: string; fold: number; metrics: Record<string, number>; secondsPerSlide: number; epochs: number }> {
  const spec = JSON.parse(await readFile(payload.experimentFile, 'utf8')) as ExtractSpec;
  const slideId = payload.overrides.find((o) => o.startsWith('slide='))?.slice('slide='.length);
  const slide = spec.slides.find((s) => s.slideId === slideId);
  if (!slide) throw new ConfigError('unknown-slide', `extract job ${payload.id}: the spec lists no slide "${slideId ?? ''}".`, { where: { file: payload.experimentFile } });
  let tools = toolCache.get(payload.experimentFile);
  if (!tools) {
    tools = createExtractTools(deps.registry, spec, deps.logger);
    toolCache.set(payload.experimentFile, tools);
  }
  const outcome = await extractOneSlide(await tools, spec, slide, deps.logger);
  if (outcome.status === 'failed') throw new MilkitError('slide-failed', outcome.error);
  deps.logger.info(`${slide.slideId}: ${outcome.patches} patches in ${outcome.seconds.toFixed(1)} s`);
  return { id: payload.id, fold: 0, metrics: { patches: outcome.patches, seconds: outcome.seconds }, secondsPerSlide: outcome.seconds, epochs: 0 };
}
