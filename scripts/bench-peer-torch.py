#!/usr/bin/env python3
"""
Peer dense engine for `npm run bench`: PyTorch (Debian's python3-torch) running the same decoder shapes'
dense decode step over a KV cache of a given length, eager, no compilation — what a straightforward PyTorch
implementation of the model does per token on this machine.

The decoder is written like gpt-fast's / transformers' Qwen2 and LLaMA blocks: RMSNorm, q/k/v projections
(Qwen2: with biases), rotate-half rotary, grouped-query attention over the cache (keys after rotary), o_proj,
SiLU-gated MLP, final norm, LM head. Weights are random (speed does not depend on values), the cache is
preallocated for the longest context and filled with random keys/values (a prefill would write the same bytes).

Usage: python3 bench-peer-torch.py '<json spec>'   → prints one JSON object.
  spec: { threads, warmup, steps, shapes: [{ name, hidden, intermediate, layers, heads, kvHeads, vocab, tie,
          qkvBias, contexts: [int], dtypes: ["float32" | "bfloat16"] }], secondsPerContext }
"""
import json
import math
import statistics
import sys
import time

import torch


def rms_norm(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Decoder:
    """One token at a time over a preallocated per-layer cache [kvHeads, capacity, headDim]."""

    def __init__(self, s, dtype, capacity):
        g = torch.Generator().manual_seed(0)
        d, hd = s['hidden'], s['hidden'] // s['heads']
        self.s, self.hd, self.dtype = s, hd, dtype

        def w(*shape):
            return (torch.randn(*shape, generator=g) * 0.02).to(dtype)

        self.layers = []
        for _ in range(s['layers']):
            layer = {
                'input_layernorm': torch.ones(d, dtype=dtype), 'post_attention_layernorm': torch.ones(d, dtype=dtype),
                'q_proj': w(s['heads'] * hd, d), 'k_proj': w(s['kvHeads'] * hd, d), 'v_proj': w(s['kvHeads'] * hd, d),
                'o_proj': w(d, s['heads'] * hd),
                'gate_proj': w(s['intermediate'], d), 'up_proj': w(s['intermediate'], d), 'down_proj': w(d, s['intermediate']),
                'k_cache': torch.randn(s['kvHeads'], capacity, hd, generator=g).to(dtype),
                'v_cache': torch.randn(s['kvHeads'], capacity, hd, generator=g).to(dtype),
            }
            if s.get('qkvBias'):
                for p in ('q_proj', 'k_proj', 'v_proj'):
                    layer[p + '.bias'] = w(layer[p].shape[0])
            self.layers.append(layer)
        self.embed_tokens = w(s['vocab'], d)
        self.lm_head = self.embed_tokens if s.get('tie') else w(s['vocab'], d)
        self.norm = torch.ones(d, dtype=dtype)
        self.inv_freq = 1.0 / (s.get('ropeTheta', 1e6) ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))

    def step(self, token, pos):
        s, hd = self.s, self.hd
        kv, group = s['kvHeads'], s['heads'] // s['kvHeads']
        x = self.embed_tokens[token].unsqueeze(0)  # [1, d]
        freqs = pos * self.inv_freq
        emb = torch.cat((freqs, freqs))
        cos, sin = emb.cos().to(self.dtype), emb.sin().to(self.dtype)
        for L in self.layers:
            h = rms_norm(x, L['input_layernorm'])
            q = torch.nn.functional.linear(h, L['q_proj'], L.get('q_proj.bias')).view(s['heads'], hd)
            k = torch.nn.functional.linear(h, L['k_proj'], L.get('k_proj.bias')).view(kv, hd)
            v = torch.nn.functional.linear(h, L['v_proj'], L.get('v_proj.bias')).view(kv, hd)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            L['k_cache'][:, pos] = k
            L['v_cache'][:, pos] = v
            keys = L['k_cache'][:, : pos + 1]  # [kv, n, hd], a view: no copy
            values = L['v_cache'][:, : pos + 1]
            qg = q.view(kv, group, hd)
            scores = torch.matmul(qg, keys.transpose(1, 2)) / math.sqrt(hd)  # [kv, group, n]
            probs = torch.softmax(scores.float(), dim=-1).to(self.dtype)
            attn = torch.matmul(probs, values).reshape(1, s['heads'] * hd)
            x = x + torch.nn.functional.linear(attn, L['o_proj'])
            h = rms_norm(x, L['post_attention_layernorm'])
            gate = torch.nn.functional.silu(torch.nn.functional.linear(h, L['gate_proj']))
            x = x + torch.nn.functional.linear(gate * torch.nn.functional.linear(h, L['up_proj']), L['down_proj'])
        logits = torch.nn.functional.linear(rms_norm(x, self.norm), self.lm_head)
        return int(torch.argmax(logits))


def weight_bytes(dec):
    n = sum(t.numel() * t.element_size() for L in dec.layers for k, t in L.items() if not k.endswith('_cache'))
    return n + dec.lm_head.numel() * dec.lm_head.element_size() + dec.norm.numel() * dec.norm.element_size()


def main():
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(int(spec.get('threads') or torch.get_num_threads()))
    warmup, steps = int(spec.get('warmup', 3)), int(spec.get('steps', 12))
    budget = float(spec.get('secondsPerContext', 30))
    out = {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'warmup': warmup, 'steps': steps, 'results': []}
    with torch.inference_mode():
        for s in spec['shapes']:
            for dtype_name in s.get('dtypes', ['float32']):
                dtype = getattr(torch, dtype_name)
                capacity = max(s['contexts']) + warmup + steps + 1
                t0 = time.perf_counter()
                dec = Decoder(s, dtype, capacity)
                build = time.perf_counter() - t0
                for ctx in s['contexts']:
                    token, times, started = 1, [], time.perf_counter()
                    for i in range(warmup + steps):
                        t = time.perf_counter()
                        token = dec.step(token, ctx + i)
                        if i >= warmup:
                            times.append((time.perf_counter() - t) * 1000)
                        # A slow dtype (bf16 matmuls without a fast kernel) gets at least 3 measured steps, then stops at the budget.
                        if len(times) >= 3 and time.perf_counter() - started > budget:
                            break
                    med = statistics.median(times)
                    kv_bytes = s['layers'] * 2 * s['kvHeads'] * dec.hd * (ctx + warmup + steps / 2) * dec.layers[0]['k_cache'].element_size()
                    out['results'].append({
                        'shape': s['name'], 'dtype': dtype_name, 'context': ctx, 'msPerToken': med, 'tokensPerSecond': 1000 / med,
                        'weightBytes': weight_bytes(dec), 'kvBytes': kv_bytes, 'samplesMs': times, 'measuredSteps': len(times), 'buildSeconds': build,
                    })
                    print(f"torch {s['name']} {dtype_name} context {ctx}: {med:.1f} ms/token", file=sys.stderr, flush=True)
                del dec
    print(json.dumps(out))


if __name__ == '__main__':
    main()
