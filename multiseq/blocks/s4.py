"""S4 family blocks: `s4d` (diagonal), `s4` (DPLR / NPLR), `dss` (softmax-normalised ZOH) and `gss` (gated).

One layer, `SSMBlock`, covers the family (as the S4 repository's S4Block + FFTConv do):

    x (B, L, D) -> [gate v = GELU(W_v x)] -> [bottleneck u = GELU(W_u x)] -> zero pads
      -> y = K * u + D u (FFT long convolution, kernel from the SSM) -> activation
      -> [y = W_g y * v] -> dropout -> output linear (GLU by default) -> (B, L, D)

Kernels live in `s4_kernels.py`; this file holds the SSM parameterisations (`DiagKernel`, `DPLRKernel`), their
initialisations, streaming (`default_state` / `step`) and the registered blocks. A, B and dt carry their own
optimiser settings (`mark_optim`: own lr, no weight decay); frozen ones (lr 0, as GSS's dt and B) are buffers.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from multiseq.blocks.registry import mark_optim, register_block
from multiseq.blocks.s4_kernels import (
    dplr_c_tilde,
    dplr_discretize,
    dplr_kernel,
    fft_conv,
    fft_thread_scope,
    fft_threads_from_env,
    vandermonde_kernel,
)
from multiseq.errors import ConfigError
from multiseq.kernels import register_fused

register_fused("vandermonde_kernel", "Triton log-Vandermonde kernel (S4D/DSS), forward and backward")
register_fused("dplr_kernel", "Triton Cauchy sum of the S4 (DPLR) kernel, fwd+bwd (Woodbury, iFFT in PyTorch)")


INITS = ("lin", "inv", "legs", "real", "rand")
DISCS = ("zoh", "bilinear", "dss")


def hippo_legs(N: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor]:
    """HiPPO-LegS `A` (N, N), its rank-1 NPLR term `P` (N,) with `A + P P^T` normal, and `B` (N,)."""
    n = torch.arange(N, dtype=dtype)
    r = torch.sqrt(2 * n + 1)
    A = -torch.tril(r[:, None] * r[None, :], -1) - torch.diag(n + 1)
    return A, torch.sqrt(n + 0.5), r.clone()


@functools.lru_cache(maxsize=8)
def _legs_dplr_cached(N: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return _legs_dplr(N)


def legs_dplr(N: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """See `_legs_dplr`; cached per N (every S4 layer of a model shares it), returned as fresh copies."""
    return tuple(t.clone() for t in _legs_dplr_cached(N))  # type: ignore[return-value]


def _legs_dplr(N: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Half-spectrum DPLR form of HiPPO-LegS: `Lambda, P, B` (N/2,) complex128 and the unitary `V` (N, N/2).

    `A_legs = V_full (diag(Lambda_full) - P_full P_full^*) V_full^*` where `x_full = [x, conj(x)]`.
    """
    if N % 2:
        raise ConfigError(f"d_state must be even (conjugate pairs), got {N}")
    A, P, B = hippo_legs(N)
    S = A + P[:, None] * P[None, :]  # -1/2 I + skew-symmetric
    skew = (S - S.T) / 2
    w, V = torch.linalg.eigh(1j * skew.to(torch.complex128))  # i*skew is Hermitian: skew = V diag(-i w) V^*
    keep = w < 0  # eigenvalue -i w with positive imaginary part: one of each conjugate pair
    V = V[:, keep]
    Lam = -0.5 - 1j * w[keep]
    Vh = V.conj().T
    return Lam, Vh @ P.to(V.dtype), Vh @ B.to(V.dtype), V


def init_diag_A(init: str, H: int, N2: int, N: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Initial diagonal `A` (H, N2) complex128 and `B` (H, N2) complex128 for the named S4D initialisation."""
    n = torch.arange(N2, dtype=torch.float64)
    B = torch.ones(N2, dtype=torch.complex128)
    if init == "lin":
        A = -0.5 + 1j * math.pi * n
    elif init == "inv":
        A = -0.5 + 1j * (N / math.pi) * (N / (2 * n + 1) - 1)
    elif init == "legs":
        A, _, B, _ = legs_dplr(N)
    elif init == "real":
        A = -(n + 1) + 0j
    elif init == "rand":
        # Log-normal frequencies, damping 1/2 (the random diagonal init used by GSS).
        A = -0.5 + 1j * torch.exp(torch.randn(N2, dtype=torch.float64, generator=generator))
    else:
        raise ConfigError(f"unknown S4 init {init!r}; valid: {', '.join(INITS)}")
    return A.expand(H, N2).clone(), B.expand(H, N2).clone()


def _cparam(module: nn.Module, name: str, value: Tensor, learn: bool, lr: float | None, dtype: Any) -> None:
    """Store a complex tensor as a real (..., 2) parameter (optimisers and safetensors handle real best)."""
    data = torch.view_as_real(value.to(torch.complex128)).to(dtype)
    if learn:
        p = nn.Parameter(data)
        module.register_parameter(name, mark_optim(p, lr) if lr is not None else p)
    else:
        module.register_buffer(name, data)


def _c(t: Tensor) -> Tensor:
    return torch.view_as_complex(t.contiguous())


_LOW_PRECISION = (torch.float16, torch.bfloat16)


def ssm_dtype(dtype: Any) -> torch.dtype:
    """The dtype SSM parameters are kept in: float32 for fp16 / bf16 requests (complex half precision has no
    `exp`/`expm1`/reciprocal on CPU and loses the kernel's accuracy), else the requested (or default) dtype."""
    dtype = dtype or torch.get_default_dtype()
    return torch.float32 if dtype in _LOW_PRECISION else dtype


class _FP32SSM(nn.Module):
    """Keeps floating parameters and buffers in float32 when the module is cast to fp16 / bf16 (`.half()`,
    `.to(torch.bfloat16)`); device moves and fp64 casts apply as usual. The kernel is computed in float32 and the
    block casts the convolution's output back to the input's dtype."""

    def _apply(self, fn: Any, recurse: bool = True) -> nn.Module:
        super()._apply(fn, recurse)
        for t in (*self.parameters(recurse=False), *self.buffers(recurse=False)):
            if t.dtype in _LOW_PRECISION:
                t.data = t.data.float()
                if t.grad is not None:
                    t.grad = t.grad.float()
        return self


class DiagKernel(_FP32SSM):
    """Diagonal SSM kernel (S4D / DSS): `K = 2 Re sum_n C'_n exp(dtA_n l)`, (channels, H, L).

    Parameters stay float32 when the model is fp16 / bf16 (see `ssm_dtype`).

    Args:
        H: channels of the SSM; N: state size (N/2 complex conjugate modes).
        init: `lin`, `inv`, `legs`, `real` or `rand`. disc: `zoh`, `bilinear` or `dss`.
        dt_min, dt_max: log-uniform dt range. lr: learning rate of A, B, dt (0 freezes them all).
        learn_dt, learn_B: freeze dt / B (buffers) when False. channels: 2 for a bidirectional kernel.
        l_max: DSS normalisation length (the softmax runs over l < l_max, fixed so that padding never
            changes the kernel).
    """

    def __init__(
        self, H: int, N: int, *, init: str = "inv", disc: str = "zoh", dt_min: float = 1e-3, dt_max: float = 1e-1,
        lr: float | None = 1e-3, learn_dt: bool = True, learn_B: bool = True, channels: int = 1,
        l_max: int = 1024, device: Any = None, dtype: Any = None,
    ) -> None:
        super().__init__()
        if disc not in DISCS:
            raise ConfigError(f"unknown discretisation {disc!r}; valid: {', '.join(DISCS)}")
        if N < 2 or N % 2:
            raise ConfigError(f"d_state must be an even int >= 2 (conjugate pairs), got {N}")
        if not 0 < dt_min <= dt_max:
            raise ConfigError(f"need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
        dtype = ssm_dtype(dtype)
        self.disc, self.l_max, self.channels, self.N2 = disc, int(l_max), channels, N // 2
        learn = lr is None or lr > 0
        A, B = init_diag_A(init, H, self.N2, N)
        log_dt = torch.rand(H, dtype=torch.float64) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self._real("log_dt", log_dt, learn and learn_dt, lr, device, dtype)
        # DSS leaves Re(A) free (the softmax keeps it stable); S4D keeps it negative through -exp.
        a_re = A.real if disc == "dss" else torch.log(-A.real)
        self._real("A_re", a_re, learn, lr, device, dtype)
        self._real("A_im", A.imag, learn, lr, device, dtype)
        if disc == "dss":  # DSS has no B: it is absorbed into C (its W)
            B = torch.ones_like(B)
        _cparam(self, "B", B, learn and learn_B and disc != "dss", lr, dtype)
        C = torch.randn(channels, H, self.N2, dtype=torch.complex128)
        self.C = nn.Parameter(torch.view_as_real(C).to(dtype))
        if device is not None:
            self.to(device)

    def _real(self, name: str, value: Tensor, learn: bool, lr: float | None, device: Any, dtype: Any) -> None:
        data = value.to(device=device, dtype=dtype)
        if learn:
            self.register_parameter(name, mark_optim(nn.Parameter(data), lr))
        else:
            self.register_buffer(name, data)

    def A(self) -> Tensor:
        re = self.A_re if self.disc == "dss" else -torch.exp(self.A_re)
        return torch.complex(re, self.A_im)  # (H, N2)

    def discrete(self) -> tuple[Tensor, Tensor, Tensor]:
        """(log_dA, dB, C) with shapes (H, N2), (H, N2), (channels, H, N2): `x <- dA x + dB u, y = 2 Re C x`."""
        dt = torch.exp(self.log_dt)[:, None]
        A = self.A()
        dtA = dt * A
        B = _c(self.B)
        if self.disc == "zoh":
            log_dA, dB = dtA, B * torch.expm1(dtA) / A
        elif self.disc == "bilinear":
            log_dA = torch.log((1 + dtA / 2) / (1 - dtA / 2))
            dB = B * dt / (1 - dtA / 2)
        else:  # dss: exp(dtA l) (e^dtA - 1) / (A (e^{dtA l_max} - 1)), a softmax over l < l_max
            fwd, back = self._dss_coefs()
            b = torch.complex(dtA.real.abs(), dtA.imag)
            log_dA, dB = dtA, fwd + back * torch.exp(-b * (self.l_max - 1))
        return log_dA, dB, _c(self.C)

    def forward(self, L: int) -> Tensor:
        """Kernel (channels, H, L)."""
        log_dA, dB, C = self.discrete()
        coef = rearrange(C * dB, "c h n -> (c h) n")
        log_dA_c = log_dA.repeat(self.channels, 1)
        if self.disc == "dss":
            if L > self.l_max:
                raise ValueError(
                    f"DSS normalises its kernel over l_max={self.l_max} steps and got a sequence of length {L}; "
                    "build the block with a larger l_max"
                )
            fwd, back = self._dss_coefs()
            C2 = rearrange(C, "c h n -> (c h) n")
            # Modes with Re(dtA) > 0 grow: they are evaluated backwards from l_max - 1, where they peak, so that
            # exp never overflows (the softmax's max shift).
            K = vandermonde_kernel(log_dA_c, C2 * fwd.repeat(self.channels, 1), L)
            if bool((back != 0).any()):
                neg = torch.complex(-log_dA_c.real.abs(), -log_dA_c.imag)
                K = K + vandermonde_kernel(neg, C2 * back.repeat(self.channels, 1), self.l_max).flip(-1)[:, :L]
        else:
            K = vandermonde_kernel(log_dA_c, coef, L)
        return rearrange(K, "(c h) l -> c h l", c=self.channels)

    def _dss_coefs(self) -> tuple[Tensor, Tensor]:
        """DSS coefficients (H, N2): forward ones for modes with Re(dtA) <= 0, backward ones (multiplying
        exp(-dtA (l_max - 1 - l))) for Re(dtA) > 0; each is zero on the other set. Exponents are made safe on
        the unused set so that neither forward nor backward ever meets inf."""
        dt = torch.exp(self.log_dt)[:, None]
        dtA = dt * self.A()
        B = _c(self.B)
        pos = dtA.real > 0
        a = torch.complex(-dtA.real.abs(), dtA.imag)  # == dtA where Re <= 0
        fwd = B * torch.expm1(a) / ((a / dt) * torch.expm1(a * self.l_max))
        b = torch.complex(dtA.real.abs(), dtA.imag)  # == dtA where Re > 0
        back = B * torch.expm1(b) / ((b / dt) * (torch.exp(b) - torch.exp(-b * (self.l_max - 1))))
        return torch.where(pos, 0, fwd), torch.where(pos, back, 0)

    def step_params(self) -> tuple[Tensor, Tensor, Tensor]:
        log_dA, dB, C = self.discrete()
        return torch.exp(log_dA), dB, C[0]


class DPLRKernel(_FP32SSM):
    """S4 kernel of `A = diag(Lambda) - P P^*` (HiPPO-LegS NPLR init), bilinear, learning C~ = (I - dA^Lk)^T C.

    Parameters stay float32 when the model is fp16 / bf16 (see `ssm_dtype`).

    The kernel length `Lk` doubles (C~ <- (I + dA^Lk)^T C~) whenever a longer input arrives; `Lk` is a buffer so
    checkpoints carry it.
    """

    def __init__(
        self, H: int, N: int, *, dt_min: float = 1e-3, dt_max: float = 1e-1, lr: float | None = 1e-3,
        channels: int = 1, l_max: int = 1024, device: Any = None, dtype: Any = None,
    ) -> None:
        super().__init__()
        dtype = ssm_dtype(dtype)
        self.channels = channels
        learn = lr is None or lr > 0
        Lam, P, B, _ = legs_dplr(N)
        H_ = lambda t: t.expand(H, -1).clone()  # noqa: E731
        log_dt = torch.rand(H, dtype=torch.float64) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        params = {"log_dt": log_dt, "L_re": torch.log(-H_(Lam.real)), "L_im": H_(Lam.imag)}
        for name, value in params.items():
            data = value.to(dtype)
            if learn:
                self.register_parameter(name, mark_optim(nn.Parameter(data), lr))
            else:
                self.register_buffer(name, data)
        _cparam(self, "P", H_(P), learn, lr, dtype)
        _cparam(self, "B", H_(B), learn, lr, dtype)
        # Start short and double on demand: each doubling is one cheap update of C~, and short inputs never pay
        # for a long kernel.
        l_max = min(int(l_max), 64)
        self.register_buffer("Lk", torch.tensor(l_max))
        # C~ starts as a random normal vector, as C would (converting a random C through (I - dA^Lk)^T costs a
        # batched dense solve per layer at construction and buys nothing for a random init).
        Ct = torch.randn(channels, H, N // 2, dtype=torch.complex128)
        self.C = nn.Parameter(torch.view_as_real(Ct).to(dtype))
        if device is not None:
            self.to(device)

    def _ssm(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        Lam = torch.complex(-torch.exp(self.L_re), self.L_im)
        return Lam, _c(self.P), _c(self.B), torch.exp(self.log_dt)

    def _ssm64(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        Lam, P, B, dt = self._ssm()
        return Lam.to(torch.complex128), P.to(torch.complex128), B.to(torch.complex128), dt.double()

    @torch.no_grad()
    def double_length(self) -> None:
        """Double Lk, keeping C fixed: C~_{2L} = (I + dA^L)^T C~_L (in float64)."""
        Lam, P, B, dt = self._ssm64()
        dA, _ = dplr_discretize(Lam, P, B, dt)
        Lk = int(self.Lk)
        M = torch.linalg.matrix_power(dA, Lk)
        eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device)
        Ct = _c(self.C).to(torch.complex128)
        full = torch.cat([Ct, Ct.conj()], dim=-1)
        new = torch.einsum("hmk,chk->chm", (eye + M).transpose(-1, -2), full)[..., : Ct.shape[-1]]
        self.C.copy_(torch.view_as_real(new).to(self.C.dtype))
        self.Lk.fill_(2 * Lk)

    def forward(self, L: int) -> Tensor:
        """Kernel (channels, H, L)."""
        while int(self.Lk) < L:
            self.double_length()
        Lam, P, B, dt = self._ssm()
        Ct = _c(self.C)
        H = Lam.shape[0]
        rep = lambda t: t.repeat(self.channels, 1)  # noqa: E731
        K = dplr_kernel(rep(Lam), rep(P), rep(B), rearrange(Ct, "c h n -> (c h) n"), dt.repeat(self.channels),
                        int(self.Lk), c_tilde=True)
        return rearrange(K[:, :L], "(c h) l -> c h l", h=H)

    def step_params(self) -> tuple[Tensor, Tensor, Tensor]:
        """Dense dA (H, 2N, 2N), dB (H, 2N) and C (H, 2N) (recovered from C~) of the augmented real system."""
        Lam, P, B, dt = self._ssm64()
        dA, dB = dplr_discretize(Lam, P, B, dt)
        C = dplr_c_tilde(Lam, P, B, _c(self.C)[0].to(torch.complex128), dt, int(self.Lk), inverse=True)
        dt_c = _c(self.C).dtype
        return dA.to(dt_c), dB.to(dt_c), torch.cat([C, C.conj()], -1).to(dt_c)


_ACTS = {"gelu": nn.GELU, "silu": nn.SiLU, "id": nn.Identity, "identity": nn.Identity}


class SSMBlock(nn.Module):
    """State-space layer: optional gate and bottleneck, FFT convolution with an SSM kernel, D skip, output GLU.

    Args:
        dim: model width D.
        causal: unidirectional kernel (bidirectional defaults to `not causal`).
        d_state: state size N (N/2 complex conjugate modes). mode: `diag` (S4D/DSS) or `dplr` (S4).
        init, disc, dt_min, dt_max: see `DiagKernel`. lr: lr of A, B, dt (own group, no weight decay).
        bidirectional: two-sided kernel (forward and backward channels).
        gate: GSS gate expansion (v = GELU(W_v x), width gate * D). bottleneck: SSM width D / bottleneck.
        activation: after the convolution. final_act: `glu` (Linear(., 2D) + GLU) or `id` (Linear(., D)).
        l_max: DSS normalisation length / initial S4 kernel length.
        learn_dt, learn_B: False freezes them (GSS).
    """

    def __init__(
        self, dim: int, *, causal: bool = False, dropout: float = 0.0, d_state: int = 64, mode: str = "diag",
        init: str = "inv", disc: str = "zoh", dt_min: float = 1e-3, dt_max: float = 1e-1, lr: float | None = 1e-3,
        bidirectional: bool | None = None, gate: int | None = None, bottleneck: int | None = None,
        activation: str = "gelu", final_act: str = "glu", l_max: int = 1024, learn_dt: bool = True,
        learn_B: bool = True, device: Any = None, dtype: Any = None,
    ) -> None:
        super().__init__()
        if bidirectional is None:
            bidirectional = not causal
        if causal and bidirectional:
            raise ConfigError("a causal S4 block cannot be bidirectional; set bidirectional=False or causal=False")
        if activation not in _ACTS or final_act not in ("glu", "id"):
            raise ConfigError(f"activation must be one of {sorted(_ACTS)}, final_act 'glu' or 'id'")
        if bottleneck is not None and (dim % bottleneck or bottleneck < 1):
            raise ConfigError(f"bottleneck={bottleneck} must divide the width {dim}")
        fk = dict(device=device, dtype=dtype)
        self.bidirectional = bidirectional
        H = dim // bottleneck if bottleneck else dim
        channels = 2 if bidirectional else 1
        self.input_gate = nn.Linear(dim, dim * gate, **fk) if gate else None
        self.input_linear = nn.Linear(dim, H, **fk) if bottleneck else None
        if mode == "diag":
            self.kernel: nn.Module = DiagKernel(
                H, d_state, init=init, disc=disc, dt_min=dt_min, dt_max=dt_max, lr=lr, learn_dt=learn_dt,
                learn_B=learn_B, channels=channels, l_max=l_max, **fk,
            )
        elif mode == "dplr":
            self.kernel = DPLRKernel(H, d_state, dt_min=dt_min, dt_max=dt_max, lr=lr, channels=channels,
                                     l_max=l_max, **fk)
        else:
            raise ConfigError(f"unknown SSM mode {mode!r}; valid: diag, dplr")
        self.D = nn.Parameter(torch.randn(H, **fk))
        self.act = _ACTS[activation]()
        self.output_gate = nn.Linear(H, dim * gate, **fk) if gate else None
        width = dim * gate if gate else H
        self.output_linear = nn.Linear(width, 2 * dim if final_act == "glu" else dim, **fk)
        self.final_act = final_act
        self.drop = nn.Dropout(dropout)
        self.fft_threads = fft_threads_from_env()  # read once; 0 = the caller's threads (see fft_threads_from_env)

    def _pre(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        v = F.gelu(self.input_gate(x)) if self.input_gate is not None else None
        u = F.gelu(self.input_linear(x)) if self.input_linear is not None else x
        return u, v

    def _post(self, y: Tensor, v: Tensor | None) -> Tensor:
        y = self.act(y)
        if self.output_gate is not None:
            y = self.output_gate(y) * v
        y = self.output_linear(self.drop(y))
        return F.glu(y, dim=-1) if self.final_act == "glu" else y

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """x: (B, L, D), mask: (B, L) bool (True = real) -> (B, L, D)."""
        if x.dim() != 3:
            raise ValueError(f"x must have shape (B, L, D), got {tuple(x.shape)}")
        u, v = self._pre(x)
        if mask is not None:
            # Zero pads before the convolution: a bidirectional kernel would otherwise carry them backwards.
            u = u * mask[..., None].to(u.dtype)
        L = x.shape[1]
        with fft_thread_scope(self.fft_threads, x.device):
            K = self.kernel(L)  # (channels, H, L)
        u = rearrange(u, "b l h -> b h l")
        # The convolution runs at least in float32 (the kernel's dtype, see `ssm_dtype`); fp16 / bf16 models get
        # their dtype back after it.
        cdt = torch.promote_types(u.dtype, K.dtype)
        y = fft_conv(u.to(cdt), K if self.bidirectional else K[0], self.D.to(cdt), bidirectional=self.bidirectional,
                     threads=self.fft_threads)
        return self._post(rearrange(y.to(u.dtype), "b h l -> b l h"), v)

    def _step_params(self) -> tuple[Tensor, Tensor, Tensor]:
        # Discretising (and, for S4, recovering C from C~) per step would dominate streaming: cache it until a
        # parameter or buffer of the kernel changes (in-place updates bump `_version`).
        key = tuple((t.data_ptr(), t._version) for t in (*self.kernel.parameters(), *self.kernel.buffers()))
        if torch.is_grad_enabled() or getattr(self, "_step_key", None) != key:
            params = self.kernel.step_params()
            if torch.is_grad_enabled():
                return params
            self._step_key, self._step_cache = key, params
        return self._step_cache

    def default_state(self, batch: int, device: Any = None) -> Tensor:
        """Zero recurrent state: (batch, H, N/2) complex (diag) or (batch, H, 2N') complex (dplr)."""
        if self.bidirectional:
            raise ValueError("a bidirectional S4 block has no recurrent (step) mode; build it with causal=True")
        dA, _, C = self.kernel.step_params()
        return torch.zeros(batch, *C.shape, dtype=C.dtype, device=device or C.device)

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One recurrent step. x_t: (B, D), state from `default_state` -> (y_t (B, D), new state)."""
        if self.bidirectional:
            raise ValueError("a bidirectional S4 block has no recurrent (step) mode; build it with causal=True")
        u, v = self._pre(x_t)  # (B, H)
        dA, dB, C = self._step_params()
        if dA.dim() == 3:  # dense DPLR transition
            state = torch.einsum("hmk,bhk->bhm", dA, state) + dB * u[..., None].to(dB.dtype)
            y = (C * state).sum(-1).real
        else:
            state = dA * state + dB * u[..., None].to(dB.dtype)
            y = 2 * (C * state).sum(-1).real
        y = y.to(x_t.dtype) + self.D * u
        return self._post(y, v), state


@register_block("s4d")
class S4D(SSMBlock):
    """S4D: diagonal SSM (default S4D-Inv init, ZOH), N/2 complex modes, GELU, GLU output."""


@register_block("s4")
class S4(SSMBlock):
    """S4: DPLR state matrix with the HiPPO-LegS init, kernel by Cauchy + Woodbury."""

    def __init__(self, dim: int, *, mode: str = "dplr", **kwargs: Any) -> None:
        super().__init__(dim, mode=mode, **kwargs)


@register_block("dss")
class DSS(SSMBlock):
    """DSS: diagonal SSM with the softmax-normalised ZOH kernel (Re(A) unconstrained), skew-HiPPO init.

    The softmax normalises over a fixed `l_max` (default 16384, the longest input accepted) rather than over
    each input's length, so that padding a batch never rescales the kernel.
    """

    def __init__(self, dim: int, *, disc: str = "dss", init: str = "legs", l_max: int = 16384, **kwargs: Any) -> None:
        super().__init__(dim, disc=disc, init=init, l_max=l_max, **kwargs)


@register_block("gss")
class GSS(SSMBlock):
    """GSS: gated (x4) and bottlenecked (/4) diagonal SSM, random init, dt = 1 and B frozen, linear output."""

    def __init__(
        self, dim: int, *, gate: int | None = 4, bottleneck: int | None = 4, init: str = "rand",
        dt_min: float = 1.0, dt_max: float = 1.0, learn_dt: bool = False, learn_B: bool = False,
        activation: str = "id", final_act: str = "id", **kwargs: Any,
    ) -> None:
        super().__init__(
            dim, gate=gate, bottleneck=bottleneck, init=init, dt_min=dt_min, dt_max=dt_max, learn_dt=learn_dt,
            learn_B=learn_B, activation=activation, final_act=final_act, **kwargs,
        )
