import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/errors.js';
import { expandSweep, formatOverride, formatValue, parseOverride, typeScalar } from '../../../src/core/config/overrides.js';

describe('parseOverride: forms', () => {
  it.each([
    ['a.b=1', { kind: 'set', key: 'a.b', target: 'config', path: ['a', 'b'], value: 1 }],
    ['+a.b=x', { kind: 'add', key: 'a.b', target: 'config', path: ['a', 'b'], value: 'x' }],
    ['++a.b=2.5', { kind: 'force-add', key: 'a.b', target: 'config', path: ['a', 'b'], value: 2.5 }],
    ['~a.b', { kind: 'delete', key: 'a.b', target: 'config', path: ['a', 'b'] }],
    ['~a.b=3', { kind: 'delete', key: 'a.b', target: 'config', path: ['a', 'b'], value: 3 }],
    ['~a.b=', { kind: 'delete', key: 'a.b', target: 'config', path: ['a', 'b'] }],
    ['model/aggregator=clam-mb', { kind: 'set', key: 'model/aggregator', target: 'group', path: ['model', 'aggregator'], value: 'clam-mb' }],
    ['+experiment=table3', { kind: 'add', key: 'experiment', target: 'either', path: ['experiment'], value: 'table3' }],
    ['~model/aggregator', { kind: 'delete', key: 'model/aggregator', target: 'group', path: ['model', 'aggregator'] }],
    ['~data', { kind: 'delete', key: 'data', target: 'either', path: ['data'] }],
    ['db@backup=mysql', { kind: 'set', key: 'db', target: 'group', path: ['db'], package: 'backup', value: 'mysql' }],
    ['db@=mysql', { kind: 'set', key: 'db', target: 'group', path: ['db'], package: '', value: 'mysql' }],
    ['seed=7', { kind: 'set', key: 'seed', target: 'either', path: ['seed'], value: 7 }],
    ['items[0]=x', { kind: 'set', key: 'items[0]', target: 'config', path: ['items', 0], value: 'x' }],
    ['items[-1].a=x', { kind: 'set', key: 'items[-1].a', target: 'config', path: ['items', -1, 'a'], value: 'x' }],
    ['obj[20s_labels]=x', { kind: 'set', key: 'obj[20s_labels]', target: 'config', path: ['obj', '20s_labels'], value: 'x' }],
    ['x.20s_labels=1', { kind: 'set', key: 'x.20s_labels', target: 'config', path: ['x', '20s_labels'], value: 1 }],
    ['obj.a\\.b=1', { kind: 'set', key: 'obj.a\\.b', target: 'config', path: ['obj', 'a.b'], value: 1 }],
    ['obj.a\\=b=1', { kind: 'set', key: 'obj.a\\=b', target: 'config', path: ['obj', 'a=b'], value: 1 }],
  ])('%s', (text, expected) => {
    expect(parseOverride(text)).toEqual({ text, ...expected });
  });
});

describe('parseOverride: values', () => {
  const value = (v: string): unknown => parseOverride(`k=${v}`).value;

  it.each([
    ['1', 1], ['-20', -20], ['1_000_000', 1_000_000], ['3.14', 3.14], ['.5', 0.5], ['1.', 1], ['1e-4', 1e-4], ['-10e3', -10_000],
    ['inf', Infinity], ['-inf', -Infinity], ['true', true], ['TrUe', true], ['False', false], ['null', null], ['NULL', null],
    ['007', '007'], ['0x10', '0x10'], ['abc', 'abc'], ['foo-bar_10', 'foo-bar_10'], ['/data/feats', '/data/feats'],
    ['http://host:5000/x?y', 'http://host:5000/x?y'], ['  hello world  ', 'hello world'], ['yes', 'yes'],
  ])('types %s as YAML/Hydra would', (text, expected) => {
    expect(value(text)).toEqual(expected);
  });

  it('reads nan as NaN', () => {
    expect(value('nan')).toBeNaN();
  });

  it('keeps quoted values as strings, with Hydra quote escaping', () => {
    expect(value("''")).toBe('');
    expect(value('""')).toBe('');
    expect(value("'1'")).toBe('1');
    expect(value("'true'")).toBe('true');
    expect(value("'1,2,3'")).toBe('1,2,3');
    expect(value("'hello there'")).toBe('hello there');
    expect(value("'{a:10} ${xyz}'")).toBe('{a:10} ${xyz}');
    expect(value("'escaped \\'single quote\\''")).toBe("escaped 'single quote'");
    expect(value('"escaped \\"double\\""')).toBe('escaped "double"');
    expect(value("'the path is C:\\\\\\'some folder\\'\\\\'")).toBe("the path is C:\\'some folder'\\");
    expect(value("\"'inner'\"")).toBe("'inner'");
  });

  it('sets the empty string for key=', () => {
    expect(parseOverride('k=').value).toBe('');
  });

  it('unescapes \\ before special characters and keeps other backslashes', () => {
    expect(value('job\\{a\\=1\\,b\\=2\\}')).toBe('job{a=1,b=2}');
    expect(value('A\\[B')).toBe('A[B');
    expect(value('\\ padded\\ ')).toBe(' padded ');
    expect(value('C:\\dir')).toBe('C:\\dir');
    expect(value('\\1')).toBe('\\1');
  });

  it('parses lists and dicts, nested, with whitespace', () => {
    expect(value('[1,2]')).toEqual([1, 2]);
    expect(value('[]')).toEqual([]);
    expect(value('[a, [b, [c]], null]')).toEqual(['a', ['b', ['c']], null]);
    expect(value('{a:1}')).toEqual({ a: 1 });
    expect(value('{}')).toEqual({});
    expect(value('{a: 10, b: {c: [1, "x y"]}, d: e:f}')).toEqual({ a: 10, b: { c: [1, 'x y'] }, d: 'e:f' });
  });

  it('keeps interpolations verbatim (commas and braces inside them included)', () => {
    expect(value('${a.b}')).toBe('${a.b}');
    expect(value('run_${seed}')).toBe('run_${seed}');
    expect(value('${oc.env:USER,me}')).toBe('${oc.env:USER,me}');
    expect(value('/root/${name}/x')).toBe('/root/${name}/x');
  });

  it('applies casts', () => {
    expect(value('str(10)')).toBe('10');
    expect(value('int(3.9)')).toBe(3);
    expect(value('float(10)')).toBe(10);
    expect(value('bool(0)')).toBe(false);
    expect(value("int('10')")).toBe(10);
    expect(value('str([1,2])')).toEqual(['1', '2']);
    expect(value('str({a:10})')).toEqual({ a: '10' });
    expect(value('sort([3,1,2])')).toEqual([1, 2, 3]);
  });
});

describe('parseOverride: sweeps', () => {
  const sweep = (text: string): unknown => parseOverride(text).sweep;

  it('parses a simple choice sweep a=1,2,3', () => {
    const o = parseOverride('a=1,2,3');
    expect(o.value).toBeUndefined();
    expect(o.sweep).toEqual({ type: 'choice', values: [1, 2, 3] });
    expect(expandSweep(o)).toEqual([1, 2, 3]);
  });

  it('parses choice(...) including quoted, list and dict elements', () => {
    expect(sweep('a=choice(x,y)')).toEqual({ type: 'choice', values: ['x', 'y'] });
    expect(sweep('a="a,b","c,d"')).toEqual({ type: 'choice', values: ['a,b', 'c,d'] });
    expect(sweep('a=[a,b],[c,d]')).toEqual({ type: 'choice', values: [['a', 'b'], ['c', 'd']] });
    expect(sweep('a={a:10, b:20},{c:30}')).toEqual({ type: 'choice', values: [{ a: 10, b: 20 }, { c: 30 }] });
    expect(sweep('model/aggregator=mean-pool,max-pool')).toEqual({ type: 'choice', values: ['mean-pool', 'max-pool'] });
    expect(sweep('a=choice(1)')).toEqual({ type: 'choice', values: [1] });
  });

  it.each([
    ['a=range(5)', [0, 1, 2, 3, 4]],
    ['a=range(1,5)', [1, 2, 3, 4]],
    ['a=range(0,5,2)', [0, 2, 4]],
    ['a=range(0,1,0.25)', [0, 0.25, 0.5, 0.75]],
    ['a=range(0,10,3.3)', [0, 3.3, 6.6, 9.9]],
    ['a=range(0.1,0.4,0.1)', [0.1, 0.2, 0.3]],
    ['a=range(-5,step=-1)', [0, -1, -2, -3, -4]],
    ['a=range(start=1,stop=3)', [1, 2]],
    ['a=range(5,1)', []],
    ['a=int(range(0,5,1.5))', [0, 1, 3, 4]],
    ['a=float(range(1,3))', [1, 2]],
    ['a=sort(3,1,2)', [1, 2, 3]],
    ['a=sort(choice(1,3,2),reverse=true)', [3, 2, 1]],
    ['a=str(choice(1,2))', ['1', '2']],
  ])('expands %s', (text, expected) => {
    expect(expandSweep(parseOverride(text))).toEqual(expected);
  });

  it('keeps the range bounds in the AST', () => {
    expect(sweep('a=range(0,1,0.25)')).toEqual({ type: 'range', start: 0, stop: 1, step: 0.25, values: [0, 0.25, 0.5, 0.75] });
  });

  it('expands glob(...) against the options of a group', () => {
    const o = parseOverride('model/aggregator=glob(*,exclude=max*)');
    expect(o.sweep).toEqual({ type: 'glob', include: ['*'], exclude: ['max*'], values: [] });
    expect(expandSweep(o, ['mean-pool', 'max-pool', 'abmil'])).toEqual(['abmil', 'mean-pool']);
    expect(expandSweep(parseOverride('g=glob([a*,m*],exclude=mean-pool)'), ['abmil', 'max-pool', 'mean-pool', 'dsmil'])).toEqual(['abmil', 'max-pool']);
    expect(() => expandSweep(o)).toThrow(/no options were given/);
  });

  it('expands a non-sweep override to its one value', () => {
    expect(expandSweep(parseOverride('a=[1,2]'))).toEqual([[1, 2]]);
  });
});

describe('parseOverride: errors', () => {
  it('names the override, the column and the accepted forms', () => {
    expect(() => parseOverride('train.lr=[1,2')).toThrowErrorMatchingInlineSnapshot(`
      [ConfigError: bad override "train.lr=[1,2": expected "," or "]" in the list at the end.
        train.lr=[1,2
                     ^
      Accepted forms: key=value, +key=value (add a key), ++key=value (add or replace), ~key or ~key=value (delete),
        group=option (e.g. model/aggregator=max-pool), +group=option (add a group), ~group (drop a group).
        Values: 3, 1e-4, true, null, text, 'quoted text', [a,b], {k: v}; key= sets the empty string.
        Sweeps: a,b,c · choice(a,b) · range(start,stop[,step]) · glob(pattern). Escape ()[]{}:=, and spaces with \\ or quote the value.]
    `);
  });

  it('is a ConfigError with code bad-override', () => {
    try {
      parseOverride('a.b');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).code).toBe('bad-override');
    }
  });

  it.each([
    ['a.b', 'expected "=" after the key "a.b" (only ~key may omit the value) at the end'],
    ['=3', 'expected a key at column 1'],
    ['a..b=1', 'empty key segment at column 3'],
    ['a.=1', 'empty key segment at column 3'],
    ['a b=1', 'unexpected " " in the key at column 2'],
    ['model//agg=x', 'empty config group name at column 7'],
    ['db@a:b=x', 'renaming a package (grp@from:to) is not supported; use grp@to=option at column 5'],
    ['a=(x)', 'unexpected "(" (quote the value or escape it as \\() at column 3'],
    ['a=x=y', 'unexpected "=" (quote the value or escape it as \\=) at column 4'],
    ["a='x", 'unclosed single quote at column 3'],
    ["a='x'y", 'unexpected text after a quoted value (quote the whole value) at column 6'],
    ['a=1,,2', 'expected a value at column 5'],
    ['a=[1,2', 'expected "," or "]" in the list at the end'],
    ['a={b}', 'unexpected "}" in a mapping key (expected key: value) at column 5'],
    ['a={b:1,b:2}', 'duplicate key "b" in the mapping at column 8'],
    ['a=foo(1)', 'unknown function "foo"; supported: choice, range, glob, sort, int, float, str, bool at column 3'],
    ['a=interval(0,1)', 'unknown function "interval" (it needs an optimizing sweeper, which milkit does not have); supported: choice, range, glob, sort, int, float, str, bool at column 3'],
    ['a=range(0,1,0)', 'range() step must not be 0 at column 3'],
    ['a=range(x)', 'range() start must be a finite number at column 3'],
    ['a=[choice(1,2)]', 'functions are not allowed here at column 4'],
    ['a=${x', 'unclosed "${" interpolation at column 3'],
    ['~a=1,2', 'a delete (~key=value) takes one value, not a sweep at column 4'],
    ['a=int(abc)', 'int() cannot convert "abc" at column 3'],
  ])('rejects %s', (text, reason) => {
    expect(() => parseOverride(text)).toThrow(`bad override "${text}": ${reason}.`);
  });
});

describe('formatValue / formatOverride', () => {
  it('formats sweep cells back to override text', () => {
    const o = parseOverride('train.optimizer.lr=1e-4,3e-4');
    expect(expandSweep(o).map((v) => formatOverride(o, v))).toEqual(['train.optimizer.lr=0.0001', 'train.optimizer.lr=0.0003']);
    expect(formatOverride(parseOverride('+obj.a\\.b=x'))).toBe('+obj.a\\.b=x');
    expect(formatOverride(parseOverride('~items[0]'))).toBe('~items[0]');
    expect(formatOverride(parseOverride('model/aggregator=max-pool'))).toBe('model/aggregator=max-pool');
  });

  it('round-trips every JSON value through the grammar', () => {
    const json = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: 'small' }, fc.string(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: false }), fc.boolean(), fc.constant(null), tie('list'), tie('dict')),
      list: fc.array(tie('value'), { maxLength: 4 }),
      dict: fc.dictionary(fc.string({ minLength: 1 }), tie('value'), { maxKeys: 4 }),
    })).value;
    fc.assert(
      fc.property(json, (v) => {
        const parsed = parseOverride(`k=${formatValue(v)}`).value;
        expect(parsed).toEqual(v);
      }),
      { numRuns: 400 },
    );
  });

  it('types bare words with typeScalar and quotes strings that would change type', () => {
    expect(typeScalar('1e3')).toBe(1000);
    expect(formatValue('1e3')).toBe("'1e3'");
    expect(formatValue('null')).toBe("'null'");
    expect(formatValue('abmil')).toBe('abmil');
  });
});
