"""prepare_params: precedence, types, validation, errors that name the key."""
import pytest

from baselines_her.config import (DEFAULT_ENV_PARAMS, DEFAULT_PARAMS, PARAM_HELP, ConfigError,
                                  parse_cli_overrides, prepare_params)


def test_defaults_are_baselines_values():
    p = prepare_params("PandaPush-v3")
    assert (p.layers, p.hidden, p.Q_lr, p.pi_lr, p.buffer_size) == (3, 256, 1e-3, 1e-3, 1_000_000)
    assert (p.polyak, p.action_l2, p.clip_obs, p.n_cycles, p.rollout_batch_size) == (
        0.95, 1.0, 200.0, 50, 2)
    assert (p.n_batches, p.batch_size, p.n_test_rollouts, p.random_eps, p.noise_eps) == (
        40, 256, 10, 0.3, 0.2)
    assert (p.replay_strategy, p.replay_k, p.norm_eps, p.norm_clip) == ("future", 4, 0.01, 5.0)
    assert p.T == 50 and p.gamma == pytest.approx(1 - 1 / 50)


def test_every_panda_task_has_env_defaults():
    for task in ("Reach", "Push", "Slide", "PickAndPlace", "Stack"):
        for variant in ("", "Joints", "Dense", "JointsDense"):
            assert f"Panda{task}{variant}-v3" in DEFAULT_ENV_PARAMS
    assert prepare_params("PandaStack-v3").T == 100


def test_precedence_env_then_algo_then_cli():
    p = prepare_params("PandaReach-v3")
    assert p.n_cycles == DEFAULT_ENV_PARAMS["PandaReach-v3"]["n_cycles"]
    td3 = prepare_params("PandaReach-v3", {"algo": "td3"})
    assert (td3.n_critics, td3.policy_delay, td3.target_noise, td3.target_noise_clip) == (
        2, 2, 0.2, 0.5)
    ablation = prepare_params("PandaReach-v3", {"algo": "td3", "policy_delay": "1",
                                                "n_cycles": "3"})
    assert (ablation.policy_delay, ablation.n_critics, ablation.n_cycles) == (1, 2, 3)


def test_cli_strings_are_typed():
    p = prepare_params("PandaReach-v3", parse_cli_overrides(
        ["--batch_size=128", "--Q_lr", "3e-4", "--clip_return=false", "--buffer_size=1e5"]))
    assert p.batch_size == 128 and isinstance(p.batch_size, int)
    assert p.Q_lr == pytest.approx(3e-4) and p.clip_return is False and p.buffer_size == 100_000


@pytest.mark.parametrize("overrides,match", [
    ({"batch_size": "abc"}, r"--batch_size='abc': expected int"),
    ({"batch_size": "2.5"}, r"expected int"),
    ({"clip_return": "maybe"}, r"expected bool"),
    ({"batch_size": "0"}, r"--batch_size must be >= 1"),
    ({"random_eps": "1.5"}, r"--random_eps must be in \[0, 1\]"),
    ({"replay_strategy": "futur"}, r"--replay_strategy must be one of future, final"),
    ({"algo": "sac"}, r"--algo must be one of ddpg, td3"),
    ({"gamma": "1.0"}, r"--gamma must be in \(0, 1\)"),
])
def test_bad_values_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        prepare_params("PandaReach-v3", overrides)


def test_unknown_key_lists_valid_keys_and_suggests():
    with pytest.raises(ConfigError) as err:
        prepare_params("PandaReach-v3", {"batchsize": 10})
    msg = str(err.value)
    assert "'batchsize'" in msg and "did you mean batch_size" in msg
    assert "Valid keys:" in msg and "replay_k" in msg and "n_cycles" in msg


def test_unknown_env_suggests_close_ids():
    with pytest.raises(ValueError, match="unknown env id 'PandaPushh-v3'.*PandaPush-v3"):
        prepare_params("PandaPushh-v3")


def test_params_frozen_and_defaults_untouched():
    before = dict(DEFAULT_PARAMS)
    p = prepare_params("PandaReach-v3", {"batch_size": 7})
    with pytest.raises(AttributeError):
        p.batch_size = 8
    with pytest.raises(TypeError):
        DEFAULT_PARAMS["batch_size"] = 8
    assert dict(DEFAULT_PARAMS) == before and p.batch_size == 7


def test_cli_parsing_errors():
    assert parse_cli_overrides(["--env=PandaPush-v3", "--n-epochs=3"]) == {
        "env_name": "PandaPush-v3", "n_epochs": "3"}
    with pytest.raises(ConfigError, match="needs a value"):
        parse_cli_overrides(["--seed"])
    with pytest.raises(ConfigError, match="expected --key=value"):
        parse_cli_overrides(["seed=3"])


def test_every_key_has_one_line_of_help():
    assert list(PARAM_HELP) == list(DEFAULT_PARAMS)
    for key, text in PARAM_HELP.items():
        assert text.strip() and "\n" not in text, key


def test_her_help_lists_every_key_with_its_meaning(capsys):
    from baselines_her.her import main
    assert main(["--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for key, text in PARAM_HELP.items():
        flag = "--env ENV" if key == "env_name" else f"--{key} "
        assert flag in shown, key
        assert " ".join(text.split()) in shown, key
    assert "--env_name" not in shown
    assert "--resume [DIR]" in shown


@pytest.mark.parametrize("key", list(DEFAULT_PARAMS))
def test_her_accepts_both_flag_forms_for_every_key(key):
    from baselines_her.her import parse_args
    flag = "--env" if key == "env_name" else f"--{key}"
    assert parse_args([f"{flag}=7"]) == ({key: "7"}, False)
    assert parse_args([flag, "7"]) == ({key: "7"}, False)


def test_her_parses_resume_as_a_flag_or_a_folder():
    from baselines_her.her import parse_args
    assert parse_args(["--resume", "--logdir=runs/a"]) == ({"logdir": "runs/a"}, True)
    assert parse_args(["--resume=runs/a", "--n_epochs=9"]) == ({"n_epochs": "9"}, "runs/a")
    assert parse_args(["--n_epochs=9", "--resume"]) == ({"n_epochs": "9"}, True)
    assert parse_args(["--q_filter", "--bc_loss=0"]) == ({"q_filter": "1", "bc_loss": "0"}, False)
