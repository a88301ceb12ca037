// Multiple-comparison control across the rows of a table compared with one baseline row, and the ▲/▼/≈ mark
// each row gets from its adjusted p-value.

/**
 * Holm's step-down adjustment (Holm 1979): sorted ascending, p_(i) becomes max_{k≤i} min(1, (m − k + 1)·p_(k)).
 * Null entries (tests that could not be run) are kept null and do not count towards m.
 */
export function holmAdjust(pValues: readonly (number | null)[]): (number | null)[] {
  const present = pValues.map((p, index) => ({ p, index })).filter((e): e is { p: number; index: number } => e.p !== null && !Number.isNaN(e.p));
  const m = present.length;
  present.sort((a, b) => a.p - b.p || a.index - b.index);
  const adjusted: (number | null)[] = pValues.map(() => null);
  let running = 0;
  present.forEach((entry, rank) => {
    running = Math.max(running, Math.min(1, (m - rank) * entry.p));
    adjusted[entry.index] = running;
  });
  return adjusted;
}

export type SignificanceMark = '▲' | '▼' | '≈';

/** ▲ significantly higher than the baseline, ▼ significantly lower, ≈ no significant difference; null when untested. */
export function significanceMark(effect: number, adjustedP: number | null, alpha = 0.05): SignificanceMark | null {
  if (adjustedP === null || Number.isNaN(adjustedP) || Number.isNaN(effect)) return null;
  if (adjustedP >= alpha || effect === 0) return '≈';
  return effect > 0 ? '▲' : '▼';
}
