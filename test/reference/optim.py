"""Reference trajectories for milkit's optimizers, LR schedules and gradient clipping.

Run with the Debian torch (1.13): /usr/bin/python3 test/reference/optim.py
Writes test/reference/fixtures/optim.json, read by test/core/engine/optim/*.test.ts.

Every optimizer case starts from the same four float32 parameters (shaped like a Linear weight and bias, a
norm gain and a 3-D class token) and takes 8 steps on a tiny tanh regression loss. The fixture stores, per
step, the gradient torch computed and the parameters after the step, so the TypeScript side can replay the
exact gradients and compare the updates alone.

torch.optim covers Adam (L2 added to the gradient), AdamW, SGD (+momentum, +L2) and RAdam (L2 added to the
gradient, rectification when rho_t > 5). Two rules torch 1.13 does not ship are written out below from their
papers/specs: decoupled weight decay inside RAdam with TransMIL's bias/1-D exclusion, and Lookahead
(Zhang et al. 2019) with the slow weights starting either at the initial weights (the paper) or at the
first synchronisation (the lazy start of timm's wrapper, which TransMIL uses).
"""
import json
import os

import torch

SEED = 7
STEPS = 8
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'optim.json')


def f32(values):
    """float32 values as JSON numbers with 9 significant digits (enough to round-trip a float32)."""
    return [float('%.9g' % v) for v in torch.as_tensor(values, dtype=torch.float32).flatten().tolist()]


def initial_state():
    gen = torch.Generator().manual_seed(SEED)
    params = {
        'fc.weight': torch.randn(2, 3, generator=gen) * 0.5,
        'fc.bias': torch.randn(2, generator=gen) * 0.1,
        'norm.weight': 1.0 + 0.1 * torch.randn(3, generator=gen),
        'cls_token': torch.randn(1, 1, 3, generator=gen) * 0.2,
    }
    x = torch.randn(4, 3, generator=gen)
    y = torch.tanh(torch.randn(4, 2, generator=gen))
    return params, x, y


def loss_fn(p, x, y):
    u = x * p['norm.weight'] + p['cls_token'].reshape(3)  # [4, 3]
    h = u @ p['fc.weight'].t() + p['fc.bias']  # [4, 2]
    return ((torch.tanh(h) - y) ** 2).mean()


def step_lrs(base):
    return [base * (1.0 - 0.05 * t) for t in range(STEPS)]


def transmil_decays(name, tensor):
    """TransMIL / timm add_weight_decay: no decay for 1-D tensors and names ending in '.bias'."""
    return not (tensor.dim() == 1 or name.endswith('.bias'))


class DecoupledRAdam:
    """torch's RAdam update with the weight decay applied as p <- p (1 - lr wd) before it (TransMIL's RAdam)."""

    def __init__(self, named, lr, wd, decays):
        self.named = named
        self.wd = wd
        self.decays = decays
        self.inner = torch.optim.RAdam([p for _, p in named], lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    def set_lr(self, lr):
        for group in self.inner.param_groups:
            group['lr'] = lr

    def step(self):
        lr = self.inner.param_groups[0]['lr']
        with torch.no_grad():
            for name, p in self.named:
                if self.decays(name, p):
                    p.mul_(1.0 - lr * self.wd)
        self.inner.step()


class TorchOpt:
    def __init__(self, opt):
        self.inner = opt

    def set_lr(self, lr):
        for group in self.inner.param_groups:
            group['lr'] = lr

    def step(self):
        self.inner.step()


class Lookahead:
    """Zhang et al. 2019: after every k inner steps, slow += alpha (fast - slow); fast = slow."""

    def __init__(self, named, inner, k, alpha, slow_start):
        self.named = named
        self.inner = inner
        self.k = k
        self.alpha = alpha
        self.count = 0
        # 'initial': slow weights are the weights the optimizer was built with (the paper's phi_0 = theta_0).
        # 'first-sync': slow weights are copied from the fast ones at the first sync (timm's lazy buffer).
        self.slow = {n: p.detach().clone() for n, p in named} if slow_start == 'initial' else None

    def set_lr(self, lr):
        self.inner.set_lr(lr)

    def step(self):
        self.inner.step()
        self.count += 1
        if self.count % self.k != 0:
            return
        with torch.no_grad():
            if self.slow is None:
                self.slow = {n: p.detach().clone() for n, p in self.named}
            for name, p in self.named:
                slow = self.slow[name]
                slow.add_(self.alpha * (p - slow))
                p.copy_(slow)


def run_case(name, config, lrs, build):
    params0, x, y = initial_state()
    named = [(n, t.clone().requires_grad_(True)) for n, t in params0.items()]
    opt = build(named)
    steps = []
    for lr in lrs:
        opt.set_lr(lr)
        for _, p in named:
            p.grad = None
        loss = loss_fn(dict(named), x, y)
        loss.backward()
        grads = {n: f32(p.grad) for n, p in named}
        opt.step()
        steps.append({'grads': grads, 'params': {n: f32(p.detach()) for n, p in named}})
    return {'name': name, 'optimizer': config, 'lrs': lrs, 'steps': steps}


def optimizer_cases():
    cases = []
    adam_lrs = step_lrs(0.01)
    cases.append(run_case(
        'adam-l2', {'name': 'adam', 'weightDecay': 0.05},
        adam_lrs, lambda named: TorchOpt(torch.optim.Adam([p for _, p in named], lr=adam_lrs[0], weight_decay=0.05))))
    cases.append(run_case(
        'adamw', {'name': 'adamw', 'weightDecay': 0.5},
        adam_lrs, lambda named: TorchOpt(torch.optim.AdamW([p for _, p in named], lr=adam_lrs[0], weight_decay=0.5))))
    sgd_lrs = step_lrs(0.1)
    cases.append(run_case(
        'sgd-momentum-l2', {'name': 'sgd', 'momentum': 0.9, 'weightDecay': 0.05},
        sgd_lrs, lambda named: TorchOpt(torch.optim.SGD([p for _, p in named], lr=sgd_lrs[0], momentum=0.9, weight_decay=0.05))))
    cases.append(run_case(
        'sgd-plain', {'name': 'sgd', 'momentum': 0, 'weightDecay': 0},
        sgd_lrs, lambda named: TorchOpt(torch.optim.SGD([p for _, p in named], lr=sgd_lrs[0]))))
    cases.append(run_case(
        'radam-l2', {'name': 'radam', 'weightDecay': 0.05},
        adam_lrs, lambda named: TorchOpt(torch.optim.RAdam([p for _, p in named], lr=adam_lrs[0], weight_decay=0.05))))
    transmil = {'name': 'radam', 'weightDecay': 0.5, 'decoupledWeightDecay': True,
                'excludeFromDecay': ['*.bias'], 'decayVectors': False}
    cases.append(run_case(
        'radam-decoupled-transmil', transmil,
        adam_lrs, lambda named: DecoupledRAdam(named, adam_lrs[0], 0.5, transmil_decays)))
    cases.append(run_case(
        'lookahead-adam-paper', {'name': 'adam', 'weightDecay': 0.05, 'lookahead': {'k': 3, 'alpha': 0.5}},
        adam_lrs, lambda named: Lookahead(
            named, TorchOpt(torch.optim.Adam([p for _, p in named], lr=adam_lrs[0], weight_decay=0.05)), 3, 0.5, 'initial')))
    cases.append(run_case(
        'lookahead-radam-transmil',
        dict(transmil, lookahead={'k': 3, 'alpha': 0.5, 'slowStart': 'first-sync'}),
        adam_lrs, lambda named: Lookahead(
            named, DecoupledRAdam(named, adam_lrs[0], 0.5, transmil_decays), 3, 0.5, 'first-sync')))
    return cases


def schedule_lrs(make, epochs):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2e-4)
    sched = make(opt)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]['lr'])
        opt.step()
        sched.step()
    return out


def schedule_cases():
    epochs = 12
    return [
        {'name': 'cosine', 'train': {'epochs': epochs, 'schedule': 'cosine', 'optimizer': {'lr': 2e-4}},
         'lrs': schedule_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=epochs, eta_min=0.0), epochs)},
        {'name': 'cosine-min-lr', 'train': {'epochs': epochs, 'schedule': 'cosine', 'minLr': 1e-7, 'optimizer': {'lr': 2e-4}},
         'lrs': schedule_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=epochs, eta_min=1e-7), epochs)},
        {'name': 'step', 'train': {'epochs': epochs, 'schedule': 'step', 'stepSize': 5, 'gamma': 0.5, 'optimizer': {'lr': 2e-4}},
         'lrs': schedule_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.5), epochs)},
        {'name': 'multistep', 'train': {'epochs': epochs, 'schedule': 'step', 'milestones': [4, 9], 'gamma': 0.2, 'optimizer': {'lr': 2e-4}},
         'lrs': schedule_lrs(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[4, 9], gamma=0.2), epochs)},
        {'name': 'constant', 'train': {'epochs': epochs, 'optimizer': {'lr': 2e-4}}, 'lrs': [2e-4] * epochs},
    ]


def clip_cases():
    gen = torch.Generator().manual_seed(SEED + 1)
    grads = [torch.randn(2, 3, generator=gen), torch.randn(4, generator=gen), torch.randn(1, 1, 5, generator=gen)]
    cases = []
    for max_norm in (0.5, 1e3):
        params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        cases.append({
            'maxNorm': max_norm,
            'grads': [{'shape': list(g.shape), 'values': f32(g)} for g in grads],
            'clipped': [f32(p.grad) for p in params],
            'norm': float(norm),
        })
    return cases


def main():
    params0, x, y = initial_state()
    fixture = {
        'generator': 'test/reference/optim.py',
        'torch': torch.__version__,
        'seed': SEED,
        'params': [{'name': n, 'shape': list(t.shape), 'values': f32(t)} for n, t in params0.items()],
        'x': {'shape': list(x.shape), 'values': f32(x)},
        'y': {'shape': list(y.shape), 'values': f32(y)},
        'cases': optimizer_cases(),
        'schedules': schedule_cases(),
        'clip': clip_cases(),
    }
    with open(OUT, 'w') as fh:
        json.dump(fixture, fh, separators=(',', ':'))
        fh.write('\n')
    print(f'wrote {OUT} ({os.path.getsize(OUT)} bytes, torch {torch.__version__})')


if __name__ == '__main__':
    main()
