#!/usr/bin/python3
"""
Where a trained demo model loses the colour count: linear probes (fitted on training data, scored on held-out)
for the count of objects sharing a patch's object's colour, from the tower's features and the projector's output
at occupied patches, and for a colour-count question's answer from the decoder's state after each layer at the
position that predicts it. The decoder can answer a count no better than its state there carries one.

  /usr/bin/python3 tools/train-demo-vlm/probe_counts.py src/models/sparsevila-demo

Needs the dataset train.py writes (--data-dir). Counts above 3 are probed as 3.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402
from hfio import load_safetensors  # noqa: E402
from model import LlavaForConditionalGeneration  # noqa: E402

CLASSES = 4  # counts 0, 1, 2, 3+


def probe(x_train, y_train, x_test, y_test, steps=400):
    """Held-out accuracy of a linear classifier fitted (Adam, standardised inputs) on the training rows."""
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-5
    lin = torch.nn.Linear(x_train.shape[1], CLASSES)
    opt = torch.optim.Adam(lin.parameters(), 1e-2, weight_decay=1e-4)
    for _ in range(steps):
        loss = F.cross_entropy(lin((x_train - mu) / sd), y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (lin((x_test - mu) / sd).argmax(-1) == y_test).float().mean().item()


def patch_counts(model, data):
    """Tower features and projector outputs of every occupied patch, with its own-colour count."""
    with torch.no_grad():
        tower = model.vision_states(data.pixels(torch.arange(len(data.frames))))
        projected = model.model.multi_modal_projector(tower)
    own = train.own_color_counts(data.labels)[:, train.PATCH_CELL]
    occupied = own > 0
    return {"tower": tower[occupied], "projector": projected[occupied]}, own[occupied].clamp(max=CLASSES - 1)


def answer_states(model, data, lookup_layer):
    """The decoder's state after each layer at the position predicting each colour-count answer, the answer, the
    frame's count of every colour [turns, 6], and each head's attention mass of layer `lookup_layer` there on
    what a lookup of the asked colour should find [turns, heads]: the patches of that colour's objects, or, when
    there are none, the sink (train.SINK; the data's guides are built with object_lookups)."""
    layers = model.model.language_model.layers
    outs = {}
    hooks = [layer.register_forward_hook(lambda _m, _i, out, n=n: outs.__setitem__(n, out)) for n, layer in enumerate(layers)]
    attn = layers[lookup_layer].self_attn
    states, answers, frames, mass = {n: [] for n in range(len(layers))}, [], [], []
    attn.keep_probs = True
    with torch.no_grad():
        for b in range(0, len(data.items), 16):
            which = list(range(b, min(b + 16, len(data.items))))
            ids, valid, target, weight, px, _, _, _ = data.batch(which)
            train.loss_and_preds(model, ids, valid, target, weight, px)
            for row, i in enumerate(which):
                it = data.items[i]
                for query, keys, _words, _family, frame, target, *_ in it["guides"]:
                    if 0 <= target <= len(train.CELLS):  # a colour count's (see attention_guides)
                        answers.append(min(target, CLASSES - 1))
                        frames.append(it["images"][frame])
                        for n in states:
                            states[n].append(outs[n][row, query])
                        mass.append(attn.probs[row, :, query, keys].sum(-1))
    attn.keep_probs, attn.probs = False, None
    for h in hooks:
        h.remove()
    per_color, _ = train.frame_counts(data.labels[torch.tensor(frames, dtype=torch.long)])
    return ({n: torch.stack(v) for n, v in states.items()}, torch.tensor(answers), per_color.clamp(max=CLASSES - 1),
            torch.stack(mass))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a checkpoint folder written by train.py")
    p.add_argument("--data-dir", default="/tmp/sparsevila-demo-data")
    p.add_argument("--train", type=int, default=1500, help="training image conversations with a colour count")
    p.add_argument("--heldout", type=int, default=400, help="held-out image conversations")
    p.add_argument("--lookup-layer", type=int, default=1, help="the decoder layer whose lookup heads are measured")
    a = p.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(json.load(open(os.path.join(a.model, "config.json"))))
    model.load_state_dict(load_safetensors(os.path.join(a.model, "model.safetensors")))
    model.eval()
    tok = json.load(open(os.path.join(a.model, "tokenizer.json"), encoding="utf-8"))
    specials = {t["content"]: t["id"] for t in tok["added_tokens"]}
    lines = [ln for ln in train.read_lines(a.data_dir)
             if ln["media"]["kind"] == "image" and any(t["kind"] == "count-color" for t in ln["turns"])]
    splits = {"train": [ln for ln in lines if ln["split"] == "train"][:a.train],
              "heldout": [ln for ln in lines if ln["split"] == "heldout"][:a.heldout]}
    wanted = {ln["id"] for part in splits.values() for ln in part}
    tokens = {}
    with open(os.path.join(a.data_dir, "conversations.tokens.jsonl"), encoding="utf-8") as f:
        for row in map(json.loads, f):
            if row["id"] in wanted:
                tokens[row["id"]] = row
    data = {k: train.Data(a.data_dir, part, tokens, specials["<|endoftext|>"], specials["<image>"], object_lookups=True)
            for k, part in splits.items()}

    (x_tr, y_tr), (x_he, y_he) = patch_counts(model, data["train"]), patch_counts(model, data["heldout"])
    common = torch.bincount(y_he, minlength=CLASSES).max().item() / len(y_he)
    print(f"own-colour count of {len(y_he)} held-out occupied patches (most common count alone: {common:.3f}):")
    for where in x_tr:
        print(f"  from the {where}: {probe(x_tr[where], y_tr, x_he[where], y_he):.3f}")
    (s_tr, a_tr, c_tr, _), (s_he, a_he, c_he, mass) = (answer_states(model, data[k], a.lookup_layer) for k in ("train", "heldout"))
    none = a_he == 0
    print(f"attention mass of each head of layer {a.lookup_layer} at the answer position of held-out colour counts on the "
          f"asked colour's objects' patches (mean over {int((~none).sum())} turns), or on the sink when there are none "
          f"({int(none.sum())} turns):")
    for h in range(mass.shape[1]):
        print(f"  head {h}: objects {mass[~none, h].mean():.3f}, sink {mass[none, h].mean():.3f}")
    common = torch.bincount(a_he, minlength=CLASSES).max().item() / len(a_he)
    common_each = sum(torch.bincount(c_he[:, k], minlength=CLASSES).max().item() for k in range(c_he.shape[1])) / c_he.numel()
    print(f"from the decoder's state at the answer position of {len(a_tr)} training / {len(a_he)} held-out colour-count "
          f"turns: the answer, i.e. the asked colour's count (most common answer alone: {common:.3f}); and each "
          f"colour's count in the frame, mean over the 6 colours (most common count alone: {common_each:.3f}):")
    for n in s_tr:
        each = sum(probe(s_tr[n], c_tr[:, k], s_he[n], c_he[:, k]) for k in range(c_tr.shape[1])) / c_tr.shape[1]
        print(f"  after layer {n}: answer {probe(s_tr[n], a_tr, s_he[n], a_he):.3f}, each colour's count {each:.3f}")


if __name__ == "__main__":
    main()
