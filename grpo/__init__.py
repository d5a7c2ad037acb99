"""gemma-grpo: GRPO and SFT for Gemma models, a thin layer over TRL, transformers, peft and Hydra."""

import os

# torch's CPU allocator returns every large tensor to the OS when it is freed, and the next step faults
# the memory back in 4 KiB at a time: about a third of the CPU time of a 270M SFT step went to the
# kernel here. Transparent huge pages (2 MiB) cut those faults 512-fold; docs/performance.md has the
# step times. torch reads this at its first allocation, and every entry point imports this package
# before torch; a value set in the shell wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
