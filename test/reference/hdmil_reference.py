#!/usr/bin/python3
"""Independent PyTorch reference of HDMIL's networks (docs/methods/hdmil.md), written from the spec, for
milkit's parity tests. Writes small JSON fixtures (and one tiny .safetensors) to test/reference/fixtures/.

Run: /usr/bin/python3 test/reference/hdmil_reference.py

Parameters are "formula weights": tensor j of a state_dict (in key order) holds
    offset + scale * sin(0.7 * i + 1.1 * j + 0.2)          (i = flat index in torch layout)
or, for variances, offset + scale * sin(...)^2, so fixtures carry the keys and not the weights, and the
TypeScript test rebuilds the same tensors and loads them by their original HDMIL keys. Reference maths is
float64; inputs are stored rounded to float32.
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'fixtures')


def r9(values):
    """Flat list of numbers rounded to 9 significant digits (float32 round-trips)."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    return [float('%.9g' % v) for v in arr]


def f32(t):
    """Round a tensor through float32 (what the TS side sees) and back to float64."""
    return t.float().double()


# ---------------------------------------------------------------------------------------------- CKA (docs/methods/hdmil.md#cka)
class ChebyLayer(nn.Module):
    def __init__(self, n_in, n_out, degree):
        super().__init__()
        self.degree = degree
        self.cheby_coeffs = nn.Parameter(torch.empty(n_in, n_out, degree + 1))
        nn.init.xavier_normal_(self.cheby_coeffs)

    def forward(self, x):
        t = torch.tanh(x)
        basis = [torch.ones_like(t)]
        if self.degree >= 1:
            basis.append(t)
        for _ in range(2, self.degree + 1):
            basis.append(2 * t * basis[-1] - basis[-2])
        stacked = torch.stack(basis, dim=-1)  # [..., I, K+1]
        return torch.einsum('...ik,iok->...o', stacked, self.cheby_coeffs)


class Cka(nn.Module):
    def __init__(self, widths, degree):
        super().__init__()
        self.act_fun = nn.ModuleList([ChebyLayer(a, b, degree) for a, b in zip(widths[:-1], widths[1:])])

    def forward(self, x):
        for layer in self.act_fun:
            x = layer(x)
        return x


# --------------------------------------------------------------------------------------------- DMIN (docs/methods/hdmil.md#dmin-architecture)
class Gated(nn.Module):
    def __init__(self, hidden, attn, n_classes):
        super().__init__()
        self.attention_a = nn.Sequential(nn.Linear(hidden, attn), nn.Tanh())
        self.attention_b = nn.Sequential(nn.Linear(hidden, attn), nn.Sigmoid())
        self.attention_c = nn.Linear(attn, n_classes)

    def forward(self, h):
        return self.attention_c(self.attention_a(h) * self.attention_b(h))


class Labels(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer('labels', torch.tensor([0, 1], dtype=torch.int64))


class Dmin(nn.Module):
    """Dropout is left out: parity runs use p = 0 (dropout masks are random and not injected)."""

    def __init__(self, dim, hidden, attn, n_classes, degree):
        super().__init__()
        self.n_classes = n_classes
        self.attention_net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Identity(), Gated(hidden, attn, n_classes))
        self.classifiers = nn.ModuleList([Cka([hidden, 1], degree) for _ in range(n_classes)])
        self.instance_classifiers = nn.ModuleList([Cka([hidden, 2], degree) for _ in range(n_classes)])
        self.instance_loss_fn = Labels()

    def attend(self, x):
        h = torch.relu(self.attention_net[0](x))
        return h, self.attention_net[3](h)  # [N, H], S [N, C]

    def bag_logits(self, e):
        return torch.cat([self.classifiers[c](e[c:c + 1]) for c in range(self.n_classes)], dim=1)  # [1, C]

    def eval_forward(self, x, keep=None):
        """docs/methods/hdmil.md#dmin-inference, docs/methods/hdmil.md#inference-modes: per-class masked softmax, + 1e-16, empty set → zero embedding."""
        h, s = self.attend(x)
        kept = (s > 0) if keep is None else keep.bool()
        num = torch.exp(s) * kept
        a = (num / (num.sum(0, keepdim=True) + 1e-16)).t()  # [C, N]
        e = a @ h
        return {'logits': self.bag_logits(e), 'attention': a, 'embedding': e, 's': s}

    def train_forward(self, x, label, g1, g2, cfg):
        h, s = self.attend(x)
        a_tea = torch.softmax(s.t(), dim=1)  # [C, N]
        e_tea = a_tea @ h
        z_tea = self.bag_logits(e_tea)
        p = torch.sigmoid((s + g1 - g2) / cfg['tau'])
        hard = (p > cfg['gamma']).double()
        m = hard - p.detach() + p
        w = torch.exp(s) * m
        a_stu = (w / w.sum()).t()  # ONE normaliser over all n and c (docs/methods/hdmil.md#teacher-and-student)
        e_stu = a_stu @ h
        z_stu = self.bag_logits(e_stu)
        sel = m[:, 0] + m[:, 1]  # classes 0 and 1 only
        union = (sel > 0).double()
        rate = (union - sel.detach() + sel).mean()
        ce = F.cross_entropy(z_tea, torch.tensor([label]))
        inst = self.instance_loss(a_tea, h, label, cfg)
        logp_tea = F.log_softmax(z_tea, dim=1)
        logp_stu = F.log_softmax(z_stu, dim=1)
        kl = (logp_tea.exp() * (logp_tea - logp_stu)).sum() / z_tea.shape[0]
        mse = F.mse_loss(e_stu, e_tea)
        rate_loss = (rate - cfg['r']) ** 2
        total = 0.7 * ce + 0.3 * inst + 0.5 * mse + 0.5 * kl + 2.0 * rate_loss
        return {
            'teacherLogits': z_tea, 'studentLogits': z_stu, 'teacherEmbedding': e_tea, 'studentEmbedding': e_stu,
            'keepRate': rate, 'gate': hard, 'p': p, 's': s,
            'terms': {'ce': ce, 'clu': inst, 'mse': mse, 'kl': kl, 'rate': rate_loss}, 'total': total,
        }

    def instance_loss(self, a_tea, h, label, cfg):
        """CLAM instance loss on the teacher attention (docs/methods/hdmil.md#clustering-loss) with the smooth top-1 SVM (docs/methods/clam.md#smooth-top-1-svm)."""
        k = cfg['k_sample']
        total = 0.0
        for c in range(self.n_classes):
            row = a_tea[c]
            if c == label:
                ids = torch.cat([torch.topk(row, k)[1], torch.topk(-row, k)[1]])
                targets = torch.cat([torch.ones(k, dtype=torch.long), torch.zeros(k, dtype=torch.long)])
            elif cfg['subtyping']:
                ids = torch.topk(row, k)[1]
                targets = torch.zeros(k, dtype=torch.long)
            else:
                continue
            logits = self.instance_classifiers[c](h[ids])
            total = total + smooth_top1_svm(logits, targets)
        return total / self.n_classes if cfg['subtyping'] else total


def smooth_top1_svm(scores, y, alpha=1.0, tau=1.0):
    """Mean over samples of tau·logsumexp((s + Δ - s_y)/tau), or the hard max when the top-2 gap ≥ tau·ln 1000."""
    delta = alpha * (1 - F.one_hot(y, scores.shape[1]).double())
    s_y = scores.gather(1, y[:, None])
    aug = scores + delta
    top2 = scores.detach().topk(2, dim=1)[0]
    hard = (top2[:, 0] - top2[:, 1]) >= tau * math.log(1000.0)
    smooth = tau * torch.logsumexp((aug - s_y) / tau, dim=1)
    hard_loss = aug.max(dim=1)[0] - s_y[:, 0]
    return torch.where(hard, hard_loss, smooth).mean()


# --------------------------------------------------------------------------------------------- LIPN (docs/methods/hdmil.md#lipn-architecture)
class ConvBN(nn.Module):
    def __init__(self, cin, cout, k, s, act=True):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2, bias=False), nn.BatchNorm2d(cout), *( [nn.ReLU()] if act else []))

    def forward(self, x):
        return self.block(x)


class ExtraDW(nn.Module):
    def __init__(self, cin, cout, k_start, k_mid, stride, expand):
        super().__init__()
        wide = cin * expand  # 48 and 96: already multiples of 8
        self.start_dw_conv = nn.Conv2d(cin, cin, k_start, 1, (k_start - 1) // 2, groups=cin, bias=False)
        self.start_dw_norm = nn.BatchNorm2d(cin)
        self.expand_conv = nn.Conv2d(cin, wide, 1, bias=False)
        self.expand_norm = nn.BatchNorm2d(wide)
        self.middle_dw_conv = nn.Conv2d(wide, wide, k_mid, stride, (k_mid - 1) // 2, groups=wide, bias=False)
        self.middle_dw_norm = nn.BatchNorm2d(wide)
        self.proj_conv = nn.Conv2d(wide, cout, 1, bias=False)
        self.proj_norm = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = self.start_dw_norm(self.start_dw_conv(x))
        x = torch.relu(self.expand_norm(self.expand_conv(x)))
        x = torch.relu(self.middle_dw_norm(self.middle_dw_conv(x)))
        return self.proj_norm(self.proj_conv(x))


class Extractor(nn.Module):
    def __init__(self, n_classes):
        super().__init__()
        self.features = nn.Sequential(
            ConvBN(3, 16, 3, 2), ConvBN(16, 16, 3, 2), ConvBN(16, 16, 1, 1), ConvBN(16, 48, 3, 2), ConvBN(48, 24, 1, 1),
            ExtraDW(24, 48, 5, 5, 2, 2), ExtraDW(48, 64, 3, 3, 2, 2))
        self.conv = ConvBN(64, 64, 1, 1)
        self.classifier = nn.Linear(64, n_classes)

    def forward(self, x):
        x = self.features(x)
        x = x.mean(dim=(2, 3), keepdim=True)
        return self.classifier(self.conv(x).flatten(1))


class Lipn(nn.Module):
    def __init__(self, n_classes):
        super().__init__()
        self.extractor = Extractor(n_classes)

    def forward(self, thumbs01):
        """thumbs in [0, 1], NHWC → scores [N, C]."""
        return self.extractor((thumbs01 - 0.5).permute(0, 3, 1, 2))


def imitation_loss(scores, targets):
    """docs/methods/hdmil.md#lipn-training, "l1": mean |M_LR - M_HR| + (e_LR - e_HR)^2 with straight-through masks and union rates over classes 0/1."""
    soft = torch.sigmoid(scores)
    pred = (soft > 0.5).double() - soft.detach() + soft
    l1 = (pred - targets).abs().mean()

    def rate(m):
        sel = m[:, 0] + m[:, 1]
        return ((sel > 0).double() - sel.detach() + sel).mean()

    return l1 + (rate(pred) - rate(targets)) ** 2


# -------------------------------------------------------------------------------------- formula weights
def formula_spec(module, small=0.3):
    """Per state_dict entry: (key, shape, j, scale, offset, squared) of the formula that fills it."""
    spec = []
    for j, (key, tensor) in enumerate(module.state_dict().items()):
        scale, offset, squared = small, 0.0, False
        if key.endswith('running_var'):
            scale, offset, squared = 0.5, 0.75, True
        elif key.endswith('running_mean'):
            scale = 0.1
        elif key.endswith('num_batches_tracked') or key.endswith('labels'):
            spec.append({'key': key, 'shape': list(tensor.shape), 'integer': True})
            continue
        elif 'norm' in key or key.split('.')[-2] == '1' and 'block' in key:
            scale, offset = (0.2, 1.0) if key.endswith('weight') else (0.1, 0.0)
        elif key.endswith('cheby_coeffs'):
            scale = 0.15
        spec.append({'key': key, 'shape': list(tensor.shape), 'j': j, 'scale': scale, 'offset': offset, 'squared': squared})
    return spec


def formula_values(entry):
    n = int(np.prod(entry['shape'])) if entry['shape'] else 1
    i = np.arange(n, dtype=np.float64)
    wave = np.sin(0.7 * i + 1.1 * entry['j'] + 0.2)
    if entry['squared']:
        wave = wave ** 2
    return (entry['offset'] + entry['scale'] * wave).astype(np.float32).astype(np.float64).reshape(entry['shape'])


def load_formula(module, spec):
    state = module.state_dict()
    for entry in spec:
        if entry.get('integer'):
            continue
        state[entry['key']].copy_(torch.from_numpy(formula_values(entry)))
    module.load_state_dict(state)


def grads_by_key(module):
    return {k: r9(p.grad) for k, p in module.named_parameters() if p.grad is not None}


# ---------------------------------------------------------------------------------------------- fixtures
def cka_fixture(gen):
    layer = Cka([6, 3], 5)
    spec = formula_spec(layer)
    load_formula(layer, spec)
    x = f32(torch.randn(4, 6, generator=gen) * 1.5).requires_grad_(True)
    upstream = f32(torch.randn(4, 3, generator=gen))
    y = layer(x)
    (y * upstream).sum().backward()
    zero = layer(torch.zeros(2, 6))
    deg0 = Cka([6, 3], 0)
    spec0 = formula_spec(deg0)
    load_formula(deg0, spec0)
    return {
        'in': 6, 'out': 3, 'degree': 5, 'spec': spec, 'x': r9(x.detach()), 'upstream': r9(upstream),
        'y': r9(y.detach()), 'gradX': r9(x.grad), 'grads': grads_by_key(layer), 'yZero': r9(zero.detach()),
        'degreeZero': {'spec': spec0, 'y': r9(deg0(x.detach()).detach())},
    }


def safe_gumbels(s, shape, gen, tau, gamma):
    """Gumbel pairs whose soft gate stays ≥ 1e-3 away from γ (no float32/float64 flip at the threshold)."""
    while True:
        g1 = f32(-torch.log(-torch.log(torch.rand(shape, generator=gen))))
        g2 = f32(-torch.log(-torch.log(torch.rand(shape, generator=gen))))
        p = torch.sigmoid((s + g1 - g2) / tau)
        if ((p - gamma).abs() > 1e-3).all():
            return g1, g2


def dmin_case(gen, n_classes, label, subtyping, k_sample, n=24, dim=10, hidden=8, attn=6, degree=3, r=0.6):
    cfg = {'tau': 0.7, 'gamma': 0.5, 'k_sample': k_sample, 'subtyping': subtyping, 'r': r}
    model = Dmin(dim, hidden, attn, n_classes, degree)
    spec = formula_spec(model)
    load_formula(model, spec)
    while True:
        x = f32(torch.randn(n, dim, generator=gen))
        with torch.no_grad():
            s = model.attend(x)[1]
        kept = (s > 0).sum(0)
        # Eval gate S > 0 must be unambiguous in float32, and every class must keep something but not all.
        if (s.abs() > 1e-3).all() and (kept > 0).all() and (kept < n).all():
            break
    g1, g2 = safe_gumbels(s, (n, n_classes), gen, cfg['tau'], cfg['gamma'])
    with torch.no_grad():
        ev = model.eval_forward(x)
        keep = (torch.rand(n, n_classes, generator=gen) < 0.4).double()
        keep[:, n_classes - 1] = 0  # one class with an empty selection → CKA(0) embedding
        ev_keep = model.eval_forward(x, keep)
    out = model.train_forward(x, label, g1, g2, cfg)
    out['total'].backward()
    return {
        'numClasses': n_classes, 'label': label, 'n': n, 'dim': dim, 'hiddenDim': hidden, 'attnDim': attn, 'degree': degree,
        'kSample': k_sample, 'subtyping': subtyping, 'tau': cfg['tau'], 'gamma': cfg['gamma'], 'r': r,
        'spec': spec, 'x': r9(x), 'gumbel1': r9(g1), 'gumbel2': r9(g2),
        'eval': {'logits': r9(ev['logits']), 'attention': r9(ev['attention']), 'embedding': r9(ev['embedding'])},
        'evalKeep': {'mask': r9(keep), 'logits': r9(ev_keep['logits']), 'attention': r9(ev_keep['attention'])},
        'train': {
            'teacherLogits': r9(out['teacherLogits'].detach()), 'studentLogits': r9(out['studentLogits'].detach()),
            'teacherEmbedding': r9(out['teacherEmbedding'].detach()), 'studentEmbedding': r9(out['studentEmbedding'].detach()),
            'keepRate': float(out['keepRate']), 'gate': r9(out['gate']),
            'terms': {k: float(v) for k, v in out['terms'].items()}, 'total': float(out['total']),
        },
        'grads': grads_by_key(model),
    }


def lipn_fixture(gen):
    n, n_classes = 6, 2
    model = Lipn(n_classes)
    spec = formula_spec(model)
    load_formula(model, spec)
    for entry in spec:  # counters start from a known value so the +1 is visible
        if entry['key'].endswith('num_batches_tracked'):
            model.state_dict()[entry['key']].fill_(3)
    i = np.arange(n * 16 * 16 * 3)
    thumbs = torch.from_numpy((0.5 + 0.5 * np.sin(0.61 * i + 1.7 * (i // 768))).astype(np.float32).astype(np.float64).reshape(n, 16, 16, 3))
    model.train()
    train_scores = model(thumbs)
    targets = torch.tensor([[1, 0], [1, 1], [0, 0], [0, 1], [1, 0], [0, 0]], dtype=torch.float64)
    loss = imitation_loss(train_scores, targets)
    loss.backward()
    state = model.state_dict()
    running = {k: r9(v) for k, v in state.items() if k.endswith('running_mean') or k.endswith('running_var')}
    counters = {k: int(v) for k, v in state.items() if k.endswith('num_batches_tracked')}
    # 29 more training-mode passes pull the running statistics towards the batch's, then eval mode uses them.
    with torch.no_grad():
        for _ in range(29):
            model(thumbs)
        model.eval()
        eval_scores = model(thumbs)
    watched = ['extractor.features.0.block.0.weight', 'extractor.features.5.middle_dw_conv.weight', 'extractor.features.6.proj_norm.weight', 'extractor.classifier.weight', 'extractor.classifier.bias']
    named = dict(model.named_parameters())
    return {
        'n': n, 'numClasses': n_classes, 'counterStart': 3, 'spec': spec, 'thumbFormula': 'float32(0.5 + 0.5 sin(0.61 i + 1.7 floor(i / 768))) over the NHWC flat index i',
        'warmupPasses': 29, 'evalScores': r9(eval_scores), 'trainScores': r9(train_scores.detach()), 'targets': r9(targets),
        'loss': float(loss), 'runningAfterTrain': running, 'countersAfterTrain': counters,
        'grads': {k: r9(named[k].grad) for k in watched},
    }


def write_safetensors(path, tensors):
    """Minimal safetensors writer (8-byte LE header length, JSON header, little-endian raw data), independent of milkit's."""
    header, chunks, offset = {}, [], 0
    for key, tensor in tensors.items():
        if tensor.dtype == torch.int64:
            raw, dtype = tensor.numpy().astype('<i8').tobytes(), 'I64'
        else:
            raw, dtype = tensor.numpy().astype('<f4').tobytes(), 'F32'
        header[key] = {'dtype': dtype, 'shape': list(tensor.shape), 'data_offsets': [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * ((8 - len(text) % 8) % 8)
    with open(path, 'wb') as fh:
        fh.write(struct.pack('<Q', len(text)))
        fh.write(text)
        for chunk in chunks:
            fh.write(chunk)


def tiny_checkpoint(gen):
    """A DMIN with torch's own (xavier) init saved under the original keys, plus its eval logits on one bag."""
    torch.manual_seed(7)
    model = Dmin(8, 6, 4, 2, 3)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight)
            nn.init.zeros_(module.bias)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(f32(p))
    x = f32(torch.randn(9, 8, generator=gen))
    with torch.no_grad():
        logits = model.eval_forward(x)['logits']
    write_safetensors(os.path.join(OUT, 'hdmil-dmin-tiny.safetensors'), {k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    return {'dim': 8, 'hiddenDim': 6, 'attnDim': 4, 'numClasses': 2, 'degree': 3, 'x': r9(x), 'logits': r9(logits)}


def dump(name, payload):
    payload = {'generator': 'test/reference/hdmil_reference.py', 'torch': torch.__version__, 'seed': 2025, **payload}
    path = os.path.join(OUT, name)
    with open(path, 'w') as fh:
        json.dump(payload, fh, separators=(',', ':'))
    print(f'{path}: {os.path.getsize(path)} bytes')


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(2025)
    dump('hdmil-cka.json', cka_fixture(gen))
    dump('hdmil-dmin.json', {
        'binary': dmin_case(gen, n_classes=2, label=1, subtyping=False, k_sample=4),
        'threeClass': dmin_case(gen, n_classes=3, label=2, subtyping=True, k_sample=3),
        'tinyCheckpoint': tiny_checkpoint(gen),
    })
    dump('hdmil-lipn.json', lipn_fixture(gen))


if __name__ == '__main__':
    main()
