"""Build tiny random-weight audio and video pipelines from configs, offline and identical in every process.

Each builder makes one diffusers pipeline class with 0.1 to 2 M parameters in all (the CLIP pipeline's share is
mostly its 49,408-token embedding), so a text-to-audio or text-to-video job runs end to end on a CPU in about a second
(the output is noise). Tokenizers come from what is
installed: CLIP pipelines use open_clip's bundled BPE (as generators/tiny.py does); T5 pipelines, whose SentencePiece
model no package ships, get a small Unigram vocabulary written here (transformers 5's T5Tokenizer is a
``tokenizers`` Unigram model, so no ``sentencepiece`` package is needed).
"""

from __future__ import annotations

import importlib
import json
import math
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

from generators.registry import TINY_MODEL
from generators.tiny import build_atomically, build_tiny_pipeline, clip_tokenizer, tiny_clip_text_encoder

# Written last by a build: the files of the saved folder and their sizes, so completeness needs no per-class list.
MANIFEST = "sensorium-tiny.json"
_WEIGHT_SEED = 0
T5_MAX_TOKENS = 32
# CogVideoX reads exactly this many prompt tokens (its transformer's max_text_seq_length).
COGVIDEOX_MAX_TOKENS = 16
# The words a tiny T5 vocabulary knows whole; anything else is spelled from single characters.
_T5_CORPUS = (
    "the sound of thunder rolling over hills",
    "a short jazz trumpet jingle",
    "a dog chasing a frisbee in the park",
    "rain falling on a tin roof at night",
    "a cat walking on the beach at sunset",
    "birds singing in the morning forest",
    "a video of waves and wind with no music",
)
_T5_CHARACTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()&/"


def is_complete(folder: Path) -> bool:
    """Return True when ``folder`` holds every file its build manifest lists, at the recorded sizes."""
    try:
        files = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(files, dict):
        return False
    for name, size in files.items():
        try:
            if (folder / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def tiny_folder_name(pipeline_class: str) -> str:
    """Return the models/ sub-folder of the tiny pipeline for a class (Stable Diffusion classes share one)."""
    return f"{TINY_MODEL}-{pipeline_class}" if pipeline_class in TINY_MEDIA_BUILDERS else TINY_MODEL


def build_tiny(pipeline_class: str, dest: Path) -> Path:
    """Return ``dest`` holding the tiny pipeline for ``pipeline_class``, building it first when incomplete.

    Classes without a media builder get the tiny Stable Diffusion pipeline (text-to-image and image-to-image).
    """
    make = TINY_MEDIA_BUILDERS.get(pipeline_class)
    if make is None:
        return build_tiny_pipeline(dest)
    return build_atomically(dest, partial(_save, make), is_complete)


def _save(make: Callable[[], Any], folder: Path) -> None:
    import torch

    # A private RNG stream: the weights never depend on what the caller drew before, and its stream is left alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_WEIGHT_SEED)
        pipe = make()
    pipe.save_pretrained(folder)
    files = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    (folder / MANIFEST).write_text(json.dumps(files, indent=1), encoding="utf-8")


def _diffusers() -> Any:
    # Typed as Any: mypy sees diffusers' config-registering constructors as untyped and its lazy exports as dummies.
    return importlib.import_module("diffusers")


def t5_tokenizer(max_length: int = T5_MAX_TOKENS) -> Any:
    """Return a small T5Tokenizer (Unigram) over the corpus words and single characters, built without downloads.

    Ids 0, 1, 2 are <pad>, </s>, <unk> as in T5. Scores are log frequencies, so known words win over spelling.
    """
    from transformers import T5Tokenizer

    counts: Counter[str] = Counter()
    for sentence in _T5_CORPUS:
        counts.update("\u2581" + word for word in sentence.split())
    for char in _T5_CHARACTERS:
        counts.update((char, "\u2581" + char))
    counts["\u2581"] += 1
    total = sum(counts.values())
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(piece, math.log(count / total)) for piece, count in sorted(counts.items())]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=max_length)


def _t5_encoder(tokenizer: Any) -> Any:
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return T5EncoderModel(config)


def byte_level_tokenizer(max_length: int = T5_MAX_TOKENS) -> Any:
    """Return a RobertaTokenizer over the 256 byte symbols with no merges: every UTF-8 byte is one token."""
    from open_clip.tokenizer import bytes_to_unicode
    from transformers import RobertaTokenizer

    # RoBERTa's special-token order, so <s>, <pad>, </s>, <unk> have their usual ids 0-3.
    tokens = ["<s>", "<pad>", "</s>", "<unk>", *bytes_to_unicode().values(), "<mask>"]
    return RobertaTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[], model_max_length=max_length)


def _audioldm2() -> Any:
    """AudioLDM2Pipeline: CLAP and T5 text encoders, GPT-2 (saved as GPT2Model, like the real checkpoints), HiFi-GAN."""
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import (
        AudioLDM2ProjectionModel,
        AudioLDM2UNet2DConditionModel,
    )
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapTextConfig,
        GPT2Config,
        GPT2Model,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
    )

    diffusers = _diffusers()
    tokenizer = byte_level_tokenizer()
    clap_text = ClapTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=16,
        intermediate_size=37,
        num_attention_heads=2,
        num_hidden_layers=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=tokenizer.model_max_length + 8,  # RoBERTa positions start after the padding id
        projection_dim=16,
    )
    # CLAP's audio tower only scores candidate waveforms (num_waveforms_per_prompt > 1); it must exist, tiny.
    clap_audio = ClapAudioConfig(
        spec_size=64,
        window_size=4,
        num_mel_bins=64,
        depths=[1, 1],
        num_attention_heads=[2, 2],
        num_hidden_layers=2,
        patch_embeds_hidden_size=16,
        hidden_size=32,  # patch_embeds_hidden_size doubled once per stage after the first
        mlp_ratio=1.0,
        projection_dim=16,
        patch_size=2,
        patch_stride=2,
        patch_embed_input_channels=4,
    )
    text_encoder = ClapModel(
        ClapConfig(text_config=clap_text.to_dict(), audio_config=clap_audio.to_dict(), projection_dim=16)
    )
    tokenizer_2 = t5_tokenizer()
    text_encoder_2 = _t5_encoder(tokenizer_2)
    # The language model never sees token ids (it continues embeddings), so its vocabulary only needs to exist.
    # GPT-2's special ids default to 50256; inside a 64-token vocabulary they must be valid ones.
    language_model = GPT2Model(
        GPT2Config(n_embd=16, n_head=2, n_layer=2, vocab_size=64, n_positions=99, bos_token_id=0, eos_token_id=0)
    )
    language_model.config.max_new_tokens = 8  # the pipeline reads its default from here
    projection = AudioLDM2ProjectionModel(
        text_encoder_dim=16, text_encoder_1_dim=text_encoder_2.config.d_model, langauge_model_dim=16
    )
    # The real model's hop, 160 samples per mel frame (100 frames a second at 16 kHz), in three stages: with the
    # real five, tiny random weights shrink the signal below one 16-bit step. The wider init keeps it audible.
    vocoder = SpeechT5HifiGan(
        SpeechT5HifiGanConfig(
            model_in_dim=16,
            sampling_rate=16_000,
            upsample_initial_channel=32,
            upsample_rates=[8, 5, 4],
            upsample_kernel_sizes=[16, 10, 8],
            resblock_kernel_sizes=[3],
            resblock_dilation_sizes=[[1, 3]],
            normalize_before=False,
            initializer_range=0.1,
        )
    )
    unet = AudioLDM2UNet2DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=([None, 16, 32], [None, 16, 32]),
        norm_num_groups=8,
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=1,
        out_channels=1,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=4,
    )
    scheduler = diffusers.DDIMScheduler(
        beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False
    )
    return diffusers.AudioLDM2Pipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        projection_model=projection,
        language_model=language_model,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        feature_extractor=ClapFeatureExtractor(feature_size=64, hop_length=7900),
        unet=unet,
        scheduler=scheduler,
        vocoder=vocoder,
    )


def _stable_audio() -> Any:
    """StableAudioPipeline: T5 text encoder, DiT over a 128-step latent, Oobleck VAE at 16 kHz mono (2.05 s max)."""
    from diffusers.pipelines.stable_audio.modeling_stable_audio import StableAudioProjectionModel

    diffusers = _diffusers()
    tokenizer = t5_tokenizer()
    text_encoder = _t5_encoder(tokenizer)
    conditioning = 32
    projection = StableAudioProjectionModel(
        text_encoder_dim=text_encoder.config.d_model, conditioning_dim=conditioning, min_value=0, max_value=4
    )
    # hop length 4 * 8 * 8 = 256 samples per latent step: 128 steps hold 2.048 s at 16 kHz.
    vae = diffusers.AutoencoderOobleck(
        encoder_hidden_size=8,
        downsampling_ratios=[4, 8, 8],
        channel_multiples=[1, 2, 2],
        decoder_channels=8,
        decoder_input_channels=4,
        audio_channels=1,
        sampling_rate=16_000,
    )
    transformer = diffusers.StableAudioDiTModel(
        sample_size=128,
        in_channels=4,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        num_key_value_attention_heads=2,
        out_channels=4,
        cross_attention_dim=32,
        time_proj_dim=16,
        global_states_input_dim=2 * conditioning,  # start and end seconds, concatenated
        cross_attention_input_dim=conditioning,
    )
    # The scheduler class the pipeline declares; Stable Audio Open's own (CosineDPMSolver...) needs torchsde.
    scheduler = diffusers.EDMDPMSolverMultistepScheduler(
        solver_order=2, prediction_type="v_prediction", sigma_data=1.0, sigma_schedule="exponential"
    )
    return diffusers.StableAudioPipeline(
        vae=vae,
        text_encoder=text_encoder,
        projection_model=projection,
        tokenizer=tokenizer,
        transformer=transformer,
        scheduler=scheduler,
    )


def _text_to_video_sd() -> Any:
    """TextToVideoSDPipeline (text-to-video-synth): UNet3D, 4-level VAE, CLIP text encoder with the real vocabulary."""
    diffusers = _diffusers()
    with tempfile.TemporaryDirectory() as bpe_dir:
        tokenizer = clip_tokenizer(Path(bpe_dir))
    unet = diffusers.UNet3DConditionModel(
        block_out_channels=(16, 32),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=4,
    )
    # Four levels downscale 8x, as real video VAEs do: attention over 64x64 frames then sees 8x8 latents, not 32x32.
    vae = diffusers.AutoencoderKL(
        block_out_channels=[8, 8, 16, 16],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        norm_num_groups=4,
    )
    text_encoder = tiny_clip_text_encoder(tokenizer, layers=2, max_positions=tokenizer.model_max_length)
    scheduler = diffusers.DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return diffusers.TextToVideoSDPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler
    )


def _cogvideox(image_to_video: bool) -> Any:
    """CogVideoX (text- or image-to-video): T5, a 1-layer 3D transformer at 96x64 and 9 frames, a 4-level 3D VAE."""
    diffusers = _diffusers()
    tokenizer = t5_tokenizer(COGVIDEOX_MAX_TOKENS)
    text_encoder = _t5_encoder(tokenizer)
    transformer = diffusers.CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,  # rotary embeddings split it 4 + 6 + 6 over time, height and width
        # Image-to-video concatenates the image latents to the noise latents on the channel axis.
        in_channels=8 if image_to_video else 4,
        out_channels=4,
        time_embed_dim=4,
        text_embed_dim=text_encoder.config.d_model,
        num_layers=1,
        sample_width=12,
        sample_height=8,
        sample_frames=9,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=COGVIDEOX_MAX_TOKENS,
        # As CogVideoX-5b-I2V: learned positions fix the size to sample_width x sample_height.
        use_rotary_positional_embeddings=image_to_video,
        use_learned_positional_embeddings=image_to_video,
    )
    vae = diffusers.AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )
    # CogVideoX-2b's scheduler settings.
    scheduler = diffusers.CogVideoXDDIMScheduler(
        beta_schedule="scaled_linear",
        clip_sample=False,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
        snr_shift_scale=3.0,
    )
    cls = diffusers.CogVideoXImageToVideoPipeline if image_to_video else diffusers.CogVideoXPipeline
    return cls(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler)


# Pipeline class -> builder of its tiny random instance. Adding a class means adding one builder here.
TINY_MEDIA_BUILDERS: Mapping[str, Callable[[], Any]] = MappingProxyType(
    {
        "StableAudioPipeline": _stable_audio,
        "AudioLDM2Pipeline": _audioldm2,
        "TextToVideoSDPipeline": _text_to_video_sd,
        "CogVideoXPipeline": partial(_cogvideox, False),
        "CogVideoXImageToVideoPipeline": partial(_cogvideox, True),
    }
)
