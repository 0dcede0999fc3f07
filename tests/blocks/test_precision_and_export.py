"""Issue 18 item 13: fp16 / bf16 models with SSM blocks (the SSM parameters and kernel stay float32), and
torch.export / torch.compile without data-dependent graph breaks in the embedding."""

from __future__ import annotations

import pytest
import torch

import multiseq
from multiseq.blocks.s4 import DiagKernel, DPLRKernel
from multiseq.embed import Embedding

SSM_PRESETS = ["s4_bytes_tiny", "s4d_bytes_tiny", "dss_bytes_tiny", "gss_bytes_tiny", "spade_bytes_tiny"]


def _pair(name):
    torch.manual_seed(0)
    cfg = multiseq.get_model_config(name).replace(width=32, depth=2)
    ref = multiseq.create_model(cfg).eval()
    x, m = ref.encode(["a longer text with some bytes", "short"])
    return cfg, ref, x, m


@pytest.mark.parametrize("cast", ["bf16", "half"])
@pytest.mark.parametrize("name", SSM_PRESETS)
def test_low_precision_ssm_models_run_and_match_fp32(name, cast):
    cfg, ref, x, m = _pair(name)
    low = multiseq.create_model(cfg)
    low.load_state_dict(ref.state_dict())
    low = low.to(torch.bfloat16) if cast == "bf16" else low.half()
    dtype = torch.bfloat16 if cast == "bf16" else torch.float16
    kernels = [mod for mod in low.modules() if isinstance(mod, (DiagKernel, DPLRKernel))]
    assert kernels and all(t.dtype == torch.float32 for k in kernels for t in (*k.parameters(), *k.buffers())
                           if t.is_floating_point())
    assert low.head.net.weight.dtype == dtype  # everything else follows the cast
    low.eval()
    with torch.no_grad():
        out, want = low(x, m), ref(x, m)
    assert out.dtype == dtype and torch.isfinite(out).all()
    tol = 0.05 if cast == "bf16" else 0.01
    assert (out.float() - want).abs().max() <= tol * (1 + want.abs().max())
    # a training step in low precision gives finite gradients
    low.train()
    low(x, m).float().square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in low.parameters() if p.grad is not None)


def test_ssm_kernels_follow_fp64_and_built_in_bf16():
    _, ref, _, _ = _pair("s4d_bytes_tiny")
    k = next(mod for mod in ref.double().modules() if isinstance(mod, DiagKernel))
    assert all(p.dtype == torch.float64 for p in k.parameters())
    built = multiseq.create_model("s4_bytes_tiny", width=32, depth=1)
    bf = multiseq.sequence_model.SequenceModel(built.config, dtype=torch.bfloat16)
    k2 = next(mod for mod in bf.modules() if isinstance(mod, DPLRKernel))
    assert all(p.dtype == torch.float32 for p in k2.parameters())


@pytest.mark.parametrize("name", ["s4d_bytes_tiny", "attention_bytes_tiny"])
def test_torch_export(name):
    model = multiseq.create_model(name).eval()
    x, m = model.encode(["hello world", "hi"])
    m[1, 1:] = False
    program = torch.export.export(model, (x, m))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x, m), model(x, m))


def test_embedding_compiles_without_graph_breaks():
    emb = Embedding(multiseq.create_model("attention_bytes_tiny").adapter.embed_spec(), 16, max_length=32)
    x = torch.randint(0, 256, (2, 8))
    compiled = torch.compile(emb, backend="eager", fullgraph=True)  # fullgraph: a graph break is an error
    h, mask = compiled(x)
    torch.testing.assert_close(h, emb(x)[0])
    with pytest.raises(multiseq.errors.InputError, match="token ids must lie in"):
        emb(torch.full((1, 3), 999))  # eager keeps the check
