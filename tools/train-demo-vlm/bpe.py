"""
Byte-level BPE for the demo model: learns merges on the training conversations' text and writes a Hugging Face
`tokenizer.json` (GPT-2 byte alphabet, ByteLevel pre-tokenizer and decoder, BPE model with merges, ChatML
special tokens) and `tokenizer_config.json` (with the demo's chat template).

Only the merges are learned here. Every id the model trains on is produced by the engine's own tokenizer and
template code reading these files (encode.mjs), so the two cannot drift apart; the learner's pre-tokenizer only
has to split words the way GPT-2's does on this ASCII text for the merges to be useful.
"""
import collections
import json
import os
import re

from hfio import bytes_to_unicode

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]

# Multi-image content (a video's frames) is labelled "Frame k: " so a question about frame k has something to
# point at: the tower sees frames one at a time, so nothing else in a frame's tokens says which frame it is.
# One image is not labelled. transformers renders this with jinja2 (trim_blocks, lstrip_blocks); so does the
# engine (@huggingface/jinja).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% set images = message['content'] | selectattr('type', 'equalto', 'image') | list %}"
    "{% set ns = namespace(frame=0) %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}{% set ns.frame = ns.frame + 1 %}"
    "{% if images | length > 1 %}Frame {{ ns.frame }}: {% endif %}<image>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# GPT-2's split pattern with \p{L} / \p{N} narrowed to ASCII (the world's text is ASCII).
WORDS = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


def learn_merges(texts, max_merges, min_count):
    """Classic BPE: repeatedly merge the most frequent adjacent pair (ties broken by the pair itself, so the
    result does not depend on dict order) until `max_merges` or the best pair occurs fewer than `min_count` times."""
    b2u = bytes_to_unicode()
    counts = collections.Counter()
    for t in texts:
        for w in WORDS.findall(t):
            counts["".join(b2u[b] for b in w.encode("utf-8"))] += 1
    words = {w: list(w) for w in counts}
    merges = []
    while len(merges) < max_merges:
        pairs = collections.Counter()
        for w, syms in words.items():
            c = counts[w]
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best, n = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if n < min_count:
            break
        merges.append(best)
        joined = best[0] + best[1]
        for w, syms in words.items():
            i, out = 0, []
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == best[0] and syms[i + 1] == best[1]:
                    out.append(joined)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[w] = out
    return merges


def write_tokenizer(out_dir, texts, max_merges=400, min_count=20, model_max_length=8192):
    """Writes tokenizer.json + tokenizer_config.json; returns {special: id} and the vocabulary size."""
    b2u = bytes_to_unicode()
    merges = learn_merges(texts, max_merges, min_count)
    vocab = {b2u[b]: b for b in range(256)}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    specials = {s: len(vocab) + i for i, s in enumerate(SPECIALS)}
    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for s, i in specials.items()]
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [[a, b] for a, b in merges]},
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "model_max_length": model_max_length, "chat_template": CHAT_TEMPLATE,
        "added_tokens_decoder": {str(a["id"]): a for a in added},
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=1, ensure_ascii=False)
    return specials, len(vocab) + len(SPECIALS), len(merges)
