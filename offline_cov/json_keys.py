"""JSON objects that name one key twice, in the files a user gives (dataset, taxonomy, calibration).

`json.loads` keeps the last of the two values without a word, so a record with two instructions or a
calibration row with two categories would be read as one of them by chance of order. These files pass
`unique_keys` as `object_pairs_hook` and refuse such an object.
"""

from __future__ import annotations

TWICE = ("the key appears twice in one object, and only its last value would be read: keep one of the two "
         "(or rename the other)")


class DuplicateKey(ValueError):
    """An object (a JSON object, a YAML mapping) that names one key twice; args: the key, and its line
    where the parser knows it."""

    @property
    def key(self):
        return self.args[0]


def key_twice(pairs: list[tuple]) -> object | None:
    """The first key that `pairs` (what json hands `object_pairs_hook`) gives a second time, or None."""
    seen = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    return None


def unique_keys(pairs: list[tuple]) -> dict:
    """json's `object_pairs_hook`: the object as a dict, or DuplicateKey when it names a key twice."""
    obj = dict(pairs)
    if len(obj) < len(pairs):
        raise DuplicateKey(key_twice(pairs))
    return obj
