"""Gated, missing, unreachable and offline hub models are refused before W&B starts and before loading.

The hub is mocked: `auth_check` raises the errors huggingface_hub raises for each case.
"""

import httpx
import pytest
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError
from omegaconf import OmegaConf

from compose import compose_train
from grpo import hub_access
from grpo.hub_access import check_model_access
from grpo.validate import ConfigError

GEMMA = "google/gemma-3-1b-it"


def hub_model(repo_id=GEMMA):
    return OmegaConf.create({"source": "hub", "hub_id": repo_id})


def hub_error(kind, status):
    request = httpx.Request("GET", f"https://huggingface.co/api/models/{GEMMA}/auth-check")
    return kind(f"{status} Client Error", response=httpx.Response(status, request=request))


@pytest.fixture
def online(monkeypatch):
    monkeypatch.setattr(hub_access, "offline", lambda: False)
    monkeypatch.setattr(hub_access, "cached", lambda repo_id: False)
    monkeypatch.setattr(hub_access, "has_token", lambda: False)


def answer(monkeypatch, error):
    calls = []

    def auth_check(repo_id, **kwargs):
        calls.append(repo_id)
        if error is not None:
            raise error

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "auth_check", auth_check)
    return calls


def test_gated_model_names_the_model_the_licence_page_and_login(monkeypatch, online):
    answer(monkeypatch, hub_error(GatedRepoError, 401))
    with pytest.raises(ConfigError) as caught:
        check_model_access(hub_model())
    message = str(caught.value)
    assert GEMMA in message and f"https://huggingface.co/{GEMMA}" in message
    assert "hf auth login" in message and "no Hugging Face token" in message


def test_gated_model_with_a_token_says_the_account_lacks_access(monkeypatch, online):
    monkeypatch.setattr(hub_access, "has_token", lambda: True)
    answer(monkeypatch, hub_error(GatedRepoError, 403))
    with pytest.raises(ConfigError, match="not been granted access"):
        check_model_access(hub_model())


def test_missing_model_says_check_the_id(monkeypatch, online):
    answer(monkeypatch, hub_error(RepositoryNotFoundError, 404))
    with pytest.raises(ConfigError, match="no such model"):
        check_model_access(hub_model("google/gemma-3-1b-itt"))


def test_accessible_model_passes_with_one_request(monkeypatch, online):
    calls = answer(monkeypatch, None)
    check_model_access(hub_model())
    assert calls == [GEMMA]


@pytest.mark.parametrize("error", [httpx.ConnectError("Name or service not known"), OfflineModeIsEnabled("offline"),
                                   httpx.ReadTimeout("timed out"), hub_error(HfHubHTTPError, 503)])
def test_unreachable_hub_without_a_cached_copy_is_refused(monkeypatch, online, error):
    answer(monkeypatch, error)
    with pytest.raises(ConfigError, match="cannot reach the Hugging Face hub"):
        check_model_access(hub_model())


def test_unreachable_hub_with_a_cached_copy_goes_on(monkeypatch, online):
    monkeypatch.setattr(hub_access, "cached", lambda repo_id: True)
    answer(monkeypatch, httpx.ConnectError("Name or service not known"))
    check_model_access(hub_model())


def test_offline_without_a_cached_copy_is_refused_without_asking_the_hub(monkeypatch):
    monkeypatch.setattr(hub_access, "offline", lambda: True)
    monkeypatch.setattr(hub_access, "cached", lambda repo_id: False)
    calls = answer(monkeypatch, None)
    with pytest.raises(ConfigError) as caught:
        check_model_access(hub_model())
    assert "offline" in str(caught.value) and "local directory" in str(caught.value) and calls == []


def test_offline_with_a_cached_copy_passes(monkeypatch):
    monkeypatch.setattr(hub_access, "offline", lambda: True)
    monkeypatch.setattr(hub_access, "cached", lambda repo_id: True)
    check_model_access(hub_model())


def test_offline_cache_lookup_reads_the_real_hub_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert not hub_access.cached(GEMMA)
    snapshot = tmp_path / "models--google--gemma-3-1b-it" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--google--gemma-3-1b-it" / "refs").mkdir()
    (tmp_path / "models--google--gemma-3-1b-it" / "refs" / "main").write_text("abc")
    assert hub_access.cached(GEMMA)


def test_local_directories_and_other_sources_are_not_checked(monkeypatch, tmp_path):
    calls = answer(monkeypatch, hub_error(GatedRepoError, 401))
    check_model_access(hub_model(str(tmp_path)))
    check_model_access(OmegaConf.create({"source": "tiny", "hub_id": None}))
    check_model_access(OmegaConf.create({"source": "embedded", "hub_id": "google/gemma-3-270m"}))
    assert calls == []


def test_training_stops_before_wandb_starts(monkeypatch, online, tmp_path):
    import grpo.train

    answer(monkeypatch, hub_error(GatedRepoError, 401))
    monkeypatch.setattr(grpo.train, "start_tracking", lambda *a: pytest.fail("W&B started before the access check"))
    monkeypatch.setattr(grpo.train, "load_policy", lambda *a: pytest.fail("model loaded before the access check"))
    cfg = compose_train("+task=gsm8k", "profile=cpu", "model=gemma3-1b-it", "logger=wandb", f"output_dir={tmp_path}")
    with pytest.raises(ConfigError, match="gated"):
        grpo.train.run_training(cfg)


def test_standalone_evaluation_stops_before_loading(monkeypatch, online, tmp_path):
    import grpo.generators
    from eval.run import run_eval

    answer(monkeypatch, hub_error(GatedRepoError, 401))
    monkeypatch.setattr(grpo.generators, "build_generator", lambda *a: pytest.fail("model loaded before the access check"))
    cfg = compose_train("+task=gsm8k", "profile=cpu", "model=gemma3-1b-it", "eval.limit=2", config_name="eval")
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.output_dir = str(tmp_path)
    with pytest.raises(ConfigError, match="huggingface.co/google/gemma-3-1b-it"):
        run_eval(cfg)


def test_sft_stage_stops_before_wandb_starts(monkeypatch, online, tmp_path):
    import grpo.sft

    answer(monkeypatch, hub_error(GatedRepoError, 401))
    monkeypatch.setattr(grpo.sft, "_start_tracking", lambda *a: pytest.fail("W&B started before the access check"))
    cfg = compose_train("+task=gsm8k", "profile=cpu", "model=gemma3-1b-it", "sft=gsm8k_cot", f"output_dir={tmp_path}")
    with pytest.raises(ConfigError, match="hf auth login"):
        grpo.sft.run_sft(cfg, tmp_path / "sft")
