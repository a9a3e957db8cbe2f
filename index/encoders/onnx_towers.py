"""The open_clip towers as plain torch modules that export to lean ONNX graphs (same maths, fewer ops)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ExportAttention(nn.Module):
    """Self-attention with an ``nn.MultiheadAttention``'s weights, written so the ONNX graph is a few MatMuls.

    The traced ``nn.MultiheadAttention`` exports as ~40 shape, gather and transpose ops per layer; this form
    exports as one QKV MatMul, a Split, two attention MatMuls and the output projection. Other calls (cross
    attention, separate key/value sizes) go to the wrapped module unchanged.
    """

    def __init__(self, inner: nn.MultiheadAttention) -> None:
        super().__init__()
        self.inner = inner
        self.heads = inner.num_heads
        self.head_dim = inner.embed_dim // inner.num_heads

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        """Return the attention output (and None for the weights), as ``nn.MultiheadAttention`` does."""
        inner = self.inner
        plain = key is query and value is query and inner._qkv_same_embed_dim and inner.batch_first
        if not plain or need_weights or kwargs.get("key_padding_mask") is not None:
            return inner(query, key, value, need_weights=need_weights, attn_mask=attn_mask, **kwargs)
        tokens, width = query.shape[1], query.shape[2]
        qkv = nn.functional.linear(query, inner.in_proj_weight, inner.in_proj_bias)
        qkv = qkv.reshape(-1, tokens, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        scores = torch.matmul(q * self.head_dim**-0.5, k.transpose(-1, -2))
        if attn_mask is not None:
            scores = scores + attn_mask
        out = torch.matmul(scores.softmax(dim=-1), v).transpose(1, 2).reshape(-1, tokens, width)
        return inner.out_proj(out), None


def use_export_attention(model: nn.Module) -> None:
    """Replace every ``nn.MultiheadAttention`` inside ``model`` with an ``ExportAttention`` around it."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.MultiheadAttention):
                setattr(module, name, ExportAttention(child))


class ImageTower(nn.Module):
    """pixels (N, 3, H, W) -> unnormalised image features."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Return the image features."""
        return self.model.encode_image(pixels)


class TextTower(nn.Module):
    """tokens (N, 77) -> unnormalised text features: open_clip's own ``encode_text``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return the text features."""
        return self.model.encode_text(tokens)


class ShortTextTower(nn.Module):
    """tokens (N, L <= 77) -> text features of a causal, end-token-pooled CLIP text tower.

    With a causal mask a token never sees the ones after it, and the features are read at the end token, so
    the padding after the batch's last end token can be cut off: the result is the same, and a five-word
    query costs about a tenth of a full 77-token pass.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return the text features."""
        from open_clip.transformer import text_global_pool

        m = self.model
        length = tokens.shape[1]
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(tokens).to(cast) + m.positional_embedding[:length].to(cast)
        x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask[:length, :length]))
        x = text_global_pool(x, tokens, m.text_pool_type)
        projection = m.text_projection
        if projection is None:
            return x
        return projection(x) if isinstance(projection, nn.Linear) else x @ projection


def supports_short_text(model: nn.Module) -> bool:
    """Return whether the model's text tower is the causal, argmax-pooled kind ShortTextTower handles."""
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")
    mask = getattr(model, "attn_mask", None)
    return (
        all(hasattr(model, name) for name in needed)
        and getattr(model, "text_pool_type", None) == "argmax"
        and isinstance(mask, torch.Tensor)
        and mask.dim() == 2
    )
