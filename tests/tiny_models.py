"""A tiny random Llama with a real (character-level) tokenizer and chat template.

A module of its own (not conftest) so test files can import it by a unique name: each
test folder has its own conftest.py, and `from conftest import ...` would pick one at random.
"""

from __future__ import annotations

import string

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
    chars = sorted(set(string.printable))
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="?"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<|end|>",
                                        additional_special_tokens=specials[2:])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


class TinyLoaded:
    """Stands in for models.LoadedModel: a real (tiny, random) model and tokenizer."""

    def __init__(self, seed: int = 0):
        from transferlab.models import tiny_llama

        self.tokenizer = make_tokenizer()
        self.model = tiny_llama(vocab_size=len(self.tokenizer), seed=seed)
        self.device = "cpu"
        self.name = "tiny-llama"
