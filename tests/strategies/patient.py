"""Valid synthetic IOP clients."""

from __future__ import annotations

from datetime import date

from hypothesis import strategies as st

from mappers.patient import ADMINISTRATIVE_GENDERS, Client

# Letters, digits, a few separators: what MRNs and names look like, none of it a real person.
_name = st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll")), min_size=1, max_size=20)
_mrn = st.from_regex(r"[A-Z]{2,4}-[0-9]{4,8}", fullmatch=True)


def clients() -> st.SearchStrategy[Client]:
    """Any valid Client."""
    return st.builds(
        Client,
        mrn=_mrn,
        family_name=_name,
        given_names=st.lists(_name, max_size=3).map(tuple),
        birth_date=st.dates(min_value=date(1920, 1, 1), max_value=date(2012, 12, 31)),
        gender=st.sampled_from(sorted(ADMINISTRATIVE_GENDERS)),
    )
