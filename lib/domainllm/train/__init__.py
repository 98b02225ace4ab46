"""Training: recipes (CPT, SFT, DPO), DeepSpeed configuration and the memory planner."""
