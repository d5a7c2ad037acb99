"""The one error class for problems a user can fix: a setting, a file, a dataset name.

It lives at the bottom of the task layer so that tasks, evaluation and training raise the same class;
`grpo.train`, `grpo.sft` and `eval.run` turn it into one message and exit code 2.
"""


class ConfigError(ValueError):
    """A configuration or data problem found before a model is loaded; the message names the fix."""
