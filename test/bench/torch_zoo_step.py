"""PyTorch side of test/bench/zoo.bench.ts: times one training step (forward, loss, backward, Adam lr 1e-4) of each
MIL-zoo reference model from test/reference/ at full size (D = 1024, the milkit defaults), float32.

Protocol: one JSON request per stdin line, {"model": name, "n": N, "warmup": W, "steps": S, "warmupMs": T}: at least
W warm-up steps and, with T, warm-up steps until T ms have passed; one JSON reply per line,
{"model": name, "n": N, "ms": [S step times], "peakRss": bytes} (or {"error": text}); peakRss is the process's
high-water RSS during the request (VmHWM, reset through /proc/self/clear_refs before it).
The first line printed is {"ready": true, "torch": version, "threads": T}.
Profiling (hand-run, not used by the bench): `torch_zoo_step.py --profile MODEL[,MODEL] N [STEPS]` prints, per model,
the wall and CPU time (user + system, all threads) of each step and torch.profiler's matrix products of one step
(shape, calls, CPU time), to set next to test/bench/hotspots-gemm.ts (threads 1, OpenBLAS's own pool).
Threads: argv[1] = torch intra-op threads (default 1; OpenBLAS keeps its default pool). The bench runs two of these
processes, threads 1 and threads 2, and takes the faster as the reference.
The networks are the parity references (same maths as the milkit plugins), with dropout off on both sides.
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'reference'))
import abmil as abmil_ref  # noqa: E402
import clam as clam_ref  # noqa: E402
import dsmil as dsmil_ref  # noqa: E402
import dtfd as dtfd_ref  # noqa: E402
import hdmil_reference as hdmil_ref  # noqa: E402
import transmil as transmil_ref  # noqa: E402

torch.set_default_dtype(torch.float32)  # the reference modules default to float64 for parity
D, C, LABEL = 1024, 2, 1


def build(name):
    """(model, loss function of (model, x)) for a zoo model at its milkit default size."""
    label = torch.tensor([LABEL])
    if name == 'abmil':
        model = abmil_ref.Abmil(D, 512, 128, C, True, 'tanh', True)
        return model, lambda m, x: F.cross_entropy(m(x)[0], label)
    if name in ('clam-sb', 'clam-mb'):
        model = clam_ref.Clam(D, 512, 256, C, name == 'clam-mb', True, 8, False, 'svm')

        def clam_loss(m, x):
            logits, _, _, inst = m(x, label=LABEL)
            return 0.7 * F.cross_entropy(logits, label) + 0.3 * inst
        return model, clam_loss
    if name == 'dsmil':
        model = dsmil_ref.Dsmil(D, C, 128, True, False)
        target = F.one_hot(label, C).float()

        def dsmil_loss(m, x):
            logits, max_logits, _, _ = m(x)
            return 0.5 * F.binary_cross_entropy_with_logits(logits, target) + 0.5 * F.binary_cross_entropy_with_logits(max_logits, target)
        return model, dsmil_loss
    if name == 'transmil':
        model = transmil_ref.TransMIL(D, 512, C, 8, 256, 6, 33, True)
        return model, lambda m, x: F.cross_entropy(m(x)[0], label)
    if name == 'dtfd-mil':
        model = dtfd_ref.Dtfd(D, 512, 128, C)
        rng = np.random.RandomState(0)

        def dtfd_loss(m, x):
            tier1, logits, _, _ = m(x, rng.permutation(x.shape[0]), 4, 'afs', 1)
            return F.cross_entropy(tier1, label.repeat(tier1.shape[0])) + F.cross_entropy(logits, label)
        return model, dtfd_loss
    if name in ('mean-pool', 'max-pool'):
        fc, head = torch.nn.Linear(D, 512), torch.nn.Linear(512, C)
        model = torch.nn.ModuleList([fc, head])

        def pool_loss(m, x):
            h = torch.relu(m[0](x))
            z = h.mean(0, keepdim=True) if name == 'mean-pool' else h.max(0, keepdim=True).values
            return F.cross_entropy(m[1](z), label)
        return model, pool_loss
    if name == 'dmin':
        model = hdmil_ref.Dmin(D, 512, 256, C, 12)
        return model, dmin_loss
    raise ValueError(f'unknown model {name}')


def dmin_loss(m, x):
    """HDMIL's DMIN training objective at milkit's defaults (tau 0.7, gamma 0.5, r 0.6, k 32), in float32 (the
    parity reference's train_forward mixes in float64 gates); logistic gate noise as in the plugin."""
    h, s = m.attend(x)
    a_tea = torch.softmax(s.t(), dim=1)
    e_tea = a_tea @ h
    z_tea = m.bag_logits(e_tea)
    u1, u2 = torch.rand_like(s), torch.rand_like(s)
    g1, g2 = -torch.log(-torch.log(u1 + 1e-20) + 1e-20), -torch.log(-torch.log(u2 + 1e-20) + 1e-20)
    p = torch.sigmoid((s + g1 - g2) / 0.7)
    hard = (p > 0.5).float()
    gate = hard - p.detach() + p
    w = torch.exp(s) * gate
    e_stu = (w / w.sum()).t() @ h
    z_stu = m.bag_logits(e_stu)
    sel = gate[:, 0] + gate[:, 1]
    rate = ((sel > 0).float() - sel.detach() + sel).mean()
    label = torch.tensor([LABEL])
    ce = F.cross_entropy(z_tea, label)
    k = 32
    row = a_tea[LABEL]
    ids = torch.cat([torch.topk(row, k)[1], torch.topk(-row, k)[1]])
    targets = torch.cat([torch.ones(k, dtype=torch.long), torch.zeros(k, dtype=torch.long)])
    inst = hdmil_ref.smooth_top1_svm(m.instance_classifiers[LABEL](h[ids]), targets)
    logp_tea, logp_stu = F.log_softmax(z_tea, dim=1), F.log_softmax(z_stu, dim=1)
    kl = (logp_tea.exp() * (logp_tea - logp_stu)).sum()
    return 0.7 * ce + 0.3 * inst + 0.5 * F.mse_loss(e_stu, e_tea) + 0.5 * kl + 2.0 * (rate - 0.6) ** 2


def reset_peak_rss():
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass


def peak_rss():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    return 0


def profile_main(names, n, steps):
    import resource
    from torch.profiler import ProfilerActivity, profile
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.randn(n, D)

    def cpu_ms():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return (usage.ru_utime + usage.ru_stime) * 1000

    for name in names:
        model, loss_fn = build(name)
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step():
            optimizer.zero_grad()
            loss = loss_fn(model, x)
            loss.backward()
            optimizer.step()
            loss.item()
        step()
        walls, cpus = [], []
        for _ in range(steps):
            c0, t0 = cpu_ms(), time.perf_counter()
            step()
            walls.append((time.perf_counter() - t0) * 1000)
            cpus.append(cpu_ms() - c0)
        print(f"== torch {name} N={n}: wall {'/'.join(f'{w:.0f}' for w in walls)} ms, cpu {'/'.join(f'{c:.0f}' for c in cpus)} ms", flush=True)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            step()
        rows = [e for e in prof.key_averages(group_by_input_shape=True) if e.key in ('aten::mm', 'aten::addmm', 'aten::bmm', 'aten::mv', 'aten::addmv')]
        for e in sorted(rows, key=lambda e: -e.self_cpu_time_total):
            print(f"  {e.key:12} {str(e.input_shapes):60} x{e.count} {e.self_cpu_time_total / 1000:.2f} ms", flush=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == '--profile':
        profile_main(sys.argv[2].split(','), int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 3)
        return
    torch.manual_seed(0)
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    torch.set_num_threads(threads)
    models, bags = {}, {}
    print(json.dumps({'ready': True, 'torch': torch.__version__, 'threads': threads}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        name, n = request['model'], int(request['n'])
        try:
            if name not in models:
                model, loss_fn = build(name)
                models[name] = (model, loss_fn, torch.optim.Adam(model.parameters(), lr=1e-4))
            model, loss_fn, optimizer = models[name]
            model.train()
            if n not in bags:
                bags.clear()  # one bag at a time: the 50k bag alone is 200 MB
                bags[n] = torch.randn(n, D)
            reset_peak_rss()
            x = bags[n]
            def step():
                optimizer.zero_grad()
                loss = loss_fn(model, x)
                loss.backward()
                optimizer.step()
                loss.item()

            warm_from = time.perf_counter()
            warmed = 0
            while warmed < int(request['warmup']) or (time.perf_counter() - warm_from) * 1000 < float(request.get('warmupMs', 0)):
                step()
                warmed += 1
            times = []
            for _ in range(int(request['steps'])):
                start = time.perf_counter()
                step()
                times.append((time.perf_counter() - start) * 1000)
            print(json.dumps({'model': name, 'n': n, 'ms': times, 'peakRss': peak_rss()}), flush=True)
        except Exception as error:  # reported in the table, the run goes on
            print(json.dumps({'model': name, 'n': n, 'error': f'{type(error).__name__}: {error}'}), flush=True)


if __name__ == '__main__':
    main()
