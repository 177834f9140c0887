"""Published tables the tests import: one copy, shared by the import and translation tests."""

# Seed 000's published main table (Qwen2.5-3B -> Llama-3.2-3B), as its report prints it.
SEED_000 = """\
| Domain | Task | base_Y | mean | global_ridge | pertensor_ridge | topk8_global_ridge | topk8_pertensor_ridge | pertensor_mlp | oracle | gap_recovered |
|---|---|---|---|---|---|---|---|---|---|---|
| math | gsm_hard | 0.057 | 0.063 | 0.053 | 0.057 | 0.050 | 0.047 | 0.067 | 0.073 | 0.600 |
| math | math_algebra_medium | 0.093 | 0.100 | 0.093 | 0.100 | 0.103 | 0.103 | 0.093 | 0.097 | 3.000 |
| code | humaneval_plus | 0.079 | 0.085 | 0.067 | 0.067 | 0.067 | 0.067 | 0.073 | 0.067 | -0.500 |
| code | mbpp_plus | 0.217 | 0.207 | 0.217 | 0.210 | 0.213 | 0.203 | 0.200 | 0.220 | 0.000 |
| science | arc_challenge | 0.706 | 0.732 | 0.706 | 0.706 | 0.706 | 0.706 | 0.726 | 0.726 | 1.333 |
| science | mmlu_college_chemistry | 0.375 | 0.375 | 0.375 | 0.375 | 0.375 | 0.375 | 0.250 | 0.375 | NA |
"""
