"""MiniFASNetV2 (Silent-Face-Anti-Spoofing, Apache-2.0), our own PyTorch definition,
used ONLY as the liveness baseline: its weights stay in ../shared and nothing of it
is shipped.  Input: 80x80 BGR 0..255 crop of the face box scaled 2.7x (shifted to
stay inside the image); output: softmax over 3 classes, index 1 = live.

    python benchmarks/minifasnet.py   (self-check: loads the weights, scores two NUAA frames)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

# channel plan of MiniFASNetV2 ("1.8M_"): 49 widths consumed in order by the blocks below
V2_WIDTHS = [32, 32, 103, 103, 64, 13, 13, 64, 13, 13, 64, 13, 13, 64, 13, 13, 64, 231, 231, 128, 231, 231, 128, 52,
             52, 128, 26, 26, 128, 77, 77, 128, 26, 26, 128, 26, 26, 128, 308, 308, 128, 26, 26, 128, 26, 26, 128,
             512, 512]


class ConvBN(nn.Module):
    """conv (no bias) -> batch norm -> optional PReLU."""

    def __init__(self, cin, cout, k=1, s=1, p=0, groups=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        if act:
            self.prelu = nn.PReLU(cout)
        self.act = act

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.prelu(x) if self.act else x


class Bottleneck(nn.Module):
    """1x1 expand -> 3x3 depthwise (stride) -> 1x1 project, optional identity shortcut."""

    def __init__(self, w_in, w_mid, w_dw, w_out, stride, residual):
        super().__init__()
        self.conv = ConvBN(w_in, w_mid)
        self.conv_dw = ConvBN(w_mid, w_dw, 3, stride, 1, groups=w_mid)
        self.project = ConvBN(w_dw, w_out, act=False)
        self.residual = residual

    def forward(self, x):
        y = self.project(self.conv_dw(self.conv(x)))
        return x + y if self.residual else y


class Stage(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.model = nn.Sequential(*blocks)

    def forward(self, x):
        return self.model(x)


class MiniFASNetV2(nn.Module):
    def __init__(self, w=V2_WIDTHS, input_size=80, classes=3):
        super().__init__()
        self.conv1 = ConvBN(3, w[0], 3, 2, 1)
        self.conv2_dw = ConvBN(w[0], w[1], 3, 1, 1, groups=w[1])
        self.conv_23 = Bottleneck(w[1], w[2], w[3], w[4], 2, False)
        self.conv_3 = Stage([Bottleneck(w[i], w[i + 1], w[i + 2], w[i + 3], 1, True) for i in (4, 7, 10, 13)])
        self.conv_34 = Bottleneck(w[16], w[17], w[18], w[19], 2, False)
        self.conv_4 = Stage([Bottleneck(w[i], w[i + 1], w[i + 2], w[i + 3], 1, True) for i in (19, 22, 25, 28, 31, 34)])
        self.conv_45 = Bottleneck(w[37], w[38], w[39], w[40], 2, False)
        self.conv_5 = Stage([Bottleneck(w[i], w[i + 1], w[i + 2], w[i + 3], 1, True) for i in (40, 43)])
        self.conv_6_sep = ConvBN(w[46], w[47])
        k = (input_size + 15) // 16
        self.conv_6_dw = ConvBN(w[47], w[48], k, 1, 0, groups=w[48], act=False)
        self.linear = nn.Linear(512, 128, bias=False)
        self.bn = nn.BatchNorm1d(128)
        self.prob = nn.Linear(128, classes, bias=False)

    def forward(self, x):
        for name in ("conv1", "conv2_dw", "conv_23", "conv_3", "conv_34", "conv_4", "conv_45", "conv_5",
                     "conv_6_sep", "conv_6_dw"):
            x = getattr(self, name)(x)
        return self.prob(self.bn(self.linear(x.flatten(1))))


def load(path) -> MiniFASNetV2:
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = MiniFASNetV2()
    model.load_state_dict(state, strict=True)
    return model.eval()


def crop_box(img_w, img_h, box, scale=2.7):
    """MiniFASNet's patch: the box scaled (at most to fit the image), shifted inside."""
    x, y, w, h = box
    scale = min((img_h - 1) / h, (img_w - 1) / w, scale)
    nw, nh = w * scale, h * scale
    cx, cy = x + w / 2, y + h / 2
    x0, y0, x1, y1 = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if x0 < 0:
        x1, x0 = x1 - x0, 0
    if y0 < 0:
        y1, y0 = y1 - y0, 0
    if x1 > img_w - 1:
        x0, x1 = x0 - (x1 - img_w + 1), img_w - 1
    if y1 > img_h - 1:
        y0, y1 = y0 - (y1 - img_h + 1), img_h - 1
    return int(x0), int(y0), int(x1), int(y1)


def live_scores(model, rgb_images, boxes, batch=128) -> np.ndarray:
    """P(live) per (image, box)."""
    import cv2

    crops = []
    for rgb, box in zip(rgb_images, boxes):
        x0, y0, x1, y1 = crop_box(rgb.shape[1], rgb.shape[0], box)
        bgr = cv2.cvtColor(rgb[y0:y1 + 1, x0:x1 + 1], cv2.COLOR_RGB2BGR)
        crops.append(cv2.resize(bgr, (80, 80)))
    x = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32))
    with torch.no_grad():
        out = torch.cat([torch.softmax(model(x[i:i + batch]), 1) for i in range(0, len(x), batch)])
    return out[:, 1].numpy()


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from edge.pipeline import FaceFinder, read_image

    shared = Path(__file__).resolve().parent.parent.parent / "shared"
    m = load(shared / "weights/minifasnet/2.7_80x80_MiniFASNetV2.pth")
    finder = FaceFinder(None)
    for kind in ("real", "attack"):
        p = sorted((shared / "data/nuaa-train" / kind / "0001").glob("*.jpg"))[0]
        rgb = read_image(p)
        box = finder.find(rgb, chips="none")[0].face.box
        print(kind, p.name, f"P(live) = {live_scores(m, [rgb], [box])[0]:.3f}")
