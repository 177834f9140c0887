"""Training backends other than the local one.

The local backend is `transferlab.train.train_lora` (SFT) and `transferlab.rl.train_grpo`
(GRPO): transformers + PEFT on this machine, adapters saved as PEFT directories.
`tinker_backend` trains the same way on the Tinker service, for users with an API key.
Backends are imported lazily: their SDKs are optional extras.
"""
