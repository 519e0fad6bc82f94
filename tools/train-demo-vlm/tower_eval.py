#!/usr/bin/python3
"""
How well a stage-1 vision tower sees the world: its probes' accuracy on held-out and training frames, per patch
and per occupied cell (the cell's patch logits averaged), for the cell, shape, colour and size, and the frame's
counts (per colour, or of the patch's own object's colour; and of objects) as every patch reads them. The decoder can
answer no better than the tower reads; this says which of the two limits a run. Also how well the CLS
attention of the feature layer, the salience SparseVILA's prefill pruning keeps tokens by, ranks a frame's
patches: at each keep ratio, the share of occupied cells that keep at least one patch, against random keeping.

  /usr/bin/python3 tools/train-demo-vlm/tower_eval.py /tmp/sparsevila-demo-data/tower-s1234-....pt

The tower file is what train.py saves in --data-dir after stage 1 (its name holds the vision shape).
"""
import argparse
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402
from model import LlavaForConditionalGeneration  # noqa: E402


def probe_accuracy(model, heads, data, batch=256):
    n = len(data.frames)
    with torch.no_grad():
        feats = torch.cat([model.vision_states(data.pixels(torch.arange(i, min(n, i + batch)))) for i in range(0, n, batch)])
        labels = data.labels[:, train.PATCH_CELL]  # [n, 64, 3]
        x = feats.reshape(n * 64, -1)
        out = {"cell": (heads.cell(x).argmax(-1) == train.PATCH_CELL.repeat(n)).float().mean().item()}
        for k, name in enumerate(("shape", "color", "size")):
            logits = heads.attrs[k](x).reshape(n, 64, -1)
            lab = labels[..., k]
            occupied = lab > 0
            out[f"{name} patch"] = (logits.argmax(-1)[occupied] == lab[occupied]).float().mean().item()
            per_cell = []
            for c in range(9):
                sel = train.PATCH_CELL == c
                truth = lab[:, sel][:, 0]
                per_cell.append((logits[:, sel].mean(1).argmax(-1) == truth)[truth > 0].float())
            out[f"{name} cell"] = torch.cat(per_cell).mean().item()
        if heads.counts is not None:  # the frame's counts, read from every patch
            per_color, objects = train.frame_counts(data.labels)
            if "own" in heads.counts:  # its own object's colour's count, on the occupied patches
                own = train.own_color_counts(data.labels)[:, train.PATCH_CELL]
                guess = heads.counts["own"](x).reshape(n, 64, -1).argmax(-1)
                out["own colour count patch"] = (guess == own)[own > 0].float().mean().item()
            else:
                guess = heads.counts["color"](x).reshape(n, 64, len(train.COLORS), -1).argmax(-1)
                out["color counts patch"] = (guess == per_color[:, None]).float().mean().item()
            out["object count patch"] = (heads.counts["objects"](x).reshape(n, 64, -1).argmax(-1) == objects[:, None]).float().mean().item()
    return n, out


def salience_coverage(model, data, keep=(0.125, 0.25, 0.5), batch=256, seed=0):
    """Occupied cells with at least one kept patch when each frame keeps its top `keep` share of patches by CLS
    attention (the feature layer's, averaged over heads, as the engine computes it), and when it keeps a random
    share."""
    c = model.cfg
    layer = c.feature_layer if c.feature_layer >= 0 else c.v_layers + 1 + c.feature_layer
    n = len(data.frames)
    with torch.no_grad():
        cls = torch.cat([model.model.vision_tower.vision_model.hidden_states(data.pixels(torch.arange(i, min(n, i + batch))), layer,
                                                                             attn_layer=layer - 1)[1][:, :, 0, 1:].mean(1)
                         for i in range(0, n, batch)])  # [n, 64]
    occupied = data.labels[:, train.PATCH_CELL][..., 0] > 0  # [n, 64]: the patch's cell holds an object
    cells = occupied.new_zeros((n, 9)).index_put_((torch.arange(n)[:, None].expand(n, 64), train.PATCH_CELL[None].expand(n, 64)), occupied, accumulate=True)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k in keep:
        m = int(round(k * 64))
        for name, scores in (("cls", cls), ("random", torch.rand((n, 64), generator=g))):
            kept = torch.zeros((n, 64), dtype=torch.bool).scatter_(1, scores.topk(m, dim=1).indices, True)
            hit = torch.zeros((n, 9), dtype=torch.bool).index_put_((torch.arange(n)[:, None].expand(n, 64), train.PATCH_CELL[None].expand(n, 64)),
                                                                  kept & occupied, accumulate=True)
            out[f"keep {k:g} {name}"] = (hit[cells].float().mean().item())
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tower", help="a tower-*.pt file written by train.py")
    p.add_argument("--data-dir", default="/tmp/sparsevila-demo-data")
    p.add_argument("--conversations", type=int, default=600, help="conversations per split whose frames are read")
    a = p.parse_args()
    torch.set_num_threads(1)
    shape = re.search(r"-v(\d+)x(\d+)-", os.path.basename(a.tower))
    if not shape:
        raise SystemExit(f"{a.tower}: not a tower file written by train.py (no -v<hidden>x<layers>- in its name)")

    class Shape:  # what model_config reads; the decoder part is irrelevant here
        vision_hidden, vision_layers = int(shape[1]), int(shape[2])
        text_hidden, text_intermediate, text_layers, vocab_size, image_token, rope_theta = 64, 128, 1, 8, 7, 1e4

    model = LlavaForConditionalGeneration(train.model_config(Shape))
    saved = torch.load(a.tower)
    heads = train.AuxHeads(Shape.vision_hidden, scene=any(k.startswith("scene.") for k in saved["heads"]),
                           counts=next(("own" if k.startswith("counts.own.") else "frame"
                                        for k in saved["heads"] if k.startswith("counts.")), None))
    model.model.vision_tower.load_state_dict(saved["tower"])
    heads.load_state_dict(saved["heads"])
    lines = train.read_lines(a.data_dir)
    for split in ("heldout", "train"):
        part = [ln for ln in lines if ln["split"] == split][:a.conversations]
        no_ids = {ln["id"]: {"ids": [], "spans": [], "prompt_ends": []} for ln in part}
        data = train.Data(a.data_dir, part, no_ids, 0, -1)
        n, acc = probe_accuracy(model, heads, data)
        print(f"{split} ({n} frames): " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()), flush=True)
        cover = salience_coverage(model, data)
        print(f"  occupied cells keeping a patch: " + ", ".join(f"{k} {v:.3f}" for k, v in cover.items()), flush=True)


if __name__ == "__main__":
    main()
