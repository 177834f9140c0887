"""What trains a learner: supervised LoRA (`sft`), GRPO on verifiable rewards (`grpo`, with its
sampling and rewards in `rollouts`), the Tinker service backend (`tinker`), each model
family's default learning rates (`defaults`) and the dev-split learning curve both LoRA loops
can record (`curve`).

Each writes a plain PEFT adapter directory; nothing here knows about jobs, stores or studies.
May import the shared modules only.
"""
