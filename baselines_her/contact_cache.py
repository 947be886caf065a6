"""Every panda-gym episode starts with PyBullet's contact cache empty, as in a fresh env.

PyBullet keeps a contact manifold (points and the impulses that warm-start the solver) for each
pair of bodies whose bounding boxes overlap, and panda-gym's reset moves bodies without dropping
them. An episode then steps differently after other episodes than in a fresh env: the contact
of the object resting on the table is warm-started from the previous episode's. Measured with
random actions and the same reset seeds (docs/architecture.md): 38 of 40 PandaPush-v3 episodes
differed from a fresh env's from their first step on. A resumed run's envs are fresh, so without
this its episodes would differ from the uninterrupted run's.

:class:`FreshContacts` empties the cache after every reset: it switches collision off for every
pair of links of different bodies, lets PyBullet run collision detection (which drops the pairs'
manifolds), and switches the pairs back on. Pairs of two static links (mass 0: the table, the
plane, the fixed robot base) are left alone, since switching a pair on overrides PyBullet's
rule that two static objects never collide. Cost: one collision detection and two calls per
pair at each reset, under 1% of an episode's env time (docs/architecture.md).
"""
from __future__ import annotations

import gymnasium as gym


def link_pairs(client) -> list[tuple[int, int, int, int]]:
    """``(body_a, body_b, link_a, link_b)`` for every pair of links of two different bodies of
    which at least one has mass (link -1 is a body's base)."""
    links = [(body, link) for body in (client.getBodyUniqueId(i)
                                       for i in range(client.getNumBodies()))
             for link in range(-1, client.getNumJoints(body))]
    static = {(body, link) for body, link in links if client.getDynamicsInfo(body, link)[0] == 0}
    return [(a, b, la, lb) for i, (a, la) in enumerate(links) for b, lb in links[i + 1:]
            if a != b and not ((a, la) in static and (b, lb) in static)]


def clear_contacts(client, pairs) -> None:
    """Drop PyBullet's cached contacts for ``pairs`` (from :func:`link_pairs`)."""
    for a, b, la, lb in pairs:
        client.setCollisionFilterPair(a, b, la, lb, 0)
    client.performCollisionDetection()
    for a, b, la, lb in pairs:
        client.setCollisionFilterPair(a, b, la, lb, 1)


class FreshContacts(gym.Wrapper):
    """A panda-gym env whose every reset ends with the contact cache empty."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._client = env.unwrapped.sim.physics_client
        self._pairs = link_pairs(self._client)

    def reset(self, **kwargs):
        result = self.env.reset(**kwargs)
        clear_contacts(self._client, self._pairs)
        return result
