"""Self-pretraining objectives: every adapter, masked and causal, scored only where they must be."""

import numpy as np
import pytest
import torch

import multiseq
from multiseq.errors import ConfigError
from multiseq.train.objectives import PretrainConfig, SelfPretraining, body_state, span_mask

TEXTS = ["a long and winding review of a film " * 3, "short one", "[MAX 2 9 [MIN 4 7 ] 0 ]"]
LISTOPS = ["[MAX 2 9 [MIN 4 7 ] 0 ]", "[SM 1 2 3 ]"]


def _images(n=2, size=32):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


CASES = {
    "bytes": ("s4d_bytes_tiny", {}, TEXTS),
    "bytes+stem": ("s4d_bytes_tiny", {"stem": {"stride": 4, "width": 16}, "head": {"pool": "meanmax"}}, TEXTS),
    "listops": ("s4d_bytes_tiny", {"adapter": {"kind": "listops", "max_length": 64, "options": {}}}, LISTOPS),
    "render": ("s4d_render_tiny", {"adapter": {"max_length": 32}}, TEXTS[:2]),
    "pixels": ("s4d_pixels_tiny", {}, None),
    "pixels+stem": ("s4d_pixels_tiny", {"stem": {"stride": 8}}, None),
    "patches": ("s4d_patches_tiny", {}, None),
    "cls": ("attention_bytes_tiny", {"head": {"pool": "cls"}}, TEXTS),
}


def _model(case, causal=False):
    name, over, _ = CASES[case]
    torch.manual_seed(0)
    return multiseq.create_model(name, width=32, depth=1, causal=causal, **over)


def _inputs(case, model):
    raw = CASES[case][2]
    return model.encode(raw if raw is not None else _images())


class _Capture:
    """Records what `_loss` receives: the predictions, targets and the scored positions."""

    def __init__(self, monkeypatch):
        self.calls = []
        original = SelfPretraining._loss

        def spy(obj, pred, target, scored):
            self.calls.append((pred.detach().clone(), target.clone(), scored.clone()))
            return original(obj, pred, target, scored)

        monkeypatch.setattr(SelfPretraining, "_loss", spy)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("causal", [False, True])
def test_objective_trains_the_body(case, causal):
    if causal and case == "cls":
        pytest.skip("CLS pooling is bidirectional")
    model = _model(case, causal)
    obj = SelfPretraining(model)
    x, m = _inputs(case, model)
    loss, stats = obj(x, m)
    assert torch.isfinite(loss) and stats["count"] > 0
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("head."):
            assert p.grad is None, f"the task head takes no part in pretraining ({name})"
        elif case != "cls" or "cls" not in name:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("case", ["bytes", "bytes+stem", "pixels+stem", "patches", "render"])
def test_masked_inputs_are_hidden_and_only_they_are_scored(case, monkeypatch):
    cap = _Capture(monkeypatch)
    model = _model(case)
    obj = SelfPretraining(model, PretrainConfig(mask_ratio=0.4))
    x, m = _inputs(case, model)
    torch.manual_seed(1)
    obj(x, m)
    pred, target, scored = cap.calls[-1]
    assert scored.any() and not (scored & ~m).any(), "only real positions are scored"
    assert (~scored & m).any(), "some real positions stay visible"
    # Change the input where it was masked: the model must not see the difference.
    x2 = x.clone()
    if x.dim() == 4:  # images: scored positions are patches
        P = model.embed.spec.patch_size
        cols = x.shape[-1] // P
        for b, n in zip(*torch.nonzero(scored, as_tuple=True)):
            r, c = divmod(int(n), cols)
            x2[b, :, r * P:(r + 1) * P, c * P:(c + 1) * P] = torch.rand(x.shape[1], P, P)
    elif x.dtype.is_floating_point:
        x2[scored] = torch.randn_like(x2[scored])
    else:
        x2[scored] = torch.randint(1, 200, (int(scored.sum()),))
    torch.manual_seed(1)
    obj(x2, m)
    pred2, target2, scored2 = cap.calls[-1]
    assert torch.equal(scored, scored2)
    assert torch.allclose(pred, pred2, atol=1e-5)
    assert not torch.equal(target, target2)


def test_loss_is_the_mean_over_scored_positions_only(monkeypatch):
    model = _model("bytes")
    obj = SelfPretraining(model, PretrainConfig(mask_ratio=0.3))
    cap = _Capture(monkeypatch)
    x, m = _inputs("bytes", model)
    torch.manual_seed(3)
    loss, stats = obj(x, m)
    pred, target, scored = cap.calls[-1]
    want = torch.nn.functional.cross_entropy(pred[scored], target[scored])
    assert torch.allclose(loss, want) and stats["count"] == scored.sum()


@pytest.mark.parametrize("case", ["bytes", "bytes+stem", "pixels+stem"])
def test_causal_objective_never_sees_the_future(case, monkeypatch):
    cap = _Capture(monkeypatch)
    model = _model(case, causal=True)
    obj = SelfPretraining(model)
    x, m = _inputs(case, model)
    obj(x, m)
    pred, target, scored = cap.calls[-1]
    stride = model.config.stem.stride
    cut = 4 * stride  # inputs from here on change
    x2 = x.clone()
    x2[:, cut:] = torch.randint(1, 200, x2[:, cut:].shape) if not x.dtype.is_floating_point else torch.randn_like(x2[:, cut:])
    obj(x2, m)
    pred2, target2, _ = cap.calls[-1]
    # Prediction i targets input i + stride (window-aligned): everything predicting inputs before `cut` is unchanged.
    assert torch.allclose(pred[:, : cut - stride], pred2[:, : cut - stride], atol=1e-5)
    assert torch.equal(target[:, : cut - stride], target2[:, : cut - stride])
    assert not torch.allclose(pred, pred2)


def test_span_mask_properties():
    g = torch.Generator().manual_seed(0)
    real = torch.ones(64, 200, dtype=torch.bool)
    real[:, 150:] = False
    real[0] = False
    real[1, 1:] = False
    chosen = span_mask(real, 0.25, 4, generator=g)
    assert not (chosen & ~real).any()
    assert not chosen[0].any() and chosen[1, 0]
    frac = chosen[2:].sum() / real[2:].sum()
    assert 0.2 < float(frac) < 0.3
    # runs of 4: every masked window's run mates (same run) are masked too where real
    runs = chosen[2:, :148]
    assert (runs.float().diff(dim=1).abs().sum(1) <= 2 * (148 // 4 + 2)).all()


def test_config_errors():
    with pytest.raises(ConfigError, match="mask_ratio"):
        PretrainConfig(mask_ratio=1.5)
    with pytest.raises(ConfigError, match="objective must be"):
        PretrainConfig(objective="mlm")
    with pytest.raises(ConfigError, match="causal model cannot"):
        SelfPretraining(_model("bytes", causal=True), PretrainConfig(objective="masked"))
    with pytest.raises(ConfigError, match="needs a causal model"):
        SelfPretraining(_model("bytes"), PretrainConfig(objective="causal"))


def test_body_state_carries_everything_but_the_head():
    model = _model("bytes+stem")
    obj = SelfPretraining(model)
    opt = torch.optim.SGD(obj.parameters(), lr=0.1)
    x, m = _inputs("bytes+stem", model)
    for _ in range(2):
        opt.zero_grad()
        obj(x, m)[0].backward()
        opt.step()
    fresh = _model("bytes+stem")
    missing, unexpected = fresh.load_state_dict(body_state(model), strict=False)
    assert not unexpected and all(k.startswith("head.") for k in missing)
    for k, v in body_state(model).items():
        assert torch.equal(fresh.state_dict()[k], v)


@pytest.mark.parametrize("preset", multiseq.list_models("*_bytes_tiny"))
def test_every_block_family_pretrains_then_fine_tunes(preset):
    """Masked pretraining trains the body of every registered family; fine-tuning starts from that body exactly."""
    torch.manual_seed(0)
    model = multiseq.create_model(preset, adapter={"max_length": 64})
    obj = SelfPretraining(model, PretrainConfig(mask_ratio=0.3))
    x, m = model.encode(TEXTS)
    opt = torch.optim.AdamW(obj.parameters(), lr=1e-3)
    loss, stats = obj(x, m)
    assert torch.isfinite(loss) and stats["count"] > 0
    loss.backward()
    trained = [n for n, p in model.named_parameters() if not n.startswith("head.") and p.grad is not None]
    assert trained, "pretraining reached no body parameter"
    opt.step()
    body = body_state(model)
    model.reset_classifier(3)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in body.items())
    logits = model(x, m)
    assert logits.shape == (len(TEXTS), 3) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])).backward()
