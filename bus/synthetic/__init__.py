"""Synthetic resident registry (住民記録) data: realistic, deterministic, valid by construction.

    from bus.synthetic import Registry, corrupt

    reg = Registry(seed=42)                      # 4 municipalities, 250 households each
    for record in reg.events(10_000):            # jumin.idou records (dicts), in order
        ...
    reg.snapshot()                               # every resident's latest record
    bad, code = corrupt(record, random.Random(1))  # a broken variant and its error code

Modules: `names`/`places` (data tables), `model` (people, households, 続柄), `factory`
(numbers with check digits, household templates), `records` (person → record, insurance
flags), `book`/`moves`/`corrections` (the changes), `registry` (the public `Registry`),
`invalid` (broken and duplicate messages), `samples` (records of every catalog kind), `shien`
(支援措置 set, extended or released without a 異動: jumin.shien).
"""

from bus.synthetic.factory import new_personal_number, new_resident_code
from bus.synthetic.invalid import CODES, copy_record, corrupt, noisy, with_duplicates
from bus.synthetic.registry import DEFAULT_MUNICIPALITIES, REASON_GROUPS, REASONS, Registry, expand_reasons

__all__ = [
    "CODES",
    "DEFAULT_MUNICIPALITIES",
    "REASONS",
    "REASON_GROUPS",
    "Registry",
    "copy_record",
    "corrupt",
    "expand_reasons",
    "new_personal_number",
    "new_resident_code",
    "noisy",
    "with_duplicates",
]
