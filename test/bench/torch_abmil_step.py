"""PyTorch reference for test/bench/blas.bench.ts: times ABMIL train steps (forward, backward, Adam).

Protocol: one JSON request per stdin line, {"n": N, "warmup": W, "steps": S}; one JSON reply per line,
{"n": N, "ms": [S step times]}. The bench keeps this process alive and interleaves its rounds with the tfjs ones.
Same network as the tfjs side: Linear 1024->512 + ReLU, gated attention 512->128 (tanh * sigmoid), 128->1,
softmax over the bag, 512->2 classifier, cross-entropy, Adam(lr=1e-4); every Linear has a bias.
Threads: torch.set_num_threads(1) with OpenBLAS's default threads, the fastest setting on this machine
(measured here: torch threads 2 oversubscribes the cores together with OpenBLAS's own threads).
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

D, HIDDEN, ATTN, CLASSES = 1024, 512, 128, 2


class Abmil(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(D, HIDDEN)
        self.attention_a = nn.Linear(HIDDEN, ATTN)
        self.attention_b = nn.Linear(HIDDEN, ATTN)
        self.attention_c = nn.Linear(ATTN, 1)
        self.classifier = nn.Linear(HIDDEN, CLASSES)

    def forward(self, x):
        h = F.relu(self.fc(x))  # [N, 512]
        a = self.attention_c(torch.tanh(self.attention_a(h)) * torch.sigmoid(self.attention_b(h)))  # [N, 1]
        a = torch.softmax(a.t(), dim=1)  # [1, N]
        z = a @ h  # [1, 512]
        return self.classifier(z)  # [1, 2]


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = Abmil()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    label = torch.tensor([1])
    bags = {}
    print(json.dumps({"ready": True, "torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        n = int(request["n"])
        if n not in bags:
            bags[n] = torch.randn(n, D)
        x = bags[n]
        times = []
        for i in range(int(request["warmup"]) + int(request["steps"])):
            start = time.perf_counter()
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), label)
            loss.backward()
            optimizer.step()
            loss.item()
            elapsed = (time.perf_counter() - start) * 1000
            if i >= int(request["warmup"]):
                times.append(elapsed)
        print(json.dumps({"n": n, "ms": times}), flush=True)


if __name__ == "__main__":
    main()
