"""A panda-gym episode steps the same after other episodes as in a fresh env (contact_cache.py)."""
import numpy as np

from baselines_her.contact_cache import FreshContacts, link_pairs
from baselines_her.envs import make_env


def observations(env, episode):
    """The observations of one episode of random actions (reset seed and actions fixed by
    ``episode``)."""
    obs, _ = env.reset(seed=1000 + episode)
    rng = np.random.default_rng(episode)
    out = [obs["observation"]]
    for _ in range(env.spec.max_episode_steps):
        obs, *_ = env.step(rng.uniform(-1.0, 1.0, env.action_space.shape))
        out.append(obs["observation"])
    return np.array(out)


def after_another_and_fresh(wrapped: bool):
    """Episode 1 after episode 0 in one env, and episode 1 in a fresh env."""
    envs = [make_env("PandaPush-v3") for _ in range(2)]
    if not wrapped:
        envs = [env.env for env in envs]
    observations(envs[0], 0)
    runs = observations(envs[0], 1), observations(envs[1], 1)
    for env in envs:
        env.close()
    return runs


def test_an_episode_steps_as_in_a_fresh_env():
    after, fresh = after_another_and_fresh(wrapped=True)
    np.testing.assert_array_equal(after, fresh)


def test_without_the_wrapper_the_cache_of_the_last_episode_changes_the_next():
    # Why the wrapper exists: PyBullet warm-starts the resting cube's contact with the previous
    # episode's impulses, so the episode differs from its first step.
    after, fresh = after_another_and_fresh(wrapped=False)
    assert not np.array_equal(after[1], fresh[1])
    np.testing.assert_array_equal(after[0], fresh[0])  # same reset state


def test_panda_envs_are_wrapped_and_pairs_of_static_links_left_alone():
    env = make_env("PandaStack-v3")
    assert isinstance(env, FreshContacts)
    client = env.unwrapped.sim.physics_client
    pairs = link_pairs(client)
    mass = {(body, link): client.getDynamicsInfo(body, link)[0]
            for a, b, la, lb in pairs for body, link in ((a, la), (b, lb))}
    assert pairs and all(mass[a, la] > 0 or mass[b, lb] > 0 for a, b, la, lb in pairs)
    assert any(m == 0 for m in mass.values())  # the table, the plane, the robot's fixed base
    env.close()
