"""Training: trainers, distributed set-up, run checkpoints, logging."""
