"""
What transformers / tokenizers / safetensors would do for this checkpoint, written out by hand (no pip here):

- ByteLevelTokenizer: the fixtures' tokenizer.json (byte-level BPE with no merges: each UTF-8 byte is one token,
  id = byte value via the GPT-2 bytes_to_unicode alphabet; added special tokens matched first, as single ids).
- render_chat: the ChatML-like chat template in tokenizer_config.json, rendered for our message shapes.
- expand_images: LlavaProcessor's `<image>` → `<image>` × image_token_count on the rendered text.
- pixels: CLIPImageProcessor on an image that is already the model's size: RGB → ×1/255 → (x − mean) / std.
- safetensors read/write (F32 only): 8-byte little-endian header length, JSON header, raw little-endian data.
"""
import json
import re
import struct

import numpy as np
import torch
from PIL import Image


def bytes_to_unicode():
    """GPT-2's reversible byte → printable unicode map (tokenizers' ByteLevel alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


class ByteLevelTokenizer:
    def __init__(self, tokenizer_json_path):
        with open(tokenizer_json_path, encoding="utf-8") as f:
            tj = json.load(f)
        m = tj["model"]
        assert m["type"] == "BPE" and len(m.get("merges", [])) == 0, "expects byte-level BPE without merges"
        b2u = bytes_to_unicode()
        self.vocab = m["vocab"]
        self.byte_ids = [self.vocab[b2u[b]] for b in range(256)]
        self.id_to_byte = {i: b for b, i in enumerate(self.byte_ids)}
        self.special = {t["content"]: t["id"] for t in tj["added_tokens"]}
        self.special_by_id = {v: k for k, v in self.special.items()}
        self._split = re.compile("(" + "|".join(re.escape(s) for s in sorted(self.special, key=len, reverse=True)) + ")")
        self.vocab_size = max(list(self.vocab.values()) + list(self.special.values())) + 1

    def encode(self, text):
        ids = []
        for piece in self._split.split(text):
            if piece == "":
                continue
            if piece in self.special:
                ids.append(self.special[piece])
            else:
                ids.extend(self.byte_ids[b] for b in piece.encode("utf-8"))
        return ids

    def decode(self, ids, skip_special=True):
        out = bytearray()
        parts = []
        for i in ids:
            if i in self.id_to_byte:
                out.append(self.id_to_byte[i])
            else:
                parts.append(out.decode("utf-8", errors="replace"))
                out = bytearray()
                if not skip_special:
                    parts.append(self.special_by_id.get(i, ""))
        parts.append(out.decode("utf-8", errors="replace"))
        return "".join(parts)


def render_chat(messages, add_generation_prompt):
    """The chat template of tokenizer_config.json:
    {% for message in messages %}<|im_start|>{{ role }}\n{% if content is string %}{{ content }}{% else %}
    {% for c in content %}{% if image %}<image>\n{% elif text %}{{ text }}{% endif %}{% endfor %}{% endif %}
    <|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"""
    s = ""
    for m in messages:
        s += "<|im_start|>" + m["role"] + "\n"
        if isinstance(m["content"], str):
            s += m["content"]
        else:
            for c in m["content"]:
                if c["type"] == "image":
                    s += "<image>\n"
                elif c["type"] == "text":
                    s += c["text"]
        s += "<|im_end|>\n"
    if add_generation_prompt:
        s += "<|im_start|>assistant\n"
    return s


def expand_images(text, image_token_count, image_token="<image>"):
    return text.replace(image_token, image_token * image_token_count)


CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def pixels(path, size, mean=CLIP_MEAN, std=CLIP_STD):
    """[3, size, size] float32, as CLIPImageProcessor gives for an image already size×size (no resampling)."""
    im = Image.open(path).convert("RGB")
    assert im.size == (size, size), f"{path}: {im.size}, expected {size}×{size}"
    a = np.asarray(im, dtype=np.float32) * np.float32(1 / 255)  # rescale_factor = 1/255
    a = (a - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def save_safetensors(path, tensors, metadata=None):
    header = {}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous().cpu()
        data = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)  # pad so the data starts 8-byte aligned (as safetensors does)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for blob in blobs:
            f.write(blob)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name}: {info['dtype']}"
        a, b = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").copy()).reshape(info["shape"])
    return out


LEGACY_PREFIXES = [
    ("language_model.model.", "model.language_model."),
    ("language_model.lm_head.", "lm_head."),
    ("vision_tower.", "model.vision_tower."),
    ("multi_modal_projector.", "model.multi_modal_projector."),
]


def to_current_layout(sd):
    """Legacy Llava keys (language_model.model.*, vision_tower.*) → current (model.language_model.*, ...)."""
    out = {}
    for k, v in sd.items():
        for old, new in LEGACY_PREFIXES:
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    return out
