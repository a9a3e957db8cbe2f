"""Database-independent decoding of audio and video: probing, scene frames, audio samples and spectrograms."""
