// Every document a comment or doc cites must be in the repository: cited docs/…md files exist, cited anchors are
// headings of that file, and nothing points outside the checkout (docs/methods/README.md §citing-a-section).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repoRoot = normalize(join(dirname(fileURLToPath(import.meta.url)), '..', '..'));
const scannedRoots = ['src', 'plugins', 'test', 'experiments', 'docs', 'bin'];
const skippedDirs = new Set(['node_modules', 'fixtures', '.git']);
const hashCommentExts = new Set(['.py', '.sh', '.yaml', '.yml']);
const slashCommentExts = new Set(['.ts', '.mts', '.js', '.mjs', '.cjs']);

type Source = 'comment' | 'code' | 'markdown';

interface Problem {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

/** GitHub's heading slug: lower case, punctuation dropped (letters, digits, spaces, '-' and '_' kept), spaces to '-'. */
export function slugify(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/<[^>]*>/g, '')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** Anchors a Markdown file offers: heading slugs (with GitHub's -1, -2 suffixes for repeats) and explicit ids. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    if (fenced) continue;
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      const base = slugify(heading[1]!);
      const count = seen.get(base) ?? 0;
      anchors.add(count === 0 ? base : `${base}-${count}`);
      seen.set(base, count + 1);
    }
    for (const id of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(id[1]!);
  }
  return anchors;
}

/** Comment text of a source file, line by line (other text blanked), so code strings are not read as citations. */
export function commentLines(text: string, ext: string): string[] {
  const lines = text.split('\n');
  if (slashCommentExts.has(ext)) {
    // A small scanner: string literals are skipped ('…' and "…" end with their line, `…` may span lines).
    let state: 'code' | 'block' | "'" | '"' | '`' = 'code';
    return lines.map((line) => {
      let out = '';
      for (let i = 0; i < line.length; i += 1) {
        const ch = line[i]!;
        const pair = line.slice(i, i + 2);
        if (state === 'block') {
          if (pair === '*/') {
            state = 'code';
            i += 1;
          } else out += ch;
        } else if (state === 'code') {
          if (pair === '//') {
            out += line.slice(i + 2);
            break;
          }
          if (pair === '/*') {
            state = 'block';
            i += 1;
          } else if (ch === "'" || ch === '"' || ch === '`') state = ch;
        } else if (ch === '\\') i += 1;
        else if (ch === state) state = 'code';
      }
      if (state === "'" || state === '"') state = 'code';
      return out;
    });
  }
  if (hashCommentExts.has(ext)) {
    let inDocstring = false;
    return lines.map((line) => {
      if (ext === '.py') {
        const quotes = (line.match(/"""|'''/g) ?? []).length;
        if (inDocstring || quotes > 0) {
          if (quotes % 2 === 1) inDocstring = !inDocstring;
          return line;
        }
      }
      const hash = line.search(/(^|\s)#/);
      return hash < 0 ? '' : line.slice(hash);
    });
  }
  return lines.map(() => '');
}

const docPath = /(?<![\w/.-])((?:\.{1,2}\/)*[\w.-]+(?:\/[\w.-]+)*\.md)(?:#([\w-]+)|\s+§([\w-]+))?/g;
const outsidePath = /(?:\.\.\/)+shared\/|\bshared\/reference\b|(?<![\w.])\/work\//g;
// Issue numbers mean nothing to a reader of the repository: the reason must be written where it is needed.
const issueNumber = /\b(?:issue|ticket)s?\s+#?\d+\b|\bissue\s*#\d+/gi;

/** Problems of one file's text: cited .md files that do not resolve inside the repository, unknown anchors, outside paths. */
export function checkText(
  file: string,
  text: string,
  source: Source,
  exists: (repoPath: string) => string | undefined,
  outputNames: ReadonlySet<string> = new Set(),
): Problem[] {
  const problems: Problem[] = [];
  const lines = source === 'markdown' ? text.split('\n') : commentLines(text, extname(file));
  const fullLines = text.split('\n');
  const report = (line: number, message: string): void => {
    problems.push({ file, line: line + 1, message });
  };
  const checkRef = (line: number, target: string, anchor: string | undefined, requireDocs: boolean): void => {
    if (requireDocs && !target.startsWith('docs/')) return;
    if (outputNames.has(target)) return;
    const candidates = [normalize(join(dirname(file), target)), normalize(target)];
    const inside = candidates.filter((c) => !c.startsWith('..') && !c.startsWith(sep));
    const found = inside.map((c) => ({ path: c, text: exists(c) })).find((c) => c.text !== undefined);
    if (!found) {
      report(line, `cites ${target}, which is not a file in the repository (cite docs/… documents only)`);
      return;
    }
    if (anchor !== undefined && !anchorsOf(found.text!).has(anchor.toLowerCase())) {
      report(line, `cites ${target}#${anchor}, but ${found.path} has no heading with that anchor`);
    }
  };
  lines.forEach((line, index) => {
    for (const match of line.matchAll(docPath)) checkRef(index, match[1]!, match[2] ?? match[3], false);
    for (const match of line.matchAll(outsidePath)) {
      report(index, `cites a path outside the repository (${match[0]}); cite a document under docs/ instead`);
    }
    for (const match of line.matchAll(issueNumber)) {
      report(index, `cites an issue number (${match[0]}); say the reason itself or cite a document under docs/`);
    }
  });
  if (source === 'code') {
    // Code strings (error messages, help texts) may point users at docs/: those must exist too.
    fullLines.forEach((line, index) => {
      if (lines[index]!.length > 0) return;
      for (const match of line.matchAll(docPath)) checkRef(index, match[1]!, match[2] ?? match[3], true);
    });
  }
  return problems;
}

function* repoFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(join(repoRoot, dir))) {
    if (skippedDirs.has(entry)) continue;
    const path = join(dir, entry);
    if (statSync(join(repoRoot, path)).isDirectory()) yield* repoFiles(path);
    else yield path;
  }
}

function scannedFiles(): string[] {
  const files = readdirSync(repoRoot).filter((f) => f.endsWith('.md'));
  for (const root of scannedRoots) if (existsSync(join(repoRoot, root))) files.push(...repoFiles(root));
  // This file's own examples of bad references are deliberate.
  const self = relative(repoRoot, fileURLToPath(import.meta.url));
  return files.filter((f) => f !== self && ['.md', ...slashCommentExts, ...hashCommentExts].includes(extname(f)));
}

function readRepoFile(repoPath: string): string | undefined {
  const full = join(repoRoot, repoPath);
  if (!existsSync(full) || !statSync(full).isFile()) return undefined;
  return readFileSync(full, 'utf8');
}

/** Bare .md names that milkit itself writes (string literals in src/, e.g. a sweep's table.md): outputs, not citations. */
function outputFileNames(files: readonly string[]): Set<string> {
  const names = new Set<string>();
  for (const file of files.filter((f) => f.startsWith(`src${sep}`) && extname(f) === '.ts')) {
    for (const match of readFileSync(join(repoRoot, file), 'utf8').matchAll(/['"`]([\w.-]+\.md)['"`]/g)) names.add(match[1]!);
  }
  return names;
}

describe('document references', () => {
  it('every cited document and anchor exists in the repository, and nothing cites a path outside it', () => {
    const files = scannedFiles();
    const outputs = outputFileNames(files);
    expect(files.length).toBeGreaterThan(100);
    expect(files).toContain(join('docs', 'methods', 'hdmil.md'));
    const problems = files.flatMap((file) =>
      checkText(file, readFileSync(join(repoRoot, file), 'utf8'), extname(file) === '.md' ? 'markdown' : 'code', readRepoFile, outputs),
    );
    expect(problems.map((p) => `${p.file}:${p.line}: ${p.message}`)).toEqual([]);
  });

  it('the method notes cover every method family the code cites, and the index lists every note', () => {
    const notes = ['conventions', 'hdmil', 'abmil', 'pooling', 'clam', 'transmil', 'dsmil', 'dtfd-mil', 'mhim-mil', 'hmil', 'training', 'datasets', 'metrics', 'pitfalls', 'state-dict-keys', 'mlflow'];
    for (const name of notes) expect(readRepoFile(join('docs', 'methods', `${name}.md`)), name).toBeDefined();
    const index = readRepoFile(join('docs', 'methods', 'README.md')) ?? '';
    const present = readdirSync(join(repoRoot, 'docs', 'methods')).filter((f) => f.endsWith('.md') && f !== 'README.md');
    for (const file of present) expect(index, `docs/methods/README.md should list ${file}`).toContain(`](${file})`);
  });
});

describe('the reference checker itself', () => {
  const docs: Record<string, string> = {
    [join('docs', 'methods', 'hdmil.md')]: '# HDMIL\n\n## LIPN training\n\n```\n# not a heading\n```\n\n## Keep rate\n## Keep rate\n',
    [join('docs', 'zoo.md')]: '# Zoo\n\n## Checkpoint exchange\n',
  };
  const exists = (path: string): string | undefined => docs[path];
  const messages = (file: string, text: string, source: Source = 'code'): string[] =>
    checkText(file, text, source, exists).map((p) => `${p.line}: ${p.message}`);

  it('accepts references that resolve to a file and a heading', () => {
    expect(messages('src/a.ts', '// see docs/methods/hdmil.md#lipn-training and docs/zoo.md\nconst x = 1;\n')).toEqual([]);
    expect(messages('src/a.ts', '/**\n * Implements: docs/methods/hdmil.md#keep-rate-1 (repeat)\n */\n')).toEqual([]);
    expect(messages('test/reference/x.py', '"""Reference of docs/methods/hdmil.md#keep-rate."""\nx = 1  # docs/zoo.md §checkpoint-exchange\n')).toEqual([]);
    expect(messages(join('docs', 'methods', 'clam.md'), 'See [HDMIL](hdmil.md#lipn-training) and [zoo](../zoo.md).\n', 'markdown')).toEqual([]);
  });

  it('rejects a missing file, a missing anchor, a numbered section and a path outside the repository', () => {
    expect(messages('src/a.ts', '// CKA (methods.md §1.4)\n')).toEqual([
      '1: cites methods.md, which is not a file in the repository (cite docs/… documents only)',
    ]);
    expect(messages('src/a.ts', '// docs/methods/hdmil.md#not-a-heading\n')[0]).toMatch(/has no heading with that anchor/);
    expect(messages('src/a.ts', '// docs/methods/hdmil.md §1.11\n')[0]).toMatch(/has no heading with that anchor/);
    expect(messages('src/a.ts', '// docs/methods/hdmil.md#not-a-heading-in-a-code-fence\n')).toHaveLength(1);
    expect(messages('src/a.ts', '// docs/methods/gone.md#x\n')[0]).toMatch(/not a file in the repository/);
    expect(messages('plugins/p.ts', '/**\n * API: ecosystem.md §2.3\n */\n')[0]).toMatch(/ecosystem\.md, which is not a file/);
    expect(checkText('docs/sweeps.md', '| `table.md` | the table |\n', 'markdown', exists, new Set(['table.md']))).toEqual([]);
    expect(messages('test/s.sh', '# following /work/shared/reference/slurm-local.md\n')).toHaveLength(2);
    expect(messages('README.md', 'conventions from `../shared/reference/style.md`\n', 'markdown')).toHaveLength(2);
    expect(messages(join('docs', 'methods', 'hdmil.md'), '[gone](missing.md)\n', 'markdown')).toHaveLength(1);
    expect(messages('src/a.ts', '// added for issue 14 (see Issue #7)\n')).toHaveLength(2);
    expect(messages('README.md', 'A known issue: resume is per fold; 3 issues remain.\n', 'markdown')).toEqual([]);
  });

  it('reads comments, not code, except that docs/ paths in strings must exist', () => {
    expect(messages('test/a.test.ts', "writeFileSync(join(dir, 'notes.md'), '');\nconst url = 'https://x.org/a/README.md';\n")).toEqual([]);
    expect(messages('test/a.mjs', "const source = process.argv[2] ?? '/work/shared/fixtures';\n")).toEqual([]);
    expect(messages('src/g.ts', "const glob = 'src/**/*.ts';\nconst note = 'notes.md'; // see methods.md\n")).toEqual([
      '2: cites methods.md, which is not a file in the repository (cite docs/… documents only)',
    ]);
    expect(messages('src/e.ts', "throw new ConfigError('see docs/config.md#errors');\n")[0]).toMatch(/not a file in the repository/);
    expect(messages('src/e.ts', "throw new ConfigError('see docs/zoo.md#nope');\n")[0]).toMatch(/no heading with that anchor/);
    expect(messages('x.yaml', 'key: 1  # (methods.md §6.8)\nother: "a#b"\n')).toHaveLength(1);
  });

  it('slugs headings the way GitHub does', () => {
    expect(slugify('LIPN architecture')).toBe('lipn-architecture');
    expect(slugify('ABMIL on WSI features')).toBe('abmil-on-wsi-features');
    expect(slugify('Native BLAS for the wasm backend (full speed)')).toBe('native-blas-for-the-wasm-backend-full-speed');
    expect(slugify('`milkit runs`: looking at runs')).toBe('milkit-runs-looking-at-runs');
    expect([...anchorsOf(docs[join('docs', 'methods', 'hdmil.md')]!)]).toEqual(['hdmil', 'lipn-training', 'keep-rate', 'keep-rate-1']);
  });
});
