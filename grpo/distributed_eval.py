"""In-training evaluation under several processes: every rank takes part, each generates its share.

Rank 0 alone cannot evaluate under DeepSpeed ZeRO-3 or FSDP: the weights are sharded, and its forward
passes would wait forever on ranks that never join them. So every rank evaluates, on the model TRL's own
rollouts use (`unwrap_model_for_generation`: ZeRO-3 parameters gathered, FSDP v1 parameters summoned),
generates every world_size-th prompt, and all ranks receive every answer, in order; rank 0 writes.
Shares are padded to equal length so every rank makes the same number of `generate` calls: under FSDP
and ZeRO-3 (transformers' `synced_gpus`) a forward pass is collective.
"""

from contextlib import contextmanager

from grpo import ranks


class ShardedGenerator:
    """A Generator (eval/generate.py) that splits the prompts across the ranks and gathers the answers."""

    def __init__(self, generator, rank: int, world_size: int):
        self.generator = generator
        self.rank = rank
        self.world_size = world_size
        self.name = getattr(generator, "name", "transformers")

    def generate(self, conversations, max_new_tokens, num_samples=1, temperature=0.0, stop=None):
        total = len(conversations)
        if total == 0:
            return []
        mine = list(range(self.rank, total, self.world_size))
        share = -(-total // self.world_size)
        padded = mine + [mine[-1] if mine else 0] * (share - len(mine))  # repeats, answered and dropped
        answers = self.generator.generate([conversations[i] for i in padded], max_new_tokens,
                                          num_samples=num_samples, temperature=temperature, stop=stop)
        results: list = [None] * total
        for indices, outputs in ranks.gather_from_all((mine, answers[: len(mine)])):
            for index, output in zip(indices, outputs):
                results[index] = output
        return results


def generator_context(trainer, engine=None):
    """InTrainingEval's `generator_context` for this trainer: plain generation with one process,
    sharded across ranks on the gathered model with several. `engine` (grpo/engine_eval.EngineEvaluation):
    generate on the colocated vLLM engine instead, synced with the policy first; transformers generate
    stays as the fallback for prompt sets the engine's context cannot hold."""

    @contextmanager
    def context(model, make_generator):
        if engine is not None:
            engine.sync()  # before any gather below: under ZeRO-3 the sync gathers parameters itself
        if not ranks.distributed():
            yield on_engine_first(engine, make_generator(model), lambda generator: generator)
            return
        from trl.distributed import DistributedBackend
        from trl.models import unwrap_model_for_generation

        accelerator = trainer.accelerator

        def sharded(generator):
            return ShardedGenerator(generator, accelerator.process_index, accelerator.num_processes)

        with (
            unwrap_model_for_generation(trainer.model_wrapped, accelerator, gather_deepspeed3_params=True) as unwrapped,
            DistributedBackend(accelerator).summon_full_params(trainer.model_wrapped, recurse=False),
        ):
            yield on_engine_first(engine, make_generator(unwrapped), sharded)

    return context


def on_engine_first(engine, fallback, share):
    """`share(generator)` of the engine's generator, with `share(fallback)` for what does not fit its
    context; `share(fallback)` alone without an engine."""
    if engine is None:
        return share(fallback)
    from grpo.engine_eval import EngineFirst

    generator = engine.generator()
    return EngineFirst(share(generator), generator.fits, share(fallback))
