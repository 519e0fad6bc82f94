#!/usr/bin/python3
"""
Trains the demo VLM (tiny LlavaForConditionalGeneration: CLIP tower + 2-layer projector + LLaMA decoder) on the
repo's synthetic world, with Debian's python3-torch on CPU, and writes a Hugging Face checkpoint folder.

  /usr/bin/python3 tools/train-demo-vlm/train.py            # the committed model (see README.md)

Steps: (1) build the TypeScript CLI and write the dataset (train split + held-out split whose scene layouts
never occur in train) with `node dist/src/cli/main.js dataset`; (2) tokenize every conversation with the
checkpoint's own tokenizer and chat template (hfio.py), images expanded to 64 `<image>` ids each, loss on the
assistant answers and their `<|im_end|>` only; (3) AdamW + warmup + a flat rate, then a cosine decay, for a fixed
number of steps, seeded and deterministic; (4) exact-match accuracy on the held-out split per question kind and per
turn; (5) write config/tokenizer/preprocessor files, model.safetensors (F32), training.json, expected.json (reference
logits for the TypeScript engine test) and a model card.
"""
import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time

# libgomp reads this when torch loads: threads that wait sleep instead of spinning, which matters on a CPU shared
# with other processes (spinning 2 threads on 2 busy cores made each op wait for a time slice: 4x slower).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import LlavaForConditionalGeneration, init_weights  # noqa: E402
from hfio import CLIP_MEAN, CLIP_STD, bytes_to_unicode, load_safetensors, save_safetensors  # noqa: E402
from bpe import write_tokenizer  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "../.."))
IMAGE_TOKENS = 64  # (64 / 8)² patches per image, CLS dropped ("default" strategy)

# The world's vocabulary, for the vision tower's auxiliary targets (index 0 = empty cell).
CELLS = ["top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right"]
SHAPES = ["circle", "square", "triangle", "cross", "ring"]
COLORS = ["red", "green", "blue", "yellow", "purple", "orange"]
SIZES = ["small", "large"]
FRAMES = 8  # frames per video (the world's meta.json "frames"): the decoder probes' frame classes


def model_config(a):
    return {
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "vision_config": {
            "model_type": "clip_vision_model",
            "hidden_size": a.vision_hidden,
            "intermediate_size": a.vision_hidden * 4,
            "num_hidden_layers": a.vision_layers,
            "num_attention_heads": 4,
            "image_size": 64,
            "patch_size": 8,
            "num_channels": 3,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-05,
            "projection_dim": a.vision_hidden,
        },
        "text_config": {
            "model_type": "llama",
            "hidden_size": a.text_hidden,
            "intermediate_size": a.text_intermediate,
            "num_hidden_layers": a.text_layers,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": a.vocab_size,
            "rms_norm_eps": 1e-05,
            "rope_theta": a.rope_theta,
            "max_position_embeddings": 8192,
            "hidden_act": "silu",
            "tie_word_embeddings": False,
        },
        "image_token_index": a.image_token,
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "projector_hidden_act": "gelu",
        "tie_word_embeddings": False,
    }


PREPROCESSOR = {
    "image_processor_type": "CLIPImageProcessor",
    "do_resize": True,
    "size": {"shortest_edge": 64},
    "do_center_crop": True,
    "crop_size": {"height": 64, "width": 64},
    "do_rescale": True,
    "rescale_factor": 0.00392156862745098,
    "do_normalize": True,
    "image_mean": CLIP_MEAN,
    "image_std": CLIP_STD,
    "resample": 3,
    "do_convert_rgb": True,
}
PROCESSOR = {
    "processor_class": "LlavaProcessor",
    "patch_size": 8,
    "vision_feature_select_strategy": "default",
    "image_token": "<image>",
    "num_additional_image_tokens": 1,
}


# ------------------------------------------------------------------------------------------------ data


def make_dataset(a, out):
    """Runs the repo's dataset writer (TypeScript) unless `out` already holds that exact dataset."""
    meta_path = os.path.join(out, "meta.json")
    if os.path.exists(meta_path):
        meta = json.load(open(meta_path))
        c = meta["counts"]
        if meta["seed"] == a.data_seed and c["train"] == a.train_count and c["heldout"] == a.heldout_count \
                and abs(meta["videoFraction"] - a.video_fraction) < 1e-9:
            print(f"dataset: reusing {out}", flush=True)
            return checked_frames(meta, meta_path)
    if not a.skip_build:
        print("dataset: building the CLI (npx tsc -p tsconfig.json)", flush=True)
        r = subprocess.run(["npx", "tsc", "-p", "tsconfig.json"], cwd=ROOT)
        if r.returncode != 0:
            if not os.path.exists(os.path.join(ROOT, "dist/src/cli/main.js")):
                raise SystemExit("tsc failed and there is no dist/src/cli/main.js")
            print("dataset: tsc reported errors; using the emitted dist/ anyway", flush=True)
    cmd = ["node", "dist/src/cli/main.js", "dataset", "--out", out, "--seed", str(a.data_seed),
           "--count", str(a.train_count), "--heldout", str(a.heldout_count),
           "--videos", str(a.video_fraction), "--force", "--quiet"]
    print("dataset: " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return checked_frames(json.load(open(meta_path)), meta_path)


def checked_frames(meta, meta_path):
    """The dataset's meta.json, once its videos are known to have the FRAMES frames the decoder probes classify."""
    if meta["frames"] != FRAMES:
        raise SystemExit(f"{meta_path}: videos of {meta['frames']} frames; the trainer's probes expect FRAMES = {FRAMES}")
    return meta


def read_lines(d):
    with open(os.path.join(d, "conversations.jsonl"), encoding="utf-8") as f:
        return [json.loads(x) for x in f if x.strip()]


def build_tokenizer(lines, out_dir):
    """Learns the byte-level BPE on the training split's questions and answers plus the template's own words,
    and writes tokenizer.json / tokenizer_config.json to `out_dir`."""
    texts = []
    for ln in lines:
        if ln["split"] == "train":
            for t in ln["turns"]:
                texts += [t["question"], t["answer"]]
    # The template's words occur once per turn: weigh them as such.
    texts += ["user\n", "assistant\n"] * len(texts) + [f"Frame {k}: " for k in range(1, 33)] * 200
    specials, vocab_size, n_merges = write_tokenizer(out_dir, texts)
    print(f"tokenizer: {n_merges} merges, vocabulary {vocab_size}", flush=True)
    return specials, vocab_size


def encode_all(conversations_jsonl, tokenizer_dir):
    """Every conversation's ids and answer spans, made by the engine's tokenizer and template (encode.mjs)."""
    out = conversations_jsonl[:-len(".jsonl")] + ".tokens.jsonl"
    subprocess.run(["node", os.path.join(HERE, "encode.mjs"), conversations_jsonl, tokenizer_dir, str(IMAGE_TOKENS), out],
                   cwd=ROOT, check=True)
    with open(out, encoding="utf-8") as f:
        return {r["id"]: r for r in (json.loads(x) for x in f if x.strip())}


def encode_conversations(conversations, path, tokenizer_dir):
    """Writes conversations the trainer made (captions, lessons, ...) to `path` as JSONL and encodes them."""
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(c) + "\n" for c in conversations)
    return encode_all(path, tokenizer_dir)


CELL_PHRASE = ["top left", "top middle", "top right", "middle left", "center", "middle right", "bottom left",
               "bottom middle", "bottom right"]


QUESTION_KINDS = {"shape-color", "shape-size", "cell-shape", "cell-color", "count-color", "exists", "first-appear",
                  "frame-count", "frame-where", "frame-shape-color", "frame-cell-shape"}
DEFAULT_KIND_WEIGHTS = "count-color=2,frame-count=2,frame-where=2,shape-size=2,first-appear=2"


def parse_kind_weights(spec):
    """"count-color=2,frame-where=2" -> {"count-color": 2.0, "frame-where": 2.0}."""
    out = {}
    for part in filter(None, (x.strip() for x in spec.split(","))):
        kind, _, w = part.partition("=")
        try:
            weight = float(w)
        except ValueError:
            weight = -1.0
        if kind not in QUESTION_KINDS or weight < 0:
            raise argparse.ArgumentTypeError(f"expected KIND=WEIGHT with KIND one of {sorted(QUESTION_KINDS)} and "
                                             f"WEIGHT ≥ 0, got {part!r}")
        out[kind] = weight
    return out


def parse_curriculum(spec):
    """"cell-color+cell-shape:400,region:800" -> [({"cell-color", "cell-shape"}, 400), ({"region"}, 800)]."""
    phases = []
    for part in filter(None, (x.strip() for x in spec.split(","))):
        kinds, _, steps = part.rpartition(":")
        if not kinds or not steps.isdigit():
            raise SystemExit(f"--curriculum: expected KIND[+KIND...]:STEPS, got {part!r}")
        phases.append((set(kinds.split("+")), int(steps)))
    return phases


def lesson_turns(lines, kinds, name, context=False):
    """One lesson of the curriculum: each training image conversation cut to its first question whose kind is in
    `kinds` ("region" = every region question that names its cells): a single turn right after the image or, with
    `context`, that turn after the conversation's earlier turns (so the lookup is learned at the distances later
    turns have)."""
    out = []
    for ln in lines:
        if ln["split"] != "train" or ln["media"]["kind"] != "image":
            continue
        at = [i for i, t in enumerate(ln["turns"]) if t["kind"] in kinds
              or ("region" in kinds and t.get("scope") == "region" and t.get("cells"))]
        if at:
            turns = ln["turns"][:at[-1] + 1] if context else [ln["turns"][at[0]]]
            out.append({**ln, "id": f"{name}-" + ln["id"], "turns": turns})
    if not out:
        raise SystemExit(f"--curriculum: no training image asks a question of the kinds {'+'.join(sorted(kinds))} "
                         "(video kinds have no lessons)")
    return out


def caption_conversations(lines, fraction, rng):
    """Captioning conversations for a `fraction` of the training media: "Describe the image." answered cell by
    cell ("top left: red small circle; top middle: nothing; ..."), from the scene's truth; for a video, one of its
    frames on its own. LLaVA's first stage aligns the projector on captions the same way: here they give the
    decoder a dense, short-range signal for reading a named cell, which the world's one-word answers give only
    sparsely."""
    out = []
    for ln in lines:
        if ln["split"] != "train" or rng.random() >= fraction:
            continue
        paths = ln["media"]["paths"]
        frame = rng.randrange(len(paths))
        lab = cell_labels(ln["truth"], frame)
        parts, objects = [], []
        for c in range(9):
            shape, color, size = lab[c].tolist()
            if shape:
                o = {"cell": CELLS[c], "shape": SHAPES[shape - 1], "color": COLORS[color - 1], "size": SIZES[size - 1]}
                objects.append(o)
                parts.append(f"{CELL_PHRASE[c]}: {o['color']} {o['size']} {o['shape']}")
            else:
                parts.append(f"{CELL_PHRASE[c]}: nothing")
        out.append({"id": "caption-" + ln["id"], "split": "train", "media": {"kind": "image", "paths": [paths[frame]]},
                    "turns": [{"kind": "caption", "question": "Describe the image.", "answer": "; ".join(parts)}],
                    "truth": {"scene": {"objects": objects}}})
    return out


def where_conversations(lines, fraction, rng, turns=3):
    """"Where is the red circle?" answered with its cell ("top-left"), for a `fraction` of the training images, up to
    `turns` objects each (those whose colour and shape no other object shares). The world asks where only of video
    frames ("... in frame k?", 5.7% of its turns), and no other question is answered with a cell: the decoder
    learns to name a cell from the captions alone, which list the cells in a fixed order instead of reading one
    from the object found. Like the captions these are training data only; the held-out set is the world's."""
    out = []
    for ln in lines:
        if ln["split"] != "train" or ln["media"]["kind"] != "image" or rng.random() >= fraction:
            continue
        objs = ln["truth"]["scene"]["objects"]
        unique = [o for o in objs if sum(p["color"] == o["color"] and p["shape"] == o["shape"] for p in objs) == 1]
        rng.shuffle(unique)
        asked = [{"kind": "where", "question": f"Where is the {o['color']} {o['shape']}?", "answer": o["cell"],
                  "scope": "region", "cells": [o["cell"]]} for o in unique[:turns]]
        if asked:
            out.append({**ln, "id": "where-" + ln["id"], "turns": asked})
    return out


PATCH_CELL = torch.tensor([(8 * r + 4) * 3 // 64 * 3 + (8 * c + 4) * 3 // 64 for r in range(8) for c in range(8)])


def frame_counts(labels):
    """labels [n, 9, 3] (cell_labels of n frames) -> objects of each colour [n, 6], and objects in all [n]."""
    per_color = (labels[..., 1][:, :, None] == torch.arange(1, len(COLORS) + 1)).sum(1)
    return per_color, (labels[..., 0] > 0).sum(1)


def own_color_counts(labels):
    """labels [n, 9, 3] -> per cell, how many of the frame's objects share the colour of the cell's object (0 for
    an empty cell) [n, 9]."""
    color = labels[..., 1]  # 0 = empty
    same = (color[:, :, None] == color[:, None, :]) & (color[:, None, :] > 0)
    return torch.where(color > 0, same.sum(2), 0)


def cell_labels(truth, frame):
    """[9, 3] long: per grid cell, (shape, colour, size) of the object in it, 1-based; 0 when the cell is empty."""
    lab = torch.zeros(9, 3, dtype=torch.long)
    if "scene" in truth:
        objs = [(o["cell"], o) for o in truth["scene"]["objects"]]
    else:
        objs = [(a["cells"][frame], a) for a in truth["video"]["actors"] if a["cells"][frame] is not None]
    for cell, o in objs:
        lab[CELLS.index(cell)] = torch.tensor([SHAPES.index(o["shape"]) + 1, COLORS.index(o["color"]) + 1,
                                               SIZES.index(o["size"]) + 1])
    return lab


class Data:
    """All conversations of one split, as ids, answer spans and images (uint8 [N, 64, 64, 3]), with every
    image's per-cell contents for the vision tower's auxiliary loss."""

    def __init__(self, d, lines, tokens, pad, image_token, kind_weights=None, object_lookups=False):
        self.items = []
        kind_weights = kind_weights or {}
        frames, labels = [], []
        self.pad = pad
        for ln in lines:
            paths = ln["media"]["paths"]
            first = len(frames)
            for f, p in enumerate(paths):
                im = Image.open(os.path.join(d, p)).convert("RGB")
                frames.append(np.asarray(im, dtype=np.uint8))
                labels.append(cell_labels(ln["truth"], f))
            tk = tokens[ln["id"]]
            self.items.append({
                "id": ln["id"], "ids": tk["ids"], "spans": [tuple(x) for x in tk["spans"]],
                "prompt_ends": tk["prompt_ends"], "images": list(range(first, len(frames))),
                "kinds": [t["kind"] for t in ln["turns"]], "media": ln["media"], "turns": ln["turns"],
                "weights": [kind_weights.get(t["kind"], 1.0) for t in ln["turns"]],
                "guides": attention_guides(tk, ln["turns"], image_token, object_lookups),
                "frame_tags": frame_tag_guides(tk, image_token),
            })
        self.frames = torch.from_numpy(np.stack(frames))  # [N, 64, 64, 3] uint8
        self.labels = torch.stack(labels)  # [N, 9, 3]
        self.mean = torch.tensor(CLIP_MEAN, dtype=torch.float32)
        self.std = torch.tensor(CLIP_STD, dtype=torch.float32)

    def subset(self, n):
        d = Data.__new__(Data)
        d.__dict__.update(self.__dict__)
        d.items = self.items[:n]
        return d

    def pixels(self, idx):
        """CLIPImageProcessor on already-64×64 images: ×1/255 then (x − mean) / std, as [n, 3, 64, 64]."""
        x = self.frames[idx].to(torch.float32) * np.float32(1 / 255)
        x = (x - self.mean) / self.std
        return x.permute(0, 3, 1, 2).contiguous()

    def batch(self, which):
        items = [self.items[i] for i in which]
        T = max(len(it["ids"]) for it in items)
        ids = torch.full((len(items), T), self.pad, dtype=torch.long)
        valid = torch.zeros((len(items), T), dtype=torch.bool)
        target = torch.zeros((len(items), T), dtype=torch.bool)  # position p predicts ids[p + 1]
        weight = torch.zeros((len(items), T), dtype=torch.float32)
        imgs = []
        for b, it in enumerate(items):
            n = len(it["ids"])
            ids[b, :n] = torch.tensor(it["ids"])
            valid[b, :n] = True
            for (s, e), w in zip(it["spans"], it["weights"]):
                target[b, s - 1:e - 1] = True
                weight[b, s - 1:e - 1] = w
            imgs += it["images"]
        idx = torch.tensor(imgs, dtype=torch.long)
        # guides: (row, query position, [T] image positions the question is about (1 each for a lookup; for a
        # uniform read, family 2, the share of attention each should get), [T] bool of the question's own tokens,
        # lookup family, the frame's labels, the lookup probe's target, what the question names)
        guides = [(b, *g) for b, it in enumerate(items) for g in it["guides"]]
        # the frame each guided turn looks at (index into self.labels), for the read probe's counts
        g_frames = torch.tensor([items[g[0]]["images"][g[5]] for g in guides], dtype=torch.long)
        g_rows = torch.tensor([g[0] for g in guides], dtype=torch.long)
        g_query = torch.tensor([g[1] for g in guides], dtype=torch.long)
        g_family = torch.tensor([g[4] for g in guides], dtype=torch.long)
        g_target = torch.tensor([g[6] for g in guides], dtype=torch.long)
        g_named = torch.tensor([g[7] for g in guides], dtype=torch.long).reshape(-1, 4)
        g_keys = torch.zeros((len(guides), T), dtype=torch.float32)
        g_words = torch.zeros((len(guides), T), dtype=torch.bool)
        for n, (_, _, keys, words, family, *_) in enumerate(guides):
            g_keys[n, keys] = torch.tensor(read_weights(len(keys))) if family == 2 else 1.0
            g_words[n, words] = True
        # frame tags: (row, image token position, [T] bool of its frame's number)
        tags = [(b, q, k) for b, it in enumerate(items) for q, k in it["frame_tags"]]
        f_rows = torch.tensor([t[0] for t in tags], dtype=torch.long)
        f_query = torch.tensor([t[1] for t in tags], dtype=torch.long)
        f_keys = torch.zeros((len(tags), T), dtype=torch.bool)
        f_keys[torch.arange(len(tags)), torch.tensor([t[2] for t in tags], dtype=torch.long)] = True
        return (ids, valid, target, weight, self.pixels(idx), self.labels[idx][:, PATCH_CELL],  # labels: [n, 64, 3]
                (g_rows, g_query, g_keys, g_words, g_family, self.labels[g_frames], g_target, g_named),
                (f_rows, f_query, f_keys))


def attention_guides(tokens, turns, image_token, object_lookups=False):
    """For each turn that names what it looks at: (the position that predicts its first answer token, the positions
    of the image tokens the answer depends on, in the frame it names, the positions of the question's own words,
    its lookup family, the frame's index, the lookup probe's target). Region turns look at the asked cells
    (family 0 when the question names the cell, 1 when it names a shape or colour); "first appear" at the actor's
    cell in its first frame (family 1); counts, and "is there" questions that no single cell decides, at every
    image token of the frame (family 2: a uniform read, which is how attention counts: see read_weights). With
    `object_lookups`, colour counts and "is there" questions are lookups instead (family 1): toward the cells of the
    objects they name or, when the frame holds none, toward SINK; see OBJECT_LOOKUPS. The trainer's attention
    guidance pulls one decoder head's attention to those tokens and, a layer below, one head's attention to the
    question. The lookup probe's target (see DecoderProbes) is a lookup's answer (its index in LOOKUP_ANSWERS; −1
    for a uniform read); the question probe's (see named_in) what the question names."""
    ids = tokens["ids"]
    image_pos = [p for p, t in enumerate(ids) if t == image_token]
    out = []
    for (s, _), t in zip(tokens["spans"], turns):
        frame = t.get("frame", 1) - 1  # 1-based in the world; an image is frame 1
        block = image_pos[frame * IMAGE_TOKENS:(frame + 1) * IMAGE_TOKENS]
        lookup = object_lookups and t["kind"] in OBJECT_LOOKUPS
        if t.get("scope") == "region" or t["kind"] == "first-appear" or lookup:
            if t.get("cells"):
                cells = {CELLS.index(c) for c in t["cells"]}
                keys = [block[k] for k in range(IMAGE_TOKENS) if int(PATCH_CELL[k]) in cells]
            elif lookup:
                keys = [SINK]  # nothing matches: the lookup rests on the sink, whose value says "none"
            else:
                continue
            family = 0 if t["kind"] in CELL_NAMED else 1
        else:
            keys, family = block, 2
        # The prompt ends "<|im_end|> \n <|im_start|> assistant \n"; the user message opens "<|im_start|> user \n",
        # and its question follows this turn's images, if any.
        header = s - 3
        user = max(p for p in range(header) if ids[p] == ids[header]) + 3
        start = max([user] + [p + 2 for p in range(user, header) if ids[p] == image_token])
        words = list(range(start, s - 5))
        target = LOOKUP_ANSWERS.index(t["answer"]) if family < 2 else -1
        out.append((s - 1, keys, words, family, frame, target, named_in(t)))
    return out


# The lookup probe's classes (DecoderProbes.lookup): every answer a lookup gives. Counts come first, so a colour
# count's target is its count (probe_counts.py selects them so).
LOOKUP_ANSWERS = [str(n) for n in range(len(CELLS) + 1)] + ["no", "yes"] + CELLS + COLORS + SHAPES + SIZES + ["nothing"]


def named_in(turn):
    """What a question names, for the question probe: (its colour, 1..6, its shape, 1..5, the cell it asks about by
    name, 1..9, and the frame, 1..FRAMES, in "... in frame k?"; 0 where it names none)."""
    words = turn["question"].rstrip("?").split()
    color = next((i + 1 for i, c in enumerate(COLORS) if c in words), 0)
    shape = next((i + 1 for i, c in enumerate(SHAPES) if c in words), 0)
    cell = CELLS.index(turn["cells"][0]) + 1 if turn["kind"] in CELL_NAMED else 0
    frame = re.search(r"\bframe (\d+)", turn["question"])  # "In which frame does ..." names none
    return color, shape, cell, int(frame[1]) if frame else 0


def read_weights(n):
    """How a uniform read over a frame's n = 64 patches should split its attention: 1/9 per grid cell, shared by
    the cell's patches. Every patch of a cell carries that cell's object, and cells span 4, 6 or 9 patches, so
    this is the split at which the read's output is the mean over cells: a count over 9, not over patches."""
    assert n == IMAGE_TOKENS
    per_cell = torch.bincount(PATCH_CELL, minlength=len(CELLS)).float()
    return (1.0 / (len(CELLS) * per_cell[PATCH_CELL])).tolist()


def frame_tag_guides(tokens, image_token):
    """For a video (more than one image block): (image token position, the position of its frame's number in the
    "Frame k: " tag before the block) for every image token. Rotary positions are relative, so nothing else tells
    an image token which frame it is in; the guidance teaches one first-layer head to copy the number in."""
    ids = tokens["ids"]
    image_pos = [p for p, t in enumerate(ids) if t == image_token]
    if len(image_pos) <= IMAGE_TOKENS:
        return []
    out = []
    for f in range(0, len(image_pos), IMAGE_TOKENS):
        tag = image_pos[f] - 3  # "Frame", " k", ":", " ", then the block
        out += [(p, tag) for p in image_pos[f:f + IMAGE_TOKENS]]
    return out


# Kinds that name objects by colour (and shape) and ask whether or how many there are, guided as lookups with
# --object-lookups: toward the named objects' cells and, when the frame holds none, toward SINK, the conversation's
# first token (<|im_start|>). A lookup must rest somewhere when nothing matches; guided to the image it lands on
# whatever patch is least unlike the question, whose value then reads as a match. The first token attends only to
# itself, so its keys and values are unlike any other's: the one place whose value can mean "none". It is text, so
# no visual-token budget prunes it. A colour count then needs every patch to carry how many objects share its
# colour (--count-probe own): the object found answers the count.
OBJECT_LOOKUPS = {"count-color", "exists"}
SINK = 0

# Region kinds whose question names the object by its cell (the lookup is by position); the others name it by
# shape or colour (the lookup is by content). --guide-split-heads guides the two on different heads.
CELL_NAMED = {"cell-color", "cell-shape", "frame-cell-shape"}


def length_batches(data, batch_tokens, rng):
    """Shuffled batches of similar-length conversations, each about `batch_tokens` padded tokens."""
    order = list(range(len(data.items)))
    rng.shuffle(order)
    out = []
    chunk = 2048
    for c in range(0, len(order), chunk):
        part = sorted(order[c:c + chunk], key=lambda i: len(data.items[i]["ids"]))
        cur, longest = [], 0
        for i in part:
            n = len(data.items[i]["ids"])
            if cur and max(longest, n) * (len(cur) + 1) > batch_tokens:
                out.append(cur)
                cur, longest = [], 0
            cur.append(i)
            longest = max(longest, n)
        if cur:
            out.append(cur)
    rng.shuffle(out)
    return out


# ------------------------------------------------------------------------------------------------ model


class AuxHeads(torch.nn.Module):
    """Linear probes on every patch of the tower's selected layer: which grid cell the patch lies in, and the
    shape, colour and size of the object in that cell (or none). Their loss teaches the tower what the world's
    questions ask about, as a pretrained CLIP tower would already know; the heads are not part of the checkpoint.
    With `scene`, one more probe reads the whole grid (every cell's shape, colour and size) from the CLS token:
    a CLS that summarises the image must attend to its objects, as a contrastively trained CLIP's CLS does, and
    that attention is the salience SparseVILA prunes by (without it the CLS is never trained and its attention
    ranks patches arbitrarily). With `counts`, every patch also predicts the whole frame's counts (objects of each
    colour, objects in all): a count question then reads the same answer from whichever patches it attends, as a
    pretrained CLIP's patch tokens carry global content. Without it the decoder had to count by averaging over
    the frame, and it never learned to (every colour count answered "0": 39.7% of held-out count turns).
    `counts="own"` asks instead how many of the frame's objects share the colour of the patch's own object (and
    how many objects in all): a colour count is then a lookup of an object of that colour (--object-lookups)."""

    def __init__(self, hidden, scene=False, counts=None):
        """counts: None, "frame" (each colour's count, and of objects) or "own" (see above)."""
        super().__init__()
        self.cell = torch.nn.Linear(hidden, len(CELLS))
        self.attrs = torch.nn.ModuleList([torch.nn.Linear(hidden, len(v) + 1) for v in (SHAPES, COLORS, SIZES)])
        self.scene = torch.nn.ModuleList([torch.nn.Linear(hidden, len(CELLS) * (len(v) + 1)) for v in (SHAPES, COLORS, SIZES)]) \
            if scene else None
        # per patch: how many objects of each colour the frame holds (or of its own object's colour), and how many
        # objects in all
        assert counts in (None, "frame", "own"), counts
        self.counts = None if counts is None else torch.nn.ModuleDict({
            "color" if counts == "frame" else "own":
                torch.nn.Linear(hidden, (len(COLORS) if counts == "frame" else 1) * (len(CELLS) + 1)),
            "objects": torch.nn.Linear(hidden, len(CELLS) + 1),
        })

    def count_loss(self, feats, labels):
        """feats [n, 64, H]; labels [n, 9, 3]. Every patch predicts the frame's counts: per colour (or of its own
        object's colour: 0 on an empty cell), and of objects."""
        n = feats.shape[0]
        x = feats.reshape(n * 64, -1)
        per_color, objects = frame_counts(labels)
        if "own" in self.counts:
            color = F.cross_entropy(self.counts["own"](x), own_color_counts(labels)[:, PATCH_CELL].reshape(-1))
        else:
            color_logits = self.counts["color"](x).reshape(n * 64 * len(COLORS), -1)
            color = F.cross_entropy(color_logits, per_color.repeat_interleave(64, 0).reshape(-1))
        return color + F.cross_entropy(self.counts["objects"](x), objects.repeat_interleave(64))

    def scene_loss(self, cls, labels):
        """cls [n, H]; labels [n, 9, 3] (shape, colour, size of each cell's object, 0 = empty)."""
        n = cls.shape[0]
        return sum(F.cross_entropy(head(cls).reshape(n * len(CELLS), -1), labels[..., k].reshape(-1))
                   for k, head in enumerate(self.scene))

    def loss(self, feats, labels):
        """feats [n, 64, H]; labels [n, 64, 3] (shape, colour, size of the patch's cell, 0 = empty)."""
        n = feats.shape[0]
        x = feats.reshape(n * 64, -1)
        loss = F.cross_entropy(self.cell(x), PATCH_CELL.repeat(n))
        for k, head in enumerate(self.attrs):
            loss = loss + F.cross_entropy(head(x), labels[..., k].reshape(-1))
        return loss


def guide_loss(model, rows, query, keys, layer, heads, spread=None):
    """What the heads `heads` ([G, n] head indices per turn) of decoder layer `layer` attend at the positions
    `query`, against `keys` ([G, T]): −log of the mass on the keys (a lookup: where within them is free), or, for
    the turns `spread` marks, the KL divergence from `keys` as a distribution (a read: the split matters); mean over
    turns and heads."""
    if rows.numel() == 0:
        return torch.zeros(())
    probs = model.model.language_model.layers[layer].self_attn.probs  # [B, H, T, T]
    p = probs[rows[:, None], heads, query[:, None], :]  # [G, n, T]
    t = keys[:, None, :].to(p.dtype)
    loss = -torch.log((p * t).sum(-1) + 1e-6)
    if spread is not None:
        kl = (torch.special.xlogy(t, t) - t * torch.log(p + 1e-6)).sum(-1)  # 0 when the split is exact
        loss = torch.where(spread[:, None], kl, loss)
    return loss.mean()


def pretrain_tower(model, heads, data, steps, batch_images, lr, rng, scene_weight=0.0, count_weight=0.0, log=print):
    """Stage 1: the vision tower alone, on the auxiliary probes (which cell, and the shape, colour and size of that
    cell's object, for every patch), so that the decoder starts from a tower that already sees the world, as a
    LLaVA decoder starts from a pretrained CLIP. Cheap: no decoder, 64 tokens an image."""
    params = list(model.model.vision_tower.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    n = len(data.frames)
    for step in range(1, steps + 1):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, step / 50)
        idx = torch.tensor([rng.randrange(n) for _ in range(batch_images)], dtype=torch.long)
        states = model.vision_states(data.pixels(idx), with_cls=True)
        loss = heads.loss(states[:, -IMAGE_TOKENS:], data.labels[idx][:, PATCH_CELL])
        if scene_weight > 0:
            loss = loss + scene_weight * heads.scene_loss(states[:, 0], data.labels[idx])
        if count_weight > 0:
            loss = loss + count_weight * heads.count_loss(states[:, -IMAGE_TOKENS:], data.labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 100 == 0 or step == steps:
            log(f"tower step {step}/{steps}: probe loss {loss.item():.3f}")


def loss_and_preds(model, ids, valid, target, weight, px, labels=None, heads=None):
    feats = model.vision_states(px)
    emb = model.embed(ids, image_features=model.model.multi_modal_projector(feats))
    b, t = ids.shape
    pos = torch.arange(t)[None].expand(b, t)
    h = model.model.language_model(emb, pos, valid)
    sel = target.nonzero(as_tuple=True)
    logits = model.lm_head(h[sel])
    answers = ids[(sel[0], sel[1] + 1)]
    w = weight[sel]
    loss = (F.cross_entropy(logits, answers, reduction="none") * w).sum() / w.sum()
    aux = heads.loss(feats, labels) if heads is not None else torch.zeros(())
    return loss, aux, logits.argmax(-1), answers


class DecoderProbes(torch.nn.Module):
    """Training-only linear probes on the decoder's state after a guided layer, at the position that predicts a
    turn's answer: what the guided head brought there must be readable from it. The answer loss alone never made
    a read carry a count to the answer position (probe_counts.py: the answer is at chance there after every
    layer); these ask for it at that position directly, so the head's value and output projections must carry it.
    - read: at each uniform read (family 2), the frame's counts (objects in all; with `per_color`, objects of
      each colour too: only a tower with --count-probe frame carries them).
    - lookup: at each lookup (family 0 or 1: a named cell or object, and with --object-lookups colour counts and
      "is there"), its answer: the count a colour count answers, whether an "is there" finds its object, the
      colour, shape, size or cell it asks, the frame a "first appear" answers. Asked only for counts and yes/no,
      a "where" put 79% of the lookup head's attention on the object's patches, whose features tell their cell
      without error, and still answered 16% right; and the size of a named shape, read the same way, was right
      for 57–99% of the turns from run to run.
    - question: after the question layer (--guide-question-layer), what the question names (named_in): the colour,
      shape, cell and frame the lookup a layer above must match. Without it the asked colour of a colour count was
      not at the answer position after that layer (a linear probe: 36%, six colours), so no lookup by colour could
      be learned (26–30% of the lookup head's attention on the asked colour's objects, even in a run of colour
      counts alone). Asked for colour, shape and cell only, it pushed the frame out: a linear probe read the asked
      frame there 16% of the time (94% without the probe), the read and lookup heads found the wrong frame (13–21%
      of their attention on the asked one), and object counts in a frame fell from 98% to 35%."""

    def __init__(self, hidden, per_color=True):
        super().__init__()
        self.per_color = per_color
        self.read = torch.nn.Linear(hidden, (len(COLORS) if per_color else 0) * (len(CELLS) + 1) + len(CELLS) + 1)
        self.lookup = torch.nn.Linear(hidden, len(LOOKUP_ANSWERS))
        self.question = torch.nn.ModuleList([torch.nn.Linear(hidden, n + 1)
                                             for n in (len(COLORS), len(SHAPES), len(CELLS), FRAMES)])

    def question_loss(self, states, rows, query, named):
        if rows.numel() == 0:
            return torch.zeros(())
        x = states[rows, query]
        return sum(F.cross_entropy(head(x), named[:, k]) for k, head in enumerate(self.question))

    def read_loss(self, states, rows, query, family, labels):
        read = (family == 2).nonzero(as_tuple=True)[0]
        if read.numel() == 0:
            return torch.zeros(())
        per_color, objects = frame_counts(labels[read])
        logits = self.read(states[rows[read], query[read]])  # [R, (6·10) + 10]
        loss = F.cross_entropy(logits[:, -(len(CELLS) + 1):], objects)
        if self.per_color:
            n_color = len(COLORS) * (len(CELLS) + 1)
            loss = loss + F.cross_entropy(logits[:, :n_color].reshape(-1, len(CELLS) + 1), per_color.reshape(-1))
        return loss

    def lookup_loss(self, states, rows, query, target):
        probed = (target >= 0).nonzero(as_tuple=True)[0]
        if probed.numel() == 0:
            return torch.zeros(())
        return F.cross_entropy(self.lookup(states[rows[probed], query[probed]]), target[probed])


def train_step(model, heads, opt, params, batch, aux_weight, guide=(0.0, 1, 1, -1, False, -1),
               probes=(None, 0.0, 0.0, 0.0), read_head=None):
    """One optimizer step on a Data.batch(): answer loss + aux_weight × the tower's probe loss + guide[0] × the
    attention guidance losses: guide[2] heads of decoder layer guide[1] toward the image tokens each turn looks at
    (family 2, the uniform reads, on the next guide[2] heads), when guide[3] ≥ 0 head 0 of layer guide[3] toward
    the question's words, and when guide[5] ≥ 0 head guide[5] of layer 0, at each video image token, toward its
    frame's number (guide[4]: split heads, see --guide-split-heads); + probes[1] × the read probe's loss,
    probes[2] × the lookup probe's and probes[3] × the question probe's (probes[0]: DecoderProbes); read_head: the
    head the uniform reads are guided on, None for the one after the lookup heads; gradients clipped to norm 1.
    Returns the answer loss, the probe losses (tower and decoder), the guidance loss (0 when off), the argmax
    predictions and the answer ids."""
    ids, valid, target, weight, px, labels, guides, frame_tags = batch
    g_rows, g_query, g_keys, g_words, g_family, g_labels, g_target, g_named = guides
    g_weight, g_layer, g_heads, q_layer, split, frame_head = guide
    decoder_probes, read_weight, lookup_weight, question_weight = probes
    # guided heads per turn: 0..g_heads−1 shifted by the turn's lookup family (with split heads) or, for the
    # uniform reads, by one block
    offset = g_family * g_heads if split else (g_family == 2).long() * (g_heads if read_head is None else read_head)
    head_idx = torch.arange(g_heads)[None, :] + offset[:, None]
    layers = model.model.language_model.layers
    guided = {g_layer} | ({q_layer} if q_layer >= 0 else set()) | ({0} if frame_head >= 0 else set())
    for n in guided:
        layers[n].self_attn.keep_probs = g_weight > 0
    captured = {}
    # the layers whose output states the decoder probes read
    probed = set() if decoder_probes is None else {g_layer} | ({q_layer} if question_weight > 0 else set())
    hooks = [layers[n].register_forward_hook(lambda _m, _i, out, n=n: captured.__setitem__(n, out)) for n in probed]
    loss, aux, pred, answers = loss_and_preds(model, ids, valid, target, weight, px, labels, heads)
    r = torch.zeros(())
    for h in hooks:
        h.remove()
    if decoder_probes is not None:
        states = captured[g_layer]
        if question_weight > 0:
            r = r + question_weight * decoder_probes.question_loss(captured[q_layer], g_rows, g_query, g_named)
        if read_weight > 0:
            r = r + read_weight * decoder_probes.read_loss(states, g_rows, g_query, g_family, g_labels)
        if lookup_weight > 0:
            r = r + lookup_weight * decoder_probes.lookup_loss(states, g_rows, g_query, g_target)
    g = torch.zeros(())
    if g_weight > 0:
        g = guide_loss(model, g_rows, g_query, g_keys, g_layer, head_idx, spread=g_family == 2)
        if q_layer >= 0:
            g = g + guide_loss(model, g_rows, g_query, g_words, q_layer, torch.zeros_like(head_idx[:, :1]))
        if frame_head >= 0:
            f_rows, f_query, f_keys = frame_tags
            g = g + guide_loss(model, f_rows, f_query, f_keys, 0, torch.full((len(f_rows), 1), frame_head))
    total = loss + aux_weight * aux + g_weight * g + r
    for n in guided:
        layers[n].self_attn.keep_probs, layers[n].self_attn.probs = False, None
    opt.zero_grad(set_to_none=True)
    total.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return loss, aux + r, g, pred, answers


@torch.no_grad()
def evaluate(model, data, batch_tokens):
    """Exact match per turn under teacher forcing with the reference history: a turn is right when every answer
    token and the closing <|im_end|> is the argmax given the tokens before it, which is exactly when greedy
    decoding reproduces the answer and stops. A conversation all of whose turns are right is also right under
    free-running greedy decoding (its history is then identical)."""
    model.eval()
    per_kind, per_turn, per_media = {}, {}, {}
    convs_ok = 0
    results = {}
    order = sorted(range(len(data.items)), key=lambda i: len(data.items[i]["ids"]))
    cur = []
    batches = []
    for i in order:
        if cur and len(data.items[i]["ids"]) * (len(cur) + 1) > batch_tokens:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    for which in batches:
        ids, valid, target, weight, px, _, _, _ = data.batch(which)
        _, _, pred, answers = loss_and_preds(model, ids, valid, target, weight, px)
        ok_tok = (pred == answers).tolist()
        k = 0
        for i in which:  # target positions come out in (batch row, position) order = turn order per item
            it = data.items[i]
            oks = []
            for s, e in it["spans"]:
                oks.append(all(ok_tok[k:k + e - s]))
                k += e - s
            results[it["id"]] = oks
            for ti, (ok, kind) in enumerate(zip(oks, it["kinds"])):
                for table, key in ((per_kind, kind), (per_turn, str(ti + 1)), (per_media, it["media"]["kind"])):
                    r = table.setdefault(key, [0, 0])
                    r[0] += ok
                    r[1] += 1
            convs_ok += all(oks)
    model.train()
    fmt = lambda t: {k: {"correct": v[0], "total": v[1], "accuracy": round(v[0] / v[1], 4)} for k, v in sorted(t.items())}
    total = [sum(v[0] for v in per_kind.values()), sum(v[1] for v in per_kind.values())]
    return {
        "turns": {"correct": total[0], "total": total[1], "accuracy": round(total[0] / max(1, total[1]), 4)},
        "conversations_all_turns_correct": {"correct": convs_ok, "total": len(data.items),
                                            "accuracy": round(convs_ok / max(1, len(data.items)), 4)},
        "per_kind": fmt(per_kind),
        "per_turn": fmt(per_turn),
        "per_media": fmt(per_media),
    }, results


# ------------------------------------------------------------------------------------------------ reference


def id_decoder(tokenizer_json):
    """ids → text as the tokenizer's ByteLevel decoder does it, special tokens skipped."""
    b2u = bytes_to_unicode()
    u2b = {u: b for b, u in b2u.items()}
    vocab = json.load(open(tokenizer_json, encoding="utf-8"))["model"]["vocab"]
    pieces = {i: bytes(u2b[ch] for ch in tokstr) for tokstr, i in vocab.items()}
    return lambda ids: b"".join(pieces.get(i, b"") for i in ids).decode("utf-8", errors="replace")


@torch.no_grad()
def greedy_conversation(model, data, item, im_end, decode, max_new=16):
    """Runs a held-out conversation the way the engine's Chat does (greedy, dense, each turn appended to the
    cached prompt + generated ids) and records, per turn, the ids the engine prefills, the last-position logits
    and the greedy answer ids (without the stopping <|im_end|>). The prompt deltas are the reference ones
    (encode.mjs), so the conversation must be one the model answers right on every turn: then its own earlier
    answers are the reference answers and the deltas are exactly what the engine builds. Returns None otherwise."""
    model.eval()
    px = data.pixels(torch.tensor(item["images"], dtype=torch.long))
    feats = model.image_features(px)
    ids = item["ids"]
    turns = []
    cached = []
    for i, t in enumerate(item["turns"]):
        start = 0 if i == 0 else item["spans"][i - 1][1] - 1  # after the previous answer's ids (its <|im_end|> is not fed)
        delta = ids[start:item["prompt_ends"][i]]
        seq = cached + delta
        logits0, gen, stopped = None, [], False
        for _ in range(max_new):
            logits = model.lm_head(model.model.language_model(
                model.embed(torch.tensor([seq]), image_features=feats), torch.arange(len(seq))[None]))[0, -1]
            if logits0 is None:
                logits0 = logits.clone()
            nxt = int(logits.argmax())
            if nxt == im_end:
                stopped = True
                break
            gen.append(nxt)
            seq.append(nxt)
        s, e = item["spans"][i]
        if not stopped or gen != ids[s:e - 1]:
            model.train()
            return None
        turns.append({
            "question": t["question"], "kind": t["kind"], "reference_answer": t["answer"],
            "prompt_ids": delta, "last_logits": [float(x) for x in logits0], "greedy_ids": gen,
            "answer": decode(gen), "stopped_on_eos": stopped,
        })
        cached = seq
    model.train()
    return turns


# ------------------------------------------------------------------------------------------------ main


def lr_factor(step, steps, warmup, decay_fraction):
    """Stage 2's learning rate over --lr at `step`: linear warmup, flat, then cosine to 5% over the last
    `decay_fraction` of the steps (1: cosine from the start, J's schedule)."""
    decay = decay_fraction * steps
    progress = min(1.0, max(0.0, step - (steps - decay)) / decay)
    return min(1.0, (step + 1) / warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=1234, help="torch seed (init, batch order)")
    p.add_argument("--data-seed", type=int, default=20250101, help="dataset seed (train and held-out streams)")
    p.add_argument("--train-count", type=int, default=24000)
    p.add_argument("--heldout-count", type=int, default=1000)
    p.add_argument("--video-fraction", type=float, default=0.25)
    p.add_argument("--data-dir", default="/tmp/sparsevila-demo-data")
    p.add_argument("--out", default=os.path.join(ROOT, "src/models/sparsevila-demo"))
    p.add_argument("--steps", type=int, default=6500)
    p.add_argument("--batch-tokens", type=int, default=1536, help="padded tokens per batch")
    p.add_argument("--lr", type=float, default=5e-4,
                   help="stage-2 peak learning rate. At 2e-3 single-turn questions of the four region kinds mixed "
                        "stayed at the prior for 800 steps; at 5e-4 they reached 0.65 held-out")
    p.add_argument("--tower-lr", type=float, default=2e-3, help="stage-1 (tower) learning rate")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--decay-fraction", type=float, default=0.3,
                   help="share of the stage-2 steps, at the end, over which the learning rate decays (cosine to 5%%); "
                        "before them it stays at --lr (1: cosine over the whole run). The video kinds need steps at a "
                        "high rate to come up: on a 6000-step cosine they did not (run K, README.md)")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--vision-hidden", type=int, default=128)
    p.add_argument("--vision-layers", type=int, default=4)
    p.add_argument("--text-hidden", type=int, default=192)
    p.add_argument("--text-layers", type=int, default=4)
    p.add_argument("--text-intermediate", type=int, default=512)
    p.add_argument("--rope-theta", type=float, default=1e6,
                   help="decoder RoPE base. Large (Qwen2's 1e6) because the lookups are by content over hundreds of "
                        "positions: at 1e4 only ~10 of a head's 48 dims rotate slowly enough over 600 positions, and "
                        "a lookup learned on short single-turn prompts broke on multi-turn ones and videos")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads. On the 2-core machine the model was trained on, 2 were slower than 1 (stage 2 "
                        "0.45 vs 0.39 s a step, the tower 0.57 vs 0.54): every op of a model this size is small, and "
                        "the second core is shared. The weights depend on it (reductions split differently)")
    p.add_argument("--pos-init-std", type=float, default=0.02, help="init std of the vision position embedding")
    p.add_argument("--caption-weight", type=float, default=0.25,
                   help="loss weight of the captioning conversations' tokens")
    p.add_argument("--caption-fraction", type=float, default=0.5,
                   help="share of the training media that also get a captioning conversation (0: none)")
    p.add_argument("--where-fraction", type=float, default=0.4,
                   help="share of the training images that also get a where-conversation (0: none); see "
                        "where_conversations and README.md")
    p.add_argument("--aux-weight", type=float, default=1.0, help="weight of the vision tower's auxiliary cell loss")
    p.add_argument("--curriculum", default="cell-color:200,cell-color+cell-shape:500,region:800",
                   help="stage 2 starts with lessons of single-turn image region questions, KIND[+KIND...]:STEPS each "
                        "(\"region\" = every region kind), then trains on the whole mix; \"\" for none")
    p.add_argument("--tower-steps", type=int, default=1500,
                   help="stage 1: steps training the vision tower alone on the auxiliary probes (0: none)")
    p.add_argument("--tower-batch", type=int, default=128, help="images per stage-1 step")
    p.add_argument("--cls-probe-weight", type=float, default=1.0,
                   help="stage 1: weight of the probe reading the whole grid from the CLS token (0: none); see AuxHeads")
    p.add_argument("--count-probe-weight", type=float, default=0.3,
                   help="stage 1: weight of the probes reading the frame's counts from every patch (0: none); see AuxHeads")
    p.add_argument("--count-probe", choices=("frame", "own"), default="own",
                   help="stage 1: which colour counts every patch carries: each colour's (frame) or its own object's "
                        "colour's (own, for --object-lookups); see AuxHeads")
    p.add_argument("--kind-weights", type=parse_kind_weights, default=parse_kind_weights(DEFAULT_KIND_WEIGHTS),
                   help="answer-loss weight per question kind, KIND=W,... (others 1; captions: --caption-weight). "
                        f"Default {DEFAULT_KIND_WEIGHTS!r}: the kinds the decoder learns last (see README.md)")
    p.add_argument("--lesson-context", action="store_true",
                   help="lessons keep a conversation's earlier turns before its last matching region question")
    p.add_argument("--train-tower", action="store_true",
                   help="keep training the tower (and its probes) in stage 2 instead of freezing it after stage 1")
    p.add_argument("--guide-weight", type=float, default=1.0,
                   help="weight of the attention guidance loss (0: none); see attention_guides")
    p.add_argument("--guide-layer", type=int, default=1, help="decoder layer whose attention is guided")
    p.add_argument("--guide-heads", type=int, default=1, help="guided heads: 0 .. N-1 of that layer")
    p.add_argument("--guide-split-heads", action="store_true",
                   help="guide questions that name a cell on heads 0..N-1 and those that name a shape or colour on "
                        "heads N..2N-1 (one head per kind of lookup)")
    p.add_argument("--guide-question-layer", type=int, default=0,
                   help="decoder layer whose head 0 is pulled, at the same position, toward the question's words "
                        "(the first hop: bring the asked cell to the answer position); -1: none")
    p.add_argument("--guide-frame-head", type=int, default=1,
                   help="layer-0 head pulled, at every video image token, toward its frame's number; -1: none")
    p.add_argument("--read-head", type=int, default=2,
                   help="layer-(--guide-layer) head the uniform reads (object counts) are guided on: head 2 has keys "
                        "and values of its own; head 1, the one after the lookup heads (-1), shares them with head 0 "
                        "under GQA")
    p.add_argument("--read-probe-weight", type=float, default=0.5,
                   help="weight of the read probe: the frame's counts from the decoder's state at the answer position "
                        "of every uniform-read turn (0: none); see DecoderProbes")
    p.add_argument("--question-probe-weight", type=float, default=1.0,
                   help="weight of the question probe: the colour, shape, cell and frame a question names, from the decoder's "
                        "state after --guide-question-layer at its answer position (0: none); see DecoderProbes")
    p.add_argument("--object-lookups", action=argparse.BooleanOptionalAction, default=True,
                   help="guide colour counts and \"is there\" questions as lookups of the objects they name, or of the "
                        "sink when there are none, instead of uniform reads; see OBJECT_LOOKUPS")
    p.add_argument("--lookup-probe-weight", type=float, default=1.0,
                   help="weight of the lookup probe: a lookup's answer from the decoder's state at its answer position "
                        "after --guide-layer (0: none); see DecoderProbes")
    p.add_argument("--guide-steps", type=float, default=1.0,
                   help="share of the steps with guidance on; the rest train on the answers alone")
    p.add_argument("--eval-every", type=int, default=750, help="held-out eval every N steps (0: only at the end)")
    p.add_argument("--eval-sample", type=int, default=200, help="held-out conversations for the periodic eval")
    p.add_argument("--skip-build", action="store_true", help="do not run tsc before writing the dataset")
    p.add_argument("--samples", default="", help="comma-separated held-out ids for expected.json (default: picked)")
    a = p.parse_args()
    if not 0 < a.decay_fraction <= 1:
        p.error(f"--decay-fraction: expected a share in (0, 1], got {a.decay_fraction}")
    if a.read_head < 0:
        a.read_head = None  # the head after the lookup heads
    return a


def main():
    a = parse_args()
    t_start = time.time()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    rng = random.Random(a.seed)

    meta = make_dataset(a, a.data_dir)
    lines = read_lines(a.data_dir)
    tok_dir = os.path.join(a.data_dir, "tokenizer")
    specials, a.vocab_size = build_tokenizer(lines, tok_dir)
    a.image_token, im_end, pad = specials["<image>"], specials["<|im_end|>"], specials["<|endoftext|>"]
    tokens = encode_all(os.path.join(a.data_dir, "conversations.jsonl"), tok_dir)
    captions = caption_conversations(lines, a.caption_fraction, random.Random(a.seed)) if a.caption_fraction > 0 else []
    if captions:
        tokens.update(encode_conversations(captions, os.path.join(a.data_dir, "captions.jsonl"), tok_dir))
    # seeded apart from the captions' rng, so that the captions are the same with or without where-conversations
    wheres = where_conversations(lines, a.where_fraction, random.Random(a.seed + 1)) if a.where_fraction > 0 else []
    if wheres:
        tokens.update(encode_conversations(wheres, os.path.join(a.data_dir, "where.jsonl"), tok_dir))
    lessons = []  # (kinds, conversations, steps) per phase of the curriculum
    for n, (kinds, steps) in enumerate(parse_curriculum(a.curriculum)):
        convs = lesson_turns(lines, kinds, f"lesson{n}", a.lesson_context)
        lesson_path = os.path.join(a.data_dir, f"lesson{n}-{os.getpid()}.jsonl")
        tokens.update(encode_conversations(convs, lesson_path, tok_dir))
        for f in (lesson_path, lesson_path[:-len(".jsonl")] + ".tokens.jsonl"):  # per-run scratch files
            os.remove(f)
        lessons.append((kinds, convs, steps))
    t0 = time.time()
    train = Data(a.data_dir, [l for l in lines if l["split"] == "train"] + captions + wheres, tokens, pad, a.image_token,
                 {"caption": a.caption_weight, **a.kind_weights}, a.object_lookups)
    held = Data(a.data_dir, [l for l in lines if l["split"] == "heldout"], tokens, pad, a.image_token)
    # the whole mix after the lessons: (source, first step it is used at)
    phases, at = [], 0
    for _, convs, steps in lessons:
        phases.append((Data(a.data_dir, convs, tokens, pad, a.image_token, object_lookups=a.object_lookups), at))
        at += steps
    phases.append((train, at))
    qa = [it for it in train.items if not it["id"].startswith(("caption-", "where-"))]
    lens = [len(it["ids"]) for it in qa]
    print(f"data: {len(qa)} train (+{len(captions)} captioning, +{len(wheres)} where) / {len(held.items)} held-out conversations, "
          f"{sum(len(it['spans']) for it in qa)} train turns, {len(train.frames)} train images; "
          f"tokens/conv mean {np.mean(lens):.0f} max {max(lens)}; loaded in {time.time() - t0:.0f}s", flush=True)

    cfg = model_config(a)
    model = LlavaForConditionalGeneration(cfg)
    init_weights(model, pos_std=a.pos_init_std)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params:,} parameters", flush=True)
    heads = AuxHeads(a.vision_hidden, scene=a.cls_probe_weight > 0, counts=a.count_probe if a.count_probe_weight > 0 else None)
    t_tower = time.time()
    # Stage 1 depends only on these; a run that shares them (a stage-2 experiment) reuses the tower from data-dir.
    tower_key = f"tower-s{a.seed}-d{a.data_seed}x{a.train_count}v{a.video_fraction}c{a.caption_fraction}" \
                f"-n{a.tower_steps}x{a.tower_batch}-v{a.vision_hidden}x{a.vision_layers}-p{a.pos_init_std}-lr{a.tower_lr}" \
                + (f"-cls{a.cls_probe_weight}" if a.cls_probe_weight > 0 else "") \
                + (f"-{'count' if a.count_probe == 'frame' else 'own'}{a.count_probe_weight}" if a.count_probe_weight > 0 else "") \
                + ".pt"
    tower_path = os.path.join(a.data_dir, tower_key)
    tower_reused = bool(a.tower_steps) and os.path.exists(tower_path)
    if tower_reused:
        saved = torch.load(tower_path)
        model.model.vision_tower.load_state_dict(saved["tower"])
        heads.load_state_dict(saved["heads"])
        rng.setstate(saved["rng"])  # as if stage 1 had run: the same batch order follows
        print(f"tower: reusing {tower_path}", flush=True)
        tower_seconds = saved.get("seconds")  # what training it took (None: a cache from before that was kept)
    elif a.tower_steps:
        pretrain_tower(model, heads, train, a.tower_steps, a.tower_batch, a.tower_lr, rng, a.cls_probe_weight, a.count_probe_weight,
                       log=lambda m: print(m, flush=True))
        tower_seconds = time.time() - t_tower
        torch.save({"tower": model.model.vision_tower.state_dict(), "heads": heads.state_dict(), "rng": rng.getstate(),
                    "seconds": tower_seconds}, tower_path)
    else:
        tower_seconds = 0.0

    if a.train_tower:
        params = list(model.named_parameters()) + [("aux." + n, p) for n, p in heads.named_parameters()]
        stage2_heads = heads
    else:
        # LLaVA's recipe: the tower is frozen once it sees. Trained on, the decoder's early, still-random gradients
        # erode what stage 1 taught it (a linear read-out of the asked cell's colour from the projected features
        # fell from ~0.75 to ~0.4 in 200 steps), and whether the decoder ever finds the cells became a matter of seed.
        for q in list(model.model.vision_tower.parameters()) + list(heads.parameters()):
            q.requires_grad_(False)
        params = [(n, q) for n, q in model.named_parameters() if q.requires_grad]
        stage2_heads = None
    if a.question_probe_weight > 0 and a.guide_question_layer < 0:
        raise SystemExit("--question-probe-weight: the question probe reads the layer --guide-question-layer names; it is -1")
    decoder_probes = None
    if a.read_probe_weight > 0 or a.lookup_probe_weight > 0 or a.question_probe_weight > 0:  # training-only: not in the checkpoint
        decoder_probes = DecoderProbes(a.text_hidden, per_color=a.count_probe == "frame")
        params += [("decoder_probes." + n, q) for n, q in decoder_probes.named_parameters()]
    decay = [p for n, p in params if p.dim() >= 2 and "embedding" not in n and "embed_tokens" not in n]
    no_decay = [p for n, p in params if not (p.dim() >= 2 and "embedding" not in n and "embed_tokens" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.98), eps=1e-8)
    sched = lambda s: lr_factor(s, a.steps, a.warmup, a.decay_fraction)

    eval_sub = held.subset(a.eval_sample)

    log = []
    step, epoch = 0, 0
    batches = []
    t_train = time.time()
    ema = None
    model.train()
    while step < a.steps:
        source = next(src for src, start in reversed(phases) if step >= start)
        if any(step == start for _, start in phases[1:]):
            batches = []  # a lesson is over: the next one (or the whole mix) from here on
        if not batches:
            batches = length_batches(source, a.batch_tokens, rng)
            if source is train:
                epoch += 1
        which = batches.pop()
        for g in opt.param_groups:
            g["lr"] = a.lr * sched(step)
        guide = (a.guide_weight if step < a.guide_steps * a.steps else 0.0, a.guide_layer, a.guide_heads,
                 a.guide_question_layer, a.guide_split_heads, a.guide_frame_head)
        loss, aux, g, pred, answers = train_step(model, stage2_heads, opt, [p for _, p in params], source.batch(which),
                                                 a.aux_weight, guide,
                                                 (decoder_probes, a.read_probe_weight, a.lookup_probe_weight,
                                                  a.question_probe_weight), a.read_head)
        step += 1
        acc = (pred == answers).float().mean().item()
        now = (loss.item(), aux.item(), acc, g.item())
        ema = now if ema is None else tuple(0.98 * e + 0.02 * x for e, x in zip(ema, now))
        if step % 50 == 0 or step == 1:
            el = time.time() - t_train
            print(f"step {step}/{a.steps} epoch {epoch} loss {ema[0]:.4f} aux {ema[1]:.4f} answer-token-acc {ema[2]:.4f} guide {ema[3]:.4f} "
                  f"lr {a.lr * sched(step):.2e} {el:.0f}s ({el / step:.2f}s/step, eta {el / step * (a.steps - step):.0f}s)",
                  flush=True)
            log.append({"step": step, "loss": round(ema[0], 5), "aux_loss": round(ema[1], 5),
                        "answer_token_accuracy": round(ema[2], 5), "guide_loss": round(ema[3], 5), "seconds": round(el, 1)})
        if a.eval_every and step % a.eval_every == 0 and step < a.steps:
            r, _ = evaluate(model, eval_sub, a.batch_tokens * 2)
            print(f"  eval@{step} ({len(eval_sub.items)} convs): turns {r['turns']['accuracy']:.3f} "
                  + " ".join(f"{k}={v['accuracy']:.2f}" for k, v in r["per_kind"].items()), flush=True)
            log[-1]["heldout_sample_turn_accuracy"] = r["turns"]["accuracy"]
    train_seconds = time.time() - t_train

    t_eval = time.time()
    res, per_conv = evaluate(model, held, a.batch_tokens * 2)
    eval_seconds = time.time() - t_eval
    print(json.dumps(res, indent=1), flush=True)

    # ---- write the checkpoint folder
    out = a.out
    os.makedirs(out, exist_ok=True)
    sd = {k: v for k, v in model.state_dict().items()}
    save_safetensors(os.path.join(out, "model.safetensors"), sd, {"format": "pt"})
    check = load_safetensors(os.path.join(out, "model.safetensors"))
    assert set(check) == set(sd) and all(torch.equal(check[k], sd[k]) for k in sd)
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)
    json.dump(PREPROCESSOR, open(os.path.join(out, "preprocessor_config.json"), "w"), indent=1)
    json.dump(PROCESSOR, open(os.path.join(out, "processor_config.json"), "w"), indent=1)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(tok_dir, f), os.path.join(out, f))
    decode = id_decoder(os.path.join(tok_dir, "tokenizer.json"))

    # ---- reference numbers for the TypeScript engine: held-out conversations run greedily, turn by turn
    by_id = {it["id"]: it for it in held.items}
    candidates = a.samples.split(",") if a.samples else sample_order(held, per_conv)
    examples_dir = os.path.join(out, "examples")
    if os.path.isdir(examples_dir):
        shutil.rmtree(examples_dir)
    os.makedirs(examples_dir)
    expected = {
        "about": "Held-out conversations run greedily (dense) in PyTorch turn by turn, each turn after the model's own "
                 "earlier answers, as the engine's Chat runs them. Per turn: the ids the engine prefills (the whole "
                 "prompt on turn 1, the delta after the cached prompt + generated ids later), the logits at the "
                 "last prefilled position, and the greedy answer ids (without the <|im_end|> that stopped them).",
        "tolerance": {"last_logits_max_abs": 1e-3, "greedy_ids": "identical"},
        "image_token_count": IMAGE_TOKENS,
        "samples": [],
    }
    for sid in candidates:
        if len(expected["samples"]) == 3:
            break
        it = by_id[sid]
        turns = greedy_conversation(model, held, it, im_end, decode)
        if turns is None:
            continue
        media = []
        for p in it["media"]["paths"]:
            dst = os.path.join("examples", os.path.basename(p))
            shutil.copyfile(os.path.join(a.data_dir, p), os.path.join(out, dst))
            media.append(dst)
        expected["samples"].append({"id": sid, "media_kind": it["media"]["kind"], "media": media, "turns": turns})

    info = {
        "seed": a.seed,
        "data_seed": a.data_seed,
        "args": vars(a),
        "parameters": n_params,
        "dataset": {
            "generator": "node dist/src/cli/main.js dataset (src/world)",
            "seed": a.data_seed, "train": a.train_count, "heldout": a.heldout_count,
            "options": {"videoFraction": a.video_fraction},
            "train_conversations": len(qa),
            "train_turns": sum(len(it["spans"]) for it in qa),
            "caption_conversations": len(captions),
            "where_conversations": len(wheres),
            "train_images": int(len(train.frames)),
            "heldout_conversations": len(held.items),
            "heldout_turns": sum(len(it["spans"]) for it in held.items),
            "video_fraction": a.video_fraction,
            "tokens_per_conversation_mean": round(float(np.mean(lens)), 1),
            "kind_counts": meta.get("kindCounts"),
        },
        "training": {
            "steps": a.steps, "epochs_started": epoch, "batch_tokens": a.batch_tokens, "optimizer": "AdamW(0.9, 0.98)",
            "lr": a.lr, "weight_decay": a.weight_decay,
            "schedule": f"linear warmup {a.warmup} steps, " + ("cosine to 5%" if a.decay_fraction == 1 else
                        f"flat until step {round((1 - a.decay_fraction) * a.steps)}, then cosine to 5%"),
            "grad_clip": 1.0, "threads": a.threads, "torch": torch.__version__,
            "tower_steps": a.tower_steps, "tower_seconds": None if tower_seconds is None else round(tower_seconds, 1),
            "tower_reused": tower_reused,
            "tower_frozen_in_stage_2": not a.train_tower,
            "curriculum": [{"kinds": sorted(kinds), "steps": steps, "conversations": len(convs)}
                           for kinds, convs, steps in lessons],
            "attention_guidance": {"weight": a.guide_weight, "layer": a.guide_layer, "heads": a.guide_heads,
                                   "question_layer": a.guide_question_layer, "split_heads": a.guide_split_heads,
                                   "frame_head": a.guide_frame_head,
                                   "until_step": int(a.guide_steps * a.steps)},
            "train_seconds": round(train_seconds, 1), "eval_seconds": round(eval_seconds, 1),
            "total_seconds": round(time.time() - t_start, 1), "log": log,
        },
        "heldout": res,
        "evaluation": "exact match of the whole answer (and the <|im_end|> that ends it) under greedy decoding, "
                      "with the reference answers as history for later turns; see evaluate() in train.py",
    }
    json.dump(expected, open(os.path.join(out, "expected.json"), "w"))
    # The demo's conversations (`npm start`): the first image and the first video sample.
    demo = []
    for kind in ("image", "video"):
        smp = next((x for x in expected["samples"] if x["media_kind"] == kind), None)
        if smp:
            demo.append({"title": f"held-out {kind} {smp['id']}", "media": [os.path.basename(m) for m in smp["media"]],
                         "turns": [{"question": t["question"], "answer": t["reference_answer"]} for t in smp["turns"]]})
    json.dump(demo, open(os.path.join(examples_dir, "conversations.json"), "w"), indent=1)
    json.dump(info, open(os.path.join(out, "training.json"), "w"), indent=1)
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write(model_card(cfg, info))
    print(f"wrote {out} in {time.time() - t_start:.0f}s total", flush=True)


def model_card(cfg, info):
    v, t = cfg["vision_config"], cfg["text_config"]
    res, tr = info["heldout"], info["training"]
    pct = lambda r: f"{100 * r['accuracy']:.1f}% ({r['correct']}/{r['total']})"
    kinds = "\n".join(f"| {k} | {pct(r)} |" for k, r in res["per_kind"].items())
    turns = "\n".join(f"| {k} | {pct(r)} |" for k, r in res["per_turn"].items())
    stage1 = tr["tower_seconds"]
    duration = (f"{(stage1 + tr['train_seconds']) / 60:.0f} min of training ({stage1 / 60:.0f} + "
                f"{tr['train_seconds'] / 60:.0f})" if stage1 is not None else
                f"{tr['train_seconds'] / 60:.0f} min of stage 2 (the stage-1 tower came from an earlier run's cache)")
    duration += f", {tr['total_seconds'] / 60:.0f} min " + ("for this run's data, stage 2, evaluation and export (the tower "
                                                           "came from the cache)" if tr.get("tower_reused") else
                                                           "with data, evaluation and export")
    g, args = tr["attention_guidance"], info["args"]
    read_head = g["heads"] if args.get("read_head") is None else args["read_head"]
    guidance = "" if g["weight"] <= 0 else (
        f"For the first {g['until_step']} steps the loss also guides attention (weight {g['weight']}): at the position "
        f"that predicts an answer, head 0 of decoder layer {g['layer']} toward the image tokens the question is about ("
        + ("when a colour count or \"is there\" names nothing the frame holds, toward the conversation's first token; "
           "for object counts" if args.get("object_lookups") else "for counts and other whole-frame questions")
        + f", head {read_head}: 1/9 of the attention per grid cell)"
        + ("" if g["question_layer"] < 0 else f", head 0 of layer {g['question_layer']} toward the question's words")
        + ("" if g.get("frame_head", -1) < 0 else f"; and at every video image token, head {g['frame_head']} of layer 0 "
           "toward its frame's number") + ". ")
    probes = "the patch's cell and its object" \
        + ("" if args.get("count_probe_weight", 0) <= 0 else
           "; the frame's count of objects of the patch's object's colour, and of all objects"
           if args.get("count_probe") == "own" else "; the frame's counts per colour and of objects") \
        + ("; the whole grid from the CLS" if args.get("cls_probe_weight", 0) > 0 else "")
    decoder_probes = [what for what, weight in (
        (f"after layer {g['question_layer']}, the colour, shape, cell and frame the question names",
         args.get("question_probe_weight", 0)),
        (f"after layer {g['layer']}, a lookup's answer", args.get("lookup_probe_weight", 0)),
        (f"after layer {g['layer']}, a read's object count", args.get("read_probe_weight", 0))) if weight > 0]
    if decoder_probes:
        guidance += ("Training-only linear probes on the decoder's state at the answer position ask: "
                     + "; ".join(decoder_probes) + ". ")
    kw = args.get("kind_weights") or {}
    weights = "" if not kw else ("The answer loss weighs " + ", ".join(f"{k} ×{w:g}" for k, w in sorted(kw.items()))
                                 + f" (captions ×{args['caption_weight']:g}). ")
    return f"""# sparsevila-demo

A small **trained** `LlavaForConditionalGeneration` in the exact Hugging Face layout, shipped so that `npm start`
runs the whole pipeline offline on a model whose answers mean something. It knows one world: the synthetic scenes
and videos of `src/world` (coloured shapes on a 3×3 grid over plain or textured backgrounds; videos of 8 frames in
which objects move, appear and vanish), and answers questions about regions, objects, counts and frames.

- CLIP vision tower: {v['image_size']}×{v['image_size']} px, patch {v['patch_size']}, hidden {v['hidden_size']}, \
{v['num_hidden_layers']} layers, CLS; features from layer −2 with the CLS dropped → {(v['image_size'] // v['patch_size']) ** 2} image tokens.
- 2-layer GELU projector; LLaMA decoder: hidden {t['hidden_size']}, {t['num_hidden_layers']} layers, \
{t['num_attention_heads']} heads / {t['num_key_value_heads']} KV heads, SwiGLU {t['intermediate_size']}.
- Byte-level BPE tokenizer ({t['vocab_size']} ids, merges learned on the training questions) with a ChatML template
  that labels a video's frames `Frame k: <image>`.
- {info['parameters']:,} parameters, float32, {info['parameters'] * 4 / 1e6:.1f} MB.

Trained with `/usr/bin/python3 tools/train-demo-vlm/train.py` (Debian's python3-torch {tr['torch']}, CPU, \
{tr['threads']} thread{'s' if tr['threads'] != 1 else ''}): {tr['tower_steps']} steps of the vision tower alone on per-patch probes \
({probes}), then \
{tr['steps']} steps of the decoder and projector ({'tower frozen' if tr['tower_frozen_in_stage_2'] else 'tower still training'}; \
a curriculum of {sum(c['steps'] for c in tr['curriculum'])} steps of \
{'lessons' if info['args'].get('lesson_context') else 'single-turn lessons'} first; \
batches of {tr['batch_tokens']} tokens; learning rate {tr['lr']:g}, {tr['schedule']}), {duration}, on \
{info['dataset']['train_conversations']:,} conversations ({info['dataset']['train_turns']:,} turns); seeds \
{info['seed']} (torch) and {info['data_seed']} (world). {weights}{guidance}See tools/train-demo-vlm/README.md.

## Held-out accuracy (dense)

Exact match of the whole answer under greedy decoding on {res['turns']['total']} turns of \
{info['dataset']['heldout_conversations']} held-out conversations whose scenes never occur in training: \
**{pct(res['turns'])}**; all turns of a conversation right: {pct(res['conversations_all_turns_correct'])}.

| question kind | accuracy |
| --- | ---: |
{kinds}

| turn | accuracy |
| --- | ---: |
{turns}

`expected.json` holds what PyTorch computes for three held-out conversations (prompt ids, last-position logits,
greedy answers, turn by turn); the engine's test reproduces it. `examples/` holds the conversations `npm start` asks.
"""


def sample_order(held, per_conv):
    """Held-out conversations for the engine test, best first: those answered right on every turn (so the model's
    own history is the reference one), multi-turn images, then videos, then the rest with varied first kinds."""
    right = [it for it in held.items if all(per_conv[it["id"]])]
    most_turns = lambda its: sorted(its, key=lambda it: -len(it["spans"]))  # stable: dataset order among equals
    images = most_turns([it for it in right if it["media"]["kind"] == "image" and len(it["spans"]) >= 3])
    videos = most_turns([it for it in right if it["media"]["kind"] == "video" and len(it["spans"]) >= 2])
    order = images[:1] + videos[:1]
    kinds = {it["kinds"][0] for it in order}
    for it in right:
        if it not in order and it["kinds"][0] not in kinds:
            order.append(it)
            kinds.add(it["kinds"][0])
    order += [it for it in right if it not in order]
    return [it["id"] for it in order]


if __name__ == "__main__":
    main()
