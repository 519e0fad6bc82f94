"""
A tiny LlavaForConditionalGeneration in plain PyTorch, following transformers' modeling files in math and in
parameter names, so that `state_dict()` IS a Hugging Face checkpoint in the current Llava key layout:

  model.vision_tower.vision_model.*   models/clip/modeling_clip.py   (CLIPVisionTransformer)
  model.multi_modal_projector.*       models/llava/modeling_llava.py (LlavaMultiModalProjector)
  model.language_model.*              models/llama/modeling_llama.py (LlamaModel)
  lm_head.weight                      untied (tie_word_embeddings: false)

Only what the config below uses is implemented: CLIP tower (CLS token, pre_layrnorm, quick_gelu, post_layernorm
kept in the state dict though Llava never uses it), vision_feature_layer -2 with the "default" strategy (CLS
dropped), projector linear_1 -> gelu (exact erf) -> linear_2, LLaMA decoder (RMSNorm, rotate-half rotary with
default rope, GQA via repeat_kv, SiLU MLP, no biases).

No transformers import: Debian's python3-torch is all there is.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Cfg:
    """The subset of LlavaConfig we use, with attribute names as in transformers' config classes."""

    def __init__(self, d):
        self.raw = d
        v, t = d["vision_config"], d["text_config"]
        self.v_hidden = v["hidden_size"]
        self.v_inter = v["intermediate_size"]
        self.v_layers = v["num_hidden_layers"]
        self.v_heads = v["num_attention_heads"]
        self.image_size = v["image_size"]
        self.patch_size = v["patch_size"]
        self.channels = v.get("num_channels", 3)
        self.v_eps = v.get("layer_norm_eps", 1e-5)
        assert v.get("hidden_act", "quick_gelu") == "quick_gelu"
        self.t_hidden = t["hidden_size"]
        self.t_inter = t["intermediate_size"]
        self.t_layers = t["num_hidden_layers"]
        self.t_heads = t["num_attention_heads"]
        self.t_kv_heads = t.get("num_key_value_heads", self.t_heads)
        self.head_dim = t.get("head_dim") or self.t_hidden // self.t_heads
        self.vocab = t["vocab_size"]
        self.rms_eps = t.get("rms_norm_eps", 1e-6)
        self.rope_theta = t.get("rope_theta", 10000.0)
        self.tie = t.get("tie_word_embeddings", d.get("tie_word_embeddings", False))
        self.image_token_index = d["image_token_index"]
        self.feature_layer = d.get("vision_feature_layer", -2)
        self.strategy = d.get("vision_feature_select_strategy", "default")
        assert d.get("projector_hidden_act", "gelu") == "gelu"


# ----------------------------------------------------------------------------------------------- CLIP tower


def quick_gelu(x):
    # transformers activations.QuickGELUActivation
    return x * torch.sigmoid(1.702 * x)


class CLIPVisionEmbeddings(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.randn(c.v_hidden))
        self.patch_embedding = nn.Conv2d(c.channels, c.v_hidden, kernel_size=c.patch_size, stride=c.patch_size, bias=False)
        self.num_patches = (c.image_size // c.patch_size) ** 2
        self.num_positions = self.num_patches + 1
        self.position_embedding = nn.Embedding(self.num_positions, c.v_hidden)
        self.register_buffer("position_ids", torch.arange(self.num_positions).expand((1, -1)), persistent=False)

    def forward(self, pixel_values):
        b = pixel_values.shape[0]
        patch = self.patch_embedding(pixel_values)  # [B, D, g, g]
        patch = patch.flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(b, 1, -1)
        emb = torch.cat([cls, patch], dim=1)
        return emb + self.position_embedding(self.position_ids)


class CLIPAttention(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.embed_dim = c.v_hidden
        self.num_heads = c.v_heads
        self.head_dim = self.embed_dim // self.num_heads
        self.scale = self.head_dim ** -0.5
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim)

    def forward(self, x, want_attn=False):
        b, n, _ = x.shape
        shape = (b, n, self.num_heads, self.head_dim)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        # eager_attention_forward: softmax(q·kᵀ · scale) in float32
        w = torch.matmul(q, k.transpose(2, 3)) * self.scale
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(w, v).transpose(1, 2).reshape(b, n, self.embed_dim)
        return self.out_proj(out), (w if want_attn else None)


class CLIPMLP(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.fc1 = nn.Linear(c.v_hidden, c.v_inter)
        self.fc2 = nn.Linear(c.v_inter, c.v_hidden)

    def forward(self, x):
        return self.fc2(quick_gelu(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.self_attn = CLIPAttention(c)
        self.layer_norm1 = nn.LayerNorm(c.v_hidden, eps=c.v_eps)
        self.mlp = CLIPMLP(c)
        self.layer_norm2 = nn.LayerNorm(c.v_hidden, eps=c.v_eps)

    def forward(self, x, want_attn=False):
        a, w = self.self_attn(self.layer_norm1(x), want_attn)
        x = x + a
        x = x + self.mlp(self.layer_norm2(x))
        return x, w


class CLIPEncoder(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(c) for _ in range(c.v_layers)])


class CLIPVisionTransformer(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.embeddings = CLIPVisionEmbeddings(c)
        self.pre_layrnorm = nn.LayerNorm(c.v_hidden, eps=c.v_eps)
        self.encoder = CLIPEncoder(c)
        self.post_layernorm = nn.LayerNorm(c.v_hidden, eps=c.v_eps)

    def hidden_states(self, pixel_values, upto, attn_layer=None):
        """hidden_states[0..upto] as transformers' output_hidden_states gives them; layers past `upto` are not run.
        attn_layer: also return that layer's attention probabilities (index into layers)."""
        x = self.pre_layrnorm(self.embeddings(pixel_values))
        states = [x]
        attn = None
        for i, layer in enumerate(self.encoder.layers[:upto]):
            x, w = layer(x, want_attn=(i == attn_layer))
            if w is not None:
                attn = w
            states.append(x)
        return states, attn


class CLIPVisionModel(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.vision_model = CLIPVisionTransformer(c)


# ----------------------------------------------------------------------------------------------- projector


class LlavaMultiModalProjector(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.linear_1 = nn.Linear(c.v_hidden, c.t_hidden, bias=True)
        self.linear_2 = nn.Linear(c.t_hidden, c.t_hidden, bias=True)

    def forward(self, x):
        return self.linear_2(F.gelu(self.linear_1(x)))  # ACT2FN["gelu"]: exact erf GELU


# ----------------------------------------------------------------------------------------------- LLaMA


class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.variance_epsilon = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.to(torch.float32)
        var = x.pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(var + self.variance_epsilon)
        return self.weight * x.to(dtype)


class LlamaRotaryEmbedding(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        dim = c.head_dim
        # modeling_rope_utils._compute_default_rope_parameters
        inv_freq = 1.0 / (c.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype=torch.float) / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, position_ids):  # [B, T] -> cos, sin [B, T, D]
        inv = self.inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
        pos = position_ids[:, None, :].float()
        freqs = (inv.float() @ pos.float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    cos = cos.unsqueeze(1)
    sin = sin.unsqueeze(1)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def repeat_kv(x, n_rep):
    b, kvh, t, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, kvh, n_rep, t, d).reshape(b, kvh * n_rep, t, d)


class LlamaAttention(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.head_dim = c.head_dim
        self.num_heads = c.t_heads
        self.num_kv = c.t_kv_heads
        self.groups = c.t_heads // c.t_kv_heads
        self.scaling = self.head_dim ** -0.5
        self.q_proj = nn.Linear(c.t_hidden, c.t_heads * c.head_dim, bias=False)
        self.k_proj = nn.Linear(c.t_hidden, c.t_kv_heads * c.head_dim, bias=False)
        self.v_proj = nn.Linear(c.t_hidden, c.t_kv_heads * c.head_dim, bias=False)
        self.o_proj = nn.Linear(c.t_heads * c.head_dim, c.t_hidden, bias=False)
        self.keep_probs = False
        self.probs = None

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, -1, self.head_dim).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        k = repeat_kv(k, self.groups)
        v = repeat_kv(v, self.groups)
        w = torch.matmul(q, k.transpose(2, 3)) * self.scaling
        w = w + mask  # additive [B, 1, T, T]
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        if self.keep_probs:  # for the trainer's attention guidance; not part of the model's math
            self.probs = w
        out = torch.matmul(w, v).transpose(1, 2).reshape(b, t, -1)
        return self.o_proj(out)


class LlamaMLP(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.gate_proj = nn.Linear(c.t_hidden, c.t_inter, bias=False)
        self.up_proj = nn.Linear(c.t_hidden, c.t_inter, bias=False)
        self.down_proj = nn.Linear(c.t_inter, c.t_hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.self_attn = LlamaAttention(c)
        self.mlp = LlamaMLP(c)
        self.input_layernorm = LlamaRMSNorm(c.t_hidden, c.rms_eps)
        self.post_attention_layernorm = LlamaRMSNorm(c.t_hidden, c.rms_eps)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab, c.t_hidden)
        self.layers = nn.ModuleList([LlamaDecoderLayer(c) for _ in range(c.t_layers)])
        self.norm = LlamaRMSNorm(c.t_hidden, c.rms_eps)
        self.rotary_emb = LlamaRotaryEmbedding(c)

    def forward(self, inputs_embeds, position_ids, key_valid=None):
        b, t, _ = inputs_embeds.shape
        # causal mask, plus padded keys masked out (key_valid [B, T] bool)
        neg = torch.finfo(inputs_embeds.dtype).min
        causal = torch.full((t, t), neg, dtype=inputs_embeds.dtype).triu(1)
        mask = causal[None, None].expand(b, 1, t, t)
        if key_valid is not None:
            mask = mask.masked_fill(~key_valid[:, None, None, :], neg)
        cos, sin = self.rotary_emb(position_ids)
        x = inputs_embeds
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.norm(x)


# ----------------------------------------------------------------------------------------------- Llava


class LlavaModel(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.vision_tower = CLIPVisionModel(c)
        self.multi_modal_projector = LlavaMultiModalProjector(c)
        self.language_model = LlamaModel(c)


class LlavaForConditionalGeneration(nn.Module):
    def __init__(self, cfg_dict):
        super().__init__()
        self.cfg = Cfg(cfg_dict)
        self.model = LlavaModel(self.cfg)
        self.lm_head = nn.Linear(self.cfg.t_hidden, self.cfg.vocab, bias=False)

    def vision_states(self, pixel_values, with_cls=False):
        """The tower's hidden states at vision_feature_layer, CLS dropped under the "default" strategy (kept, as
        position 0, when with_cls)."""
        c = self.cfg
        layer = c.feature_layer if c.feature_layer >= 0 else c.v_layers + 1 + c.feature_layer
        states, _ = self.model.vision_tower.vision_model.hidden_states(pixel_values, layer)
        feats = states[layer]
        return feats[:, 1:] if c.strategy == "default" and not with_cls else feats

    # LlavaModel.get_image_features
    def image_features(self, pixel_values):
        return self.model.multi_modal_projector(self.vision_states(pixel_values))

    def embed(self, input_ids, pixel_values=None, image_features=None):
        """inputs_embeds with image features scattered into the image-token positions, in order
        (LlavaModel.forward: inputs_embeds.masked_scatter(special_image_mask, image_features))."""
        emb = self.model.language_model.embed_tokens(input_ids)
        feats = image_features
        if feats is None and pixel_values is not None and pixel_values.shape[0] > 0:
            feats = self.image_features(pixel_values)
        if feats is not None:
            mask = input_ids == self.cfg.image_token_index
            assert int(mask.sum()) == feats.shape[0] * feats.shape[1], "image tokens vs features"
            emb = emb.masked_scatter(mask[..., None].expand_as(emb), feats.to(emb.dtype))
        return emb

    def forward(self, input_ids, pixel_values=None, position_ids=None, key_valid=None):
        b, t = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(t)[None].expand(b, t)
        emb = self.embed(input_ids, pixel_values)
        h = self.model.language_model(emb, position_ids, key_valid)
        return self.lm_head(h)


def init_weights(model: LlavaForConditionalGeneration, std=0.02, pos_std=0.02):
    """Like transformers' _init_weights: normal(0, initializer_range) for Linear/Embedding/class_embedding,
    zero biases, ones for norms."""
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, LlamaRMSNorm):
            nn.init.ones_(m.weight)
    emb = model.model.vision_tower.vision_model.embeddings
    nn.init.normal_(emb.class_embedding, 0.0, std)
    nn.init.normal_(emb.position_embedding.weight, 0.0, pos_std)
    # Residual output projections scaled down by depth (GPT-2 style) for a stable start.
    c = model.cfg
    for layer in model.model.language_model.layers:
        nn.init.normal_(layer.self_attn.o_proj.weight, 0.0, std / math.sqrt(2 * c.t_layers))
        nn.init.normal_(layer.mlp.down_proj.weight, 0.0, std / math.sqrt(2 * c.t_layers))
