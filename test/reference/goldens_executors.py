#!/usr/bin/python3
"""Golden case of the executor plugins: a batch whose jobs succeed, fail, succeed and find their lock taken, and
the outcomes every executor must report (src/registry/contracts/executor.ts: `succeeded` when the result file
exists, `failed` carrying the worker's own error message, `busy` for a job another worker holds).

Run: /usr/bin/python3 test/reference/goldens_executors.py
"""
from golden_common import write_golden

ACTIONS = ['ok', 'fail', 'ok', 'busy']
STATUS = {'ok': 'succeeded', 'fail': 'failed', 'busy': 'busy'}

if __name__ == '__main__':
    for name in ['local', 'slurm']:
        write_golden('executors', name, {
            'kind': 'executor', 'plugin': name, 'generator': 'test/reference/goldens_executors.py',
            'case': {'actions': ACTIONS},
            'expected': {'statuses': [STATUS[a] for a in ACTIONS], 'errors': {str(i): f'job {i} diverged' for i, a in enumerate(ACTIONS) if a == 'fail'}},
        })
