"""The ingest policy for near copies: index them (the default), skip them, or link them to their group's best."""

from __future__ import annotations

import threading

import numpy as np

from core.blobs import BlobStore
from core.db.engine import read_session
from core.db.models import Asset
from core.settings import Settings
from index.duplicates.store import load_hashes, variant_ids
from index.ingest.claims import forget_claim
from index.ingest.prepared import Outcome, PreparedAsset

POLICIES = ("index", "skip", "link")
NEAR_COPY = "near duplicate of"


def _unsigned(code: int) -> np.uint64:
    return np.uint64(code & 0xFFFF_FFFF_FFFF_FFFF)


class _Codes:
    """Known 128-bit codes as two unsigned columns that grow by doubling (NumPy's bitwise_count needs unsigned)."""

    def __init__(self, phash: np.ndarray, dhash: np.ndarray) -> None:
        self.size = len(phash)
        self.columns = np.zeros((2, max(1024, 2 * self.size)), dtype=np.uint64)
        self.columns[0, : self.size] = phash.astype(np.int64).view(np.uint64)
        self.columns[1, : self.size] = dhash.astype(np.int64).view(np.uint64)

    def append(self, phash: int, dhash: int) -> None:
        if self.size == self.columns.shape[1]:
            self.columns = np.concatenate([self.columns, np.zeros_like(self.columns)], axis=1)
        self.columns[:, self.size] = (_unsigned(phash), _unsigned(dhash))
        self.size += 1

    def distances(self, phash: int, dhash: int) -> np.ndarray:
        known = self.columns[:, : self.size]
        found: np.ndarray = np.bitwise_count(known[0] ^ _unsigned(phash)) + np.bitwise_count(
            known[1] ^ _unsigned(dhash)
        )
        return found


class NearCopyPolicy:
    """Matches each new asset's hashes against the stored ones and those accepted earlier in this run.

    A new code is compared with every known code (vectorised, a few ms per million); grouping a whole
    library uses the multi-index search instead (index/duplicates/near.py).
    """

    def __init__(self, policy: str, settings: Settings, blobs: BlobStore) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown near-duplicate policy {policy!r}: use {', '.join(POLICIES)}")
        self.policy = policy
        self.settings = settings
        self.blobs = blobs
        self.lock = threading.Lock()
        with read_session(settings) as session:
            stored = load_hashes(session)
            self.variants = variant_ids(session)
        self.codes = _Codes(stored.phash, stored.dhash)
        self.owner_ids = [stored.asset_ids[i] for i in stored.owners.tolist()]
        self.kinds = [stored.kinds[i] for i in stored.owners.tolist()]
        self.names: dict[str, str] = {}  # this run's assets; stored ones are looked up when reported
        # Rank: largest, then oldest (stored assets by creation, then this run's in order), then most tagged.
        by_age = sorted(range(len(stored.asset_ids)), key=lambda i: stored.created[i])
        self.rank_of = {
            stored.asset_ids[i]: (-stored.pixels[i], age, -stored.tag_counts[i]) for age, i in enumerate(by_age)
        }

    def _matches(self, prepared: PreparedAsset) -> dict[str, int]:
        """Return {asset id: smallest distance} of known assets of the same kind near the prepared one."""
        limit = self.settings.duplicates.near_max_distance
        found: dict[str, int] = {}
        for _, phash, dhash in prepared.hashes:
            distance = self.codes.distances(phash, dhash)
            for row in np.flatnonzero(distance <= limit).tolist():
                if self.kinds[row] == prepared.candidate.kind:
                    asset_id = self.owner_ids[row]
                    found[asset_id] = min(found.get(asset_id, 129), int(distance[row]))
        return found

    def _name(self, asset_id: str) -> str:
        if asset_id not in self.names:
            with read_session(self.settings) as session:
                asset = session.get(Asset, asset_id)
                self.names[asset_id] = asset.name if asset is not None else asset_id
        return self.names[asset_id]

    def decide(self, prepared: PreparedAsset) -> Outcome | None:
        """Apply the policy to a prepared asset: return a ``skipped`` outcome, or None to index it (maybe linked)."""
        with self.lock:
            matches = self._matches(prepared)
            if matches:
                best = min((self.variants.get(a, a) for a in matches), key=lambda a: self.rank_of.get(a, (0, 0, 0)))
                distance = matches.get(best, min(matches.values()))
                if self.policy == "skip":
                    self._drop_thumbnails(prepared)
                    if prepared.asset_id is not None:  # the content was claimed before decoding: let it go
                        forget_claim(self.settings, prepared.asset_id)
                    name = self._name(best)
                    reason = f"{NEAR_COPY} {name} (asset {best}, {distance} bits apart)"
                    return Outcome(str(prepared.candidate.path), "skipped", best, reason)
                if self.policy == "link":
                    prepared.variant_of = (best, distance)
            self._remember(prepared)
        return None

    def _remember(self, prepared: PreparedAsset) -> None:
        """Make an accepted asset matchable by later files of the same run."""
        asset_id = prepared.asset_id
        if asset_id is None:
            return
        for _, phash, dhash in prepared.hashes:
            self.codes.append(phash, dhash)
            self.owner_ids.append(asset_id)
            self.kinds.append(prepared.candidate.kind)
        self.names[asset_id] = prepared.candidate.name
        size = (prepared.width or 0) * (prepared.height or 0)
        self.rank_of[asset_id] = (-size, len(self.rank_of), -len(prepared.candidate.tags))
        if prepared.variant_of is not None:
            self.variants[asset_id] = prepared.variant_of[0]

    def _drop_thumbnails(self, prepared: PreparedAsset) -> None:
        """Delete the thumbnails the preparer wrote for a file that is not kept."""
        keys = {prepared.thumbnail_key, *(segment.thumbnail_key for segment in prepared.segments)}
        for key in keys - {None}:
            self.blobs.delete(key)  # type: ignore[arg-type]
