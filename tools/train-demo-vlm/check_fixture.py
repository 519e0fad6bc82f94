"""Checks model.py + hfio.py against the independent reference in ../shared/fixtures/llava-clip-llama-tiny:
prompt ids, last-position logits, a few prompt rows, the sum of all logits, greedy ids, and CLS attention."""
import json, os, sys
import torch
sys.path.insert(0, os.path.dirname(__file__))
from model import LlavaForConditionalGeneration
from hfio import ByteLevelTokenizer, render_chat, expand_images, pixels, load_safetensors, to_current_layout

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
FIX = os.environ.get("FIXTURE", os.path.join(ROOT, "../shared/fixtures/llava-clip-llama-tiny"))

def main():
    cfg = json.load(open(os.path.join(FIX, "config.json")))
    exp = json.load(open(os.path.join(FIX, "expected.json")))
    pre = json.load(open(os.path.join(FIX, "preprocessor_config.json")))
    tok = ByteLevelTokenizer(os.path.join(FIX, "tokenizer.json"))
    m = LlavaForConditionalGeneration(cfg).eval()
    sd = to_current_layout(load_safetensors(os.path.join(FIX, "model.safetensors")))
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    text = render_chat([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": exp["question"]}]}], True)
    assert text == exp["prompt"], (text, exp["prompt"])
    ids = tok.encode(expand_images(text, exp["image_token_count"]))
    assert ids == exp["input_ids"], "input ids differ"
    px = pixels(os.path.join(FIX, "image.png"), cfg["vision_config"]["image_size"], pre["image_mean"], pre["image_std"])[None]
    with torch.no_grad():
        logits = m(torch.tensor([ids]), px)[0]
        err = (logits[-1] - torch.tensor(exp["last_logits"])).abs().max().item()
        rows = max((logits[int(r)] - torch.tensor(v)).abs().max().item() for r, v in exp["prompt_logits_rows"].items())
        s = abs(logits.sum().item() - exp["all_logits_sum"])
        seq = list(ids)
        greedy = []
        for _ in range(len(exp["greedy_ids"])):
            nxt = int(m(torch.tensor([seq]), px)[0, -1].argmax())
            greedy.append(nxt); seq.append(nxt)
        c = m.cfg
        layer = c.v_layers + 1 + c.feature_layer
        _, attn = m.model.vision_tower.vision_model.hidden_states(px, layer, attn_layer=layer - 1)
        cls = attn[0].mean(0)[0, 1:]
        cls_err = (cls - torch.tensor(exp["vision_cls_attention"])).abs().max().item()
    print(f"last logits max|Δ| {err:.2e}, rows {rows:.2e}, sum Δ {s:.2e}, greedy equal {greedy == exp['greedy_ids']}, cls attn {cls_err:.2e}")
    assert err < 1e-4 and rows < 1e-4 and greedy == exp["greedy_ids"] and cls_err < 1e-6

if __name__ == "__main__":
    main()
