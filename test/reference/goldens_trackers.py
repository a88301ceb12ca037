#!/usr/bin/python3
"""Golden case of the tracker plugins: one scripted run and what an MLflow store must then hold for it (MLflow's
documented semantics: params and tags as strings, metric histories in logging order with their steps and
timestamps, log_artifact(local_file, artifact_path) storing <artifact_path>/<file name>, the final status).
Every MLflow-backed tracker shares it; the suite reads the store back without the tracker's code.

Run: /usr/bin/python3 test/reference/goldens_trackers.py
"""
from golden_common import write_golden

OPS = [
    {'op': 'startRun', 'spec': {'experimentName': 'golden', 'runName': 'abmil-fold0', 'tags': {'team': 'mil'}}},
    {'op': 'logParams', 'params': {'optim.lr': '0.0002', 'model.aggregator.name': 'abmil'}},
    {'op': 'logMetrics', 'metrics': [{'key': 'train/loss', 'value': 0.693, 'step': 0, 'timestamp': 1700000000000},
                                     {'key': 'val/auc', 'value': 0.5, 'step': 0, 'timestamp': 1700000000001}]},
    {'op': 'logMetrics', 'metrics': [{'key': 'train/loss', 'value': 0.25, 'step': 1, 'timestamp': 1700000001000},
                                     {'key': 'val/auc', 'value': 0.875, 'step': 1, 'timestamp': 1700000001001}]},
    {'op': 'setTags', 'tags': {'stage': 'evaluated'}},
    {'op': 'logArtifact', 'file': 'notes.txt', 'content': 'golden run\n', 'artifactPath': 'reports'},
    {'op': 'endRun', 'status': 'FINISHED'},
]


def expected_run():
    metrics = {}
    for op in OPS:
        if op['op'] == 'logMetrics':
            for m in op['metrics']:
                metrics.setdefault(m['key'], []).append({'step': m['step'], 'value': m['value'], 'timestamp': m['timestamp']})
    params = next(op['params'] for op in OPS if op['op'] == 'logParams')
    tags = {**OPS[0]['spec']['tags'], **next(op['tags'] for op in OPS if op['op'] == 'setTags')}
    artifacts = [f"{op['artifactPath']}/{op['file']}" for op in OPS if op['op'] == 'logArtifact']
    return {'experimentName': OPS[0]['spec']['experimentName'], 'runName': OPS[0]['spec']['runName'], 'status': OPS[-1]['status'],
            'params': params, 'tags': tags, 'metrics': metrics, 'artifacts': artifacts}


if __name__ == '__main__':
    for name in ['mlflow-file', 'mlflow-rest']:
        write_golden('trackers', name, {'kind': 'tracker', 'plugin': name, 'generator': 'test/reference/goldens_trackers.py',
                                        'case': {'ops': OPS}, 'expected': {'run': expected_run()}})
