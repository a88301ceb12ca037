// "Did you mean" suggestions for unknown names (plugins, config keys, options).

/** Damerau-free Levenshtein distance. */
export function editDistance(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j += 1) prev[j] = j;
  for (let i = 1; i <= a.length; i += 1) {
    let diag = prev[0] as number;
    prev[0] = i;
    for (let j = 1; j <= b.length; j += 1) {
      const up = prev[j] as number;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      prev[j] = Math.min(up + 1, (prev[j - 1] as number) + 1, diag + cost);
      diag = up;
    }
  }
  return prev[b.length] as number;
}

/** The closest candidates to `name` (case-insensitive), best first; empty when nothing is close. */
export function suggest(name: string, candidates: readonly string[], max = 3): string[] {
  const lower = name.toLowerCase();
  const limit = Math.max(2, Math.floor(lower.length / 3));
  // A name that starts a candidate is an abbreviation of it (`acc` → accuracy, not auc), which beats a close typo.
  const abbreviates = (c: string): number => (lower.length >= 3 && c.toLowerCase().startsWith(lower) ? 0 : 1);
  return candidates
    .map((c) => ({ c, d: editDistance(lower, c.toLowerCase()) }))
    .filter(({ c, d }) => d <= limit || c.toLowerCase().startsWith(lower) || lower.startsWith(c.toLowerCase()))
    .sort((x, y) => abbreviates(x.c) - abbreviates(y.c) || x.d - y.d || x.c.localeCompare(y.c))
    .slice(0, max)
    .map(({ c }) => c);
}

/** ` Did you mean "x"?` or an empty string. */
export function didYouMean(name: string, candidates: readonly string[]): string {
  const best = suggest(name, candidates, 1)[0];
  return best === undefined ? '' : ` Did you mean "${best}"?`;
}
