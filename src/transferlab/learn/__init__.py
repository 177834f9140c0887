"""What trains a learner: supervised LoRA (`sft`), GRPO on verifiable rewards (`grpo`, with its
sampling and rewards in `rollouts`), the Tinker service backend (`tinker`) and each model
family's default learning rates (`defaults`).

Each writes a plain PEFT adapter directory; nothing here knows about jobs, stores or studies.
May import the shared modules only.
"""
