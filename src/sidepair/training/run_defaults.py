"""What a run's config starts from before its overrides: its preset, and what nnU-Net's plans decide.

Pretraining and segmentation resolve their configs alike: the preset named (or the store's), then the
options given. With ``architecture: nnunet`` the plans and configuration default to the ones the store
was prepared with, and the dimensions to the configuration's, so that a user never repeats what the
plans already say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from sidepair.config import Preset, PresetName, get_preset
from sidepair.data.index import NetworkView
from sidepair.data.store import Store
from sidepair.errors import ConfigError
from sidepair.nnunet_plans import nnunet_dims, plans_configuration


def preset_defaults(
    preset: PresetName | str | None, store: str | Path, part: Literal["pretrain", "segment"]
) -> tuple[Preset, dict[str, Any]]:
    """The preset (None: the one the store was prepared with) and its settings for a run of ``part``."""
    name = preset or Store(store).default_preset()
    p = get_preset(name)
    base = {
        **p.architecture.model_dump(),
        **getattr(p, part).model_dump(),
        "preset": name,
        "store": str(store),
    }
    return p, base


def nnunet_defaults(store: str | Path, given: dict[str, Any]) -> dict[str, Any]:
    """With ``architecture`` nnunet given: the plans, configuration and dims the options leave unsaid.

    Plans and configuration come from the store's nnU-Net preprocessing when neither is given; the
    dimensions from the configuration when not given.
    """
    if given.get("architecture") != "nnunet":
        return {}
    out: dict[str, Any] = {}
    if not given.get("plans") and not given.get("configuration"):
        prepared = Store(store).settings.nnunet
        if prepared is not None:
            out.update(plans=prepared.plans, configuration=prepared.configuration)
    plans = given.get("plans") or out.get("plans")
    configuration = given.get("configuration") or out.get("configuration")
    if plans and configuration and given.get("dims") is None:
        out["dims"] = nnunet_dims(plans, configuration)
    return out


# The store of a config resolved for ``experiment --plan``, which prepares nothing.
PLAN_STORE = "<plan: no store>"


def plans_patch_size(store: str | Path, settings: dict[str, Any]) -> dict[str, Any]:
    """With nnU-Net's architecture in ``settings``: the plans' patch size, in store order.

    Raises:
        ConfigError: Plans or configuration missing, or a store not prepared with nnU-Net's preprocessing.
    """
    if settings.get("architecture") != "nnunet":
        return {}
    return {"patch_size": nnunet_patch_size(store, settings.get("plans"), settings.get("configuration"))}


def nnunet_patch_size(store: str | Path, plans: str | None, configuration: str | None) -> tuple[int, ...]:
    """The plans' patch size of ``configuration``, in store order (what nnU-Net's network is fed).

    Raises:
        ConfigError: Plans or configuration missing, or a store not prepared with nnU-Net's preprocessing.
    """
    if not plans or not configuration:
        raise ConfigError("architecture nnunet needs --plans and --configuration")
    conf = plans_configuration(plans, configuration)
    if "patch_size" not in conf:
        raise ConfigError(f"{plans}: no patch_size for configuration {configuration!r}")
    patch = [int(v) for v in conf["patch_size"]]
    if str(store) == PLAN_STORE:
        return tuple(patch)  # a plan needs the patch's voxels, not its order in a store
    return network_view(Store(store)).store_size(patch)


def network_view(store: Store) -> NetworkView:
    """The store's axis order for nnU-Net's network (one per store; prepare refuses mixed orders).

    Raises:
        ConfigError: The store was not prepared with nnU-Net's preprocessing.
    """
    view = store.network_view
    if view is None:
        raise ConfigError(
            f"{store.path}: prepared without nnU-Net's preprocessing; run sidepair prepare --plans PLANS "
            "--configuration C for --architecture nnunet"
        )
    return view
