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
        plain = value is key and inner._qkv_same_embed_dim and inner.batch_first
        if not plain or need_weights or kwargs.get("key_padding_mask") is not None:
            return inner(query, key, value, need_weights=need_weights, attn_mask=attn_mask, **kwargs)
        tokens, width = query.shape[1], query.shape[2]
        weight, bias = inner.in_proj_weight, inner.in_proj_bias
        if key is query:
            qkv = nn.functional.linear(query, weight, bias)
            qkv = qkv.reshape(-1, tokens, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
        else:  # queries from some tokens only (the class token of the last block), keys and values from all
            q = nn.functional.linear(query, weight[:width], None if bias is None else bias[:width])
            q = q.reshape(-1, tokens, self.heads, self.head_dim).transpose(1, 2)
            kv = nn.functional.linear(key, weight[width:], None if bias is None else bias[width:])
            k, v = kv.reshape(-1, key.shape[1], 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
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


class ClassTokenImageTower(nn.Module):
    """pixels -> image features of a class-token ViT, with the last block computed for the class token alone.

    Only the class token's output is read, so in the last block the other tokens serve as keys and values and
    need neither queries, attention output nor MLP: the same result for about 6 % fewer FLOPs (ViT-B-32).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Return the image features."""
        visual = self.model.visual
        x = visual._embeds(pixels)
        *blocks, last = visual.transformer.resblocks
        for block in blocks:
            x = block(x)
        normed = last.ln_1(x)
        cls = x[:, :1] + last.ls_1(last.attn(normed[:, :1], normed, normed, need_weights=False)[0])
        cls = cls + last.ls_2(last.mlp(last.ln_2(cls)))
        pooled = visual.ln_post(cls[:, 0])  # a per-token norm: pooling first changes nothing
        return pooled if visual.proj is None else pooled @ visual.proj


def supports_class_token_tower(model: nn.Module) -> bool:
    """Return whether the image tower is a plain class-token-pooled ViT that ClassTokenImageTower handles."""
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

    visual: Any = getattr(model, "visual", None)
    if type(visual) is not VisionTransformer:
        return False
    blocks = list(visual.transformer.resblocks)
    return (
        visual.attn_pool is None
        and visual.pool_type == "tok"
        and not visual.output_tokens
        and visual.transformer.batch_first
        and bool(blocks)
        and all(type(b) is ResidualAttentionBlock and not hasattr(b, "ln_1_kv") for b in blocks)
    )


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
