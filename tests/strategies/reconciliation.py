"""Hypothesis strategies for pairs of medication lists that reconcile without ambiguity
(synthetic data only): each drug appears at most once per list, uncoded texts are distinct from
each other and from every coded display, and a coded drug may lose its code on one side (then
it is matched by text)."""

from __future__ import annotations

from hypothesis import strategies as st

from mappers.medication import STATEMENT_STATUSES, ListSource, MedicationEntry, MedicationList
from mappers.reconciliation import normalised
from tests.strategies.encounter import aware_datetimes
from tests.strategies.medication import RXNORM_CODES, doses
from tests.strategies.referral import texts

Drug = tuple[str | None, str]  # (RxNorm code or None, medication text)
_CODED_TEXTS = frozenset(normalised(c.display) for c in RXNORM_CODES)


@st.composite
def drug_pools(draw: st.DrawFn) -> list[Drug]:
    """Distinct drugs: some RxNorm-coded, some text-only."""
    coded = draw(st.lists(st.sampled_from(RXNORM_CODES), unique_by=lambda c: c.code, max_size=5))
    uncoded = draw(
        st.lists(
            texts.filter(lambda t: normalised(t) not in _CODED_TEXTS),
            unique_by=normalised,
            max_size=3,
        )
    )
    return [(c.code, c.display) for c in coded] + [(None, text) for text in uncoded]


@st.composite
def entries_of(draw: st.DrawFn, drugs: list[Drug], prefix: str) -> tuple[MedicationEntry, ...]:
    """Entries for a subset of ``drugs``, in any order, each with any dose; a coded drug is
    sometimes recorded without its code."""
    shuffled = draw(st.permutations(drugs))
    chosen = shuffled[: draw(st.integers(0, len(shuffled)))]
    entries = []
    for index, (code, text) in enumerate(chosen):
        keep_code = code is not None and draw(st.integers(0, 3)) > 0
        entries.append(
            MedicationEntry(
                identifier=f"{prefix}-{index}",
                medication=text,
                rxnorm_code=code if keep_code else None,
                status=draw(st.sampled_from(sorted(STATEMENT_STATUSES))),
                dose=draw(st.none() | doses),
                times_per_day=draw(st.none() | st.integers(1, 4)),
            )
        )
    return tuple(entries)


def _list(
    identifier: str, source: ListSource, entries: tuple[MedicationEntry, ...]
) -> st.SearchStrategy[MedicationList]:
    return aware_datetimes().map(
        lambda when: MedicationList(identifier, f"{source} list", source, when, entries)
    )


@st.composite
def reconcilable_pairs(draw: st.DrawFn) -> tuple[MedicationList, MedicationList]:
    """A residential discharge list and an IOP intake list over one pool of drugs."""
    drugs = draw(drug_pools())
    discharge = draw(entries_of(drugs, "D"))
    intake = draw(entries_of(drugs, "I"))
    return (
        draw(_list("MEDLIST-D", ListSource.RESIDENTIAL_DISCHARGE, discharge)),
        draw(_list("MEDLIST-I", ListSource.IOP_INTAKE, intake)),
    )
