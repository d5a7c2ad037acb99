"""Evaluation for gemma-grpo: the same answer extraction as the rewards, on held-out data.

- `python -m eval.run +task=gsm8k model=<name> [adapter=<dir>]`: standalone evaluation (eval/run.py).
- `eval.callback.InTrainingEval`: before / every N steps / after evaluation inside training.
- `eval.card.write_run_report`: the model card and plots at the end of a run.

Every task (tasks/) is evaluated by its own reading of answers (eval/answers.py, or eval/multiple_choice.py
for choice tasks); held-out domains are any task by name, or mmlu and verdict, which register themselves
in eval/suite.py. All only ever talk to a `Generator` (eval/generate.py), so tests score them with a
stand-in instead of a model.

Layers: rewards <- tasks <- eval <- grpo (training evaluates as it goes). Nothing in this package imports
grpo except the command eval/run.py, which loads models as training does (grpo/generators.py);
tests/test_tasks.py checks it.
"""
