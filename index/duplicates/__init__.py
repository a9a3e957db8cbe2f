"""Near-duplicate detection: perceptual hashes, a multi-index hash search, groups built around their best copy."""
