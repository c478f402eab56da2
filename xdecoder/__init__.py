"""X-Decoder, the release's semantic judge (reserved: the native implementation lands here)."""
