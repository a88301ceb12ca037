import { describe, expect, it } from 'vitest';
import { ConfigError, DataError, MilkitError, renderError } from '../../src/core/errors.js';

describe('errors', () => {
  it('renders location, message and hint on one line, causes indented below', () => {
    const inner = new Error('EOF while reading dataset "features"');
    const error = new DataError('unreadable-h5', 'cannot read the feature file.', { where: { file: 'feats/TCGA-01.h5' }, hint: 'Re-extract it.', cause: inner });
    expect(renderError(error)).toBe(
      'error [unreadable-h5]: feats/TCGA-01.h5: cannot read the feature file. Re-extract it.\n  caused by: EOF while reading dataset "features"',
    );
  });

  it('maps classes to distinct exit codes', () => {
    expect(new ConfigError('x', 'm').exitCode).toBe(2);
    expect(new DataError('x', 'm').exitCode).toBe(4);
    expect(new MilkitError('x', 'm').exitCode).toBe(1);
  });

  it('joins file and key as "file › key"', () => {
    expect(new ConfigError('c', 'bad.', { where: { file: 'a.yaml', key: 'train.lr' } }).render()).toBe('a.yaml › train.lr: bad.');
  });
});
