import { describe, expect, it } from 'vitest';
import { didYouMean, editDistance, suggest } from '../../../src/core/util/suggest.js';

describe('suggest', () => {
  it('computes edit distances', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('abmil', 'abmil')).toBe(0);
  });

  it('prefers the candidate a name abbreviates over a closer typo', () => {
    expect(suggest('acc', ['auc', 'accuracy', 'balanced-accuracy'], 2)).toEqual(['accuracy', 'auc']);
    expect(didYouMean('acc', ['auc', 'accuracy'])).toBe(' Did you mean "accuracy"?');
  });

  it('ranks typos by distance, case-insensitively, and stays quiet when nothing is close', () => {
    expect(suggest('ABMLI', ['abmil', 'clam-sb', 'transmil'], 3)).toEqual(['abmil']);
    expect(suggest('modle/aggregator', ['model/aggregator', 'model/classifier'], 1)).toEqual(['model/aggregator']);
    expect(suggest('zzz', ['abmil', 'dsmil'])).toEqual([]);
    // Two letters are too few to count as an abbreviation: plain distance decides.
    expect(suggest('ac', ['auc', 'accuracy'], 1)).toEqual(['auc']);
  });
});
