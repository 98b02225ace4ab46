"""The data flywheel: serving logs -> curated prompts -> sampled answers -> labelled pairs ->
a versioned preference dataset that the next DPO round trains on."""
