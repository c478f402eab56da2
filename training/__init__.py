"""Training: schedules, per-method steps, resumable run state."""
