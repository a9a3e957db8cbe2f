"""Pipeline components that must load as another class than their checkpoint names, so the pipeline still runs.

AudioLDM 2 checkpoints (cvssp/audioldm2 and its fine-tunes) store their language model as ``GPT2Model``. Since
transformers moved generation helpers off the base models, only ``GPT2LMHeadModel`` has the
``_update_model_kwargs_for_generation`` the pipeline calls, so the stored class fails at the first prompt
(diffusers issue #12630). The same weights load into ``GPT2LMHeadModel`` (its ``transformer`` is the base model and
its head is tied to the input embeddings), which is what diffusers' own tests build.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

# pipeline class -> {component name: transformers class to load that component's folder as}
COMPONENT_CLASSES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"AudioLDM2Pipeline": MappingProxyType({"language_model": "GPT2LMHeadModel"})}
)


def load_components(pipeline_class: str, source: str, dtype: Any, local_files_only: bool) -> dict[str, Any]:
    """Return the components of ``source`` that ``pipeline_class`` needs loaded as another class, by name."""
    overrides = COMPONENT_CLASSES.get(pipeline_class, {})
    if not overrides:
        return {}
    transformers = importlib.import_module("transformers")
    return {
        name: getattr(transformers, class_name).from_pretrained(
            source, subfolder=name, dtype=dtype, local_files_only=local_files_only
        )
        for name, class_name in overrides.items()
    }
