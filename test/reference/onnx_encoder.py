"""Image encoders exported to ONNX with torch.onnx.export, for the onnx feature extractor.

  /usr/bin/python3 test/reference/onnx_encoder.py small     # test/reference/fixtures/extract/small-cnn.onnx (committed, ~10 KB)
  /usr/bin/python3 test/reference/onnx_encoder.py resnet18 OUT.onnx   # ResNet-18-like encoder at 224 px for the bench

Both have a dynamic batch axis ("input": {0: "batch"}) and random weights from a fixed seed. The ResNet-18-like
encoder (basic blocks [2, 2, 2, 2], 64..512 channels, global average pooling -> 512-d) is written at bench set-up,
never committed (about 45 MB). goldens_feature_extractors.py runs the small one in torch for the expected
embeddings.
"""
import os
import sys

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
SMALL_PATH = os.path.join(HERE, 'fixtures', 'extract', 'small-cnn.onnx')
SMALL_INPUT = 32


class SmallCnn(nn.Module):
    """conv3x3(3->8)+BN+ReLU, maxpool 2, conv3x3 stride 2 (8->16)+ReLU, global average pool -> 16-d."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.head = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(self.conv2(x))
        return torch.flatten(self.head(x), 1)


def small_cnn():
    torch.manual_seed(0)
    model = SmallCnn()
    with torch.no_grad():
        # Non-trivial running statistics, so that eval-mode batch norm is exercised.
        model.bn1.running_mean.uniform_(-0.2, 0.2)
        model.bn1.running_var.uniform_(0.5, 1.5)
    return model.eval()


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.down is None else self.down(x)))


class ResNet18Like(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers = []
        cin = 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return torch.flatten(self.head(self.layers(self.stem(x))), 1)


def export(model, size, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    dummy = torch.zeros(2, 3, size, size)
    torch.onnx.export(model, dummy, path, input_names=['input'], output_names=['features'],
                      dynamic_axes={'input': {0: 'batch'}, 'features': {0: 'batch'}}, opset_version=13)


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else 'small'
    if which == 'small':
        export(small_cnn(), SMALL_INPUT, SMALL_PATH)
        print(f'wrote {os.path.relpath(SMALL_PATH)}')
    elif which == 'resnet18':
        torch.manual_seed(0)
        out = sys.argv[2]
        export(ResNet18Like().eval(), 224, out)
        print(f'wrote {out}')
    else:
        raise SystemExit(f'unknown encoder {which!r}: small or resnet18')


if __name__ == '__main__':
    main()
