"""Sequence encoders: vectors (B, T, D) and mask (B, T) in, states (B, T, H) out.

All take the same keyword names (``input_dim``, ``hidden_dim``, ``num_layers``, ``dropout``) and
expose ``output_dim`` (H) and ``bidirectional``.
"""
from __future__ import annotations

import torch
from torch import nn


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``x`` (B, T, ...) within its own length; padding stays at the end.

    Applying it twice gives ``x`` back at the real positions.
    """
    T = x.shape[1]
    steps = torch.arange(T, device=x.device)[None, :]                   # (1, T)
    index = (lengths[:, None] - 1 - steps).clamp_min(0)                  # (B, T)
    index = torch.where(steps < lengths[:, None], index, steps)          # padding maps to itself
    # expand(-1, -1, ...), not expand_as(x): the ONNX exporter turns expand_as into a shape that
    # holds only for the example's length
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:]))


class LSTMEncoder(nn.Module):
    """(Bi)LSTM over padded batches; padding never reaches a real position's state.

    The forward direction runs left to right, so padding (at the end) only follows real tokens.
    The backward direction runs a second LSTM over each sequence reversed *within its length*, so
    it too starts at a real token. This is exact and, on CPU, about three times faster than
    ``pack_padded_sequence`` (measured: 66 ms against 189 ms forward+backward for 32×120 tokens).
    ``hidden_dim`` is per direction; ``output_dim`` is ``2 * hidden_dim`` when bidirectional.
    """

    def __init__(self, input_dim: int, hidden_dim: int, num_layers: int = 1, dropout: float = 0.0,
                 bidirectional: bool = True):
        super().__init__()
        self.bidirectional = bidirectional
        self.output_dim = hidden_dim * (2 if bidirectional else 1)
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList()
        for layer in range(num_layers):
            width = input_dim if layer == 0 else self.output_dim
            self.forward_layers.append(nn.LSTM(width, hidden_dim, batch_first=True))
            if bidirectional:
                self.backward_layers.append(nn.LSTM(width, hidden_dim, batch_first=True))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.long().sum(1)                                        # (B,)
        h = x                                                                # (B, T, D)
        for i, fwd in enumerate(self.forward_layers):
            if i > 0:
                h = self.dropout(h)
            out, _ = fwd(h)                                                  # (B, T, H)
            if self.bidirectional:
                back, _ = self.backward_layers[i](reverse_padded(h, lengths))
                out = torch.cat([out, reverse_padded(back, lengths)], dim=-1)  # (B, T, 2H)
            h = out
        return h * mask[..., None].to(h.dtype)


class CNNEncoder(nn.Module):
    """Convolutions of several widths (Kim 2014), ReLU, 'same' padding; outputs concatenated.

    With ``num_layers > 1`` further layers of the same widths read the previous layer's
    concatenated output (dropout in between). ``output_dim`` is ``hidden_dim * len(kernel_sizes)``.
    Padding positions are zeroed before every layer so they add nothing to real positions' windows.
    """

    def __init__(self, input_dim: int, hidden_dim: int, kernel_sizes: list[int] = (3, 4, 5),
                 num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.output_dim = hidden_dim * len(kernel_sizes)
        self.layers = nn.ModuleList(
            nn.ModuleList(nn.Conv1d(input_dim if layer == 0 else self.output_dim, hidden_dim, k,
                                    padding=k // 2) for k in kernel_sizes)
            for layer in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.bidirectional = False

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        keep = mask[..., None].to(x.dtype)                          # (B, T, 1)
        h = x
        for i, convs in enumerate(self.layers):
            if i > 0:
                h = self.dropout(h)
            inp = (h * keep).transpose(1, 2)                        # (B, D, T)
            h = torch.cat([torch.relu(conv(inp))[:, :, :T] for conv in convs], dim=1).transpose(1, 2)
        return h                                                    # (B, T, H*len(k))


class TransformerEncoder(nn.Module):
    """Input projection, learned positions, then ``num_layers`` Transformer encoder layers."""

    def __init__(self, input_dim: int, hidden_dim: int, num_layers: int = 2, num_heads: int = 4,
                 ff_dim: int = 512, dropout: float = 0.1, max_positions: int = 512):
        super().__init__()
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim {hidden_dim} is not divisible by num_heads {num_heads}")
        self.project = nn.Linear(input_dim, hidden_dim) if input_dim != hidden_dim else nn.Identity()
        self.positions = nn.Embedding(max_positions, hidden_dim)
        nn.init.normal_(self.positions.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(hidden_dim, num_heads, ff_dim, dropout, batch_first=True,
                                           norm_first=True)
        self.layers = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden_dim)
        self.max_positions = max_positions
        self.bidirectional = False
        self.output_dim = hidden_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        if T > self.max_positions:
            raise ValueError(f"sequence of length {T} exceeds max_positions {self.max_positions}; "
                             "lower data.max_length or raise model.encoder.max_positions")
        pos = torch.arange(T, device=x.device)
        h = self.project(x) + self.positions(pos)[None]
        return self.norm(self.layers(h, src_key_padding_mask=~mask))

    @torch.no_grad()
    def top_attention(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention weights of the top layer, averaged over heads: (B, T, T) (query, key)."""
        captured = {}
        last = self.layers.layers[-1]
        handle = last.register_forward_pre_hook(lambda module, args: captured.setdefault("input", args[0]))
        try:
            self.forward(x, mask)
        finally:
            handle.remove()
        h = captured["input"]
        query = last.norm1(h) if last.norm_first else h
        _, weights = last.self_attn(query, query, query, key_padding_mask=~mask, need_weights=True,
                                    average_attn_weights=True)
        return weights


def build_encoder(cfg, input_dim: int) -> nn.Module:
    """Build the encoder an :class:`~polytask.config.EncoderConfig` describes."""
    if cfg.type in ("bilstm", "lstm"):
        return LSTMEncoder(input_dim, cfg.hidden_dim, cfg.num_layers, cfg.dropout,
                           bidirectional=cfg.type == "bilstm")
    if cfg.type == "cnn":
        return CNNEncoder(input_dim, cfg.hidden_dim, cfg.kernel_sizes, cfg.num_layers, cfg.dropout)
    if cfg.type == "transformer":
        return TransformerEncoder(input_dim, cfg.hidden_dim, cfg.num_layers, cfg.num_heads,
                                  cfg.ff_dim, cfg.dropout, cfg.max_positions)
    raise ValueError(f"model.encoder.type: unknown encoder {cfg.type!r} (bilstm, lstm, cnn, transformer)")
