"""Model artifacts as bytes: skops format, compressed, checked before anything is loaded.

The database stores the bytes and their SHA-256 (DESIGN.md, "Storage of models"). Loading
verifies the hash, then lists the types the file would build and refuses any outside
TRUSTED_TYPES, then loads with exactly that list. Never pickle or joblib, never trusted=True.
"""

from __future__ import annotations

import hashlib
import hmac
import zipfile

import skops.io as sio

from core.errors import TrellisError
from core.model import IntentModel, compact

# Types in an IntentModel artifact that skops does not trust by default; pinned, reviewed.
# Everything else a model holds (Pipeline, FeatureUnion, TfidfVectorizer, LinearSVC,
# LogisticRegression, CalibratedClassifierCV, numpy arrays and scalars) skops trusts itself.
MODEL_TYPES: tuple[str, ...] = ("core.model.IntentModel", "core.model.TemperatureScaledSVM")
# What models trained before TemperatureScaledSVM hold (CalibratedClassifierCV with one
# temperature-scaled SVM): still loaded, so a shop's serving model survives the upgrade.
LEGACY_TYPES: tuple[str, ...] = (
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._TemperatureScaling",
    "sklearn.model_selection._split.StratifiedKFold",
)
TRUSTED_TYPES: tuple[str, ...] = MODEL_TYPES + LEGACY_TYPES


class ArtifactRejected(TrellisError):
    """A model artifact was refused before loading; nothing in it was run."""


def dump_model(model: IntentModel) -> bytes:
    """The model as compressed skops bytes, without attributes prediction never reads."""
    compact(model.pipeline)
    data: bytes = sio.dumps(model, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    return data


def sha256_of(data: bytes) -> str:
    """Hex SHA-256 of an artifact: stored beside it, checked before it is loaded."""
    return hashlib.sha256(data).hexdigest()


def untrusted_types(data: bytes) -> list[str]:
    """The types in an artifact that are neither skops defaults nor in TRUSTED_TYPES."""
    try:
        found = sio.get_untrusted_types(data=data)
    except Exception as exc:  # a damaged zip or schema: any parser error means "refuse"
        raise ArtifactRejected("The model artifact is not a readable skops file.") from exc
    return sorted(set(found) - set(TRUSTED_TYPES))


def load_model(data: bytes, *, sha256: str) -> IntentModel:
    """Verify the artifact's SHA-256 and its types, then load it with the pinned trusted list."""
    if not hmac.compare_digest(sha256_of(data), sha256.strip().lower()):
        raise ArtifactRejected("The model artifact failed its integrity check.")
    refused = untrusted_types(data)
    if refused:
        raise ArtifactRejected(
            f"The model artifact contains types that are not trusted: {', '.join(refused)}."
        )
    model = sio.loads(data, trusted=list(TRUSTED_TYPES))
    if not isinstance(model, IntentModel):
        raise ArtifactRejected("The model artifact does not hold an intent model.")
    return model
