// Statistics for comparing models: distributions, the corrected resampled t-test, Holm, DeLong, the paired
// bootstrap, repeat summaries and the row-vs-baseline comparison of an ablation table.
export * from './cell-interval.js';
export * from './compare.js';
export * from './corrected-t-test.js';
export * from './delong.js';
export * from './distributions.js';
export * from './multiple-testing.js';
export * from './paired-bootstrap.js';
export * from './repeats.js';
export * from './report.js';
