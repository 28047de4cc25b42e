"""nnU-Net v2 plans files, read without torch: their encoder config, their hash, and the store check.

The network itself is built in :mod:`sidepair.models.nnunet`; this module is what configuration, data
preparation and the command line need of nnU-Net, so that they stay free of torch.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from sidepair.errors import ConfigError, UsageError

EXTRA = 'pip install -e ".[nnunet]"'


def require_nnunet() -> None:
    """Refuse with the extra to install when nnunetv2 is missing.

    Raises:
        ConfigError: nnunetv2 or dynamic-network-architectures is not installed.
    """
    try:
        import dynamic_network_architectures  # noqa: F401  (optional extra: imported only when used)
        import nnunetv2  # noqa: F401  (optional extra)
    except ImportError:
        raise ConfigError(f"--architecture nnunet needs nnU-Net v2; install the extra: {EXTRA}") from None


def check_plans_pair(plans: object | None, configuration: object | None) -> None:
    """Refuse nnU-Net plans without a configuration, or a configuration without plans.

    Raises:
        UsageError: Only one of the two is given.
    """
    if (plans is None) != (configuration is None):
        raise UsageError("--plans and --configuration go together (nnU-Net's preprocessing)")


def read_plans(path: str | Path) -> dict[str, Any]:
    """Parse an nnU-Net plans file with a one-line error.

    Raises:
        ConfigError: Missing, not JSON, or not nnU-Net plans.
    """
    path = Path(path)
    try:
        plans = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: plans file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON plans file ({exc})") from None
    if not isinstance(plans, dict) or "configurations" not in plans or "transpose_forward" not in plans:
        raise ConfigError(f"{path}: not nnU-Net v2 plans (no 'configurations' / 'transpose_forward')")
    return plans


def plans_digest(plans: dict[str, Any]) -> str:
    """A short hash of the plans' content (key order does not matter)."""
    return hashlib.sha256(json.dumps(plans, sort_keys=True).encode()).hexdigest()[:16]


def plans_configuration(plans_path: str | Path, configuration: str) -> dict[str, Any]:
    """A configuration of a plans file, with what it inherits (``inherits_from``) filled in.

    Raises:
        ConfigError: Plans unreadable, or no such configuration.
    """
    configurations = read_plans(plans_path)["configurations"]
    chain, name = [], configuration
    while name is not None:
        if name not in configurations or name in chain:
            raise ConfigError(
                f"{plans_path}: no configuration {name!r}; the plans have {', '.join(configurations)}"
            )
        chain.append(name)
        name = configurations[name].get("inherits_from")
    merged: dict[str, Any] = {}
    for name in reversed(chain):
        merged.update(configurations[name])
    return merged


def nnunet_dims(plans_path: str | Path, configuration: str) -> int:
    """2 or 3: the dimensions of a plans configuration (the length of its patch size)."""
    conf = plans_configuration(plans_path, configuration)
    if "patch_size" not in conf:
        raise ConfigError(f"{plans_path}: no patch_size for configuration {configuration!r}")
    return len(conf["patch_size"])


def nnunet_encoder_config(plans_path: str | Path, configuration: str) -> dict[str, Any]:
    """The encoder config of a plans file's configuration (what checkpoints keep to rebuild the network).

    Raises:
        ConfigError: nnU-Net missing, or a configuration the plans do not have.
    """
    require_nnunet()
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager  # optional extra

    plans = read_plans(plans_path)
    manager = PlansManager(copy.deepcopy(plans))
    if configuration not in manager.available_configurations:
        raise ConfigError(
            f"{plans_path}: no configuration {configuration!r}; the plans have "
            f"{', '.join(manager.available_configurations)}"
        )
    conf = manager.get_configuration(configuration)
    kwargs = json.loads(json.dumps(conf.network_arch_init_kwargs))  # tuples to lists, a plain copy
    return {
        "architecture": "nnunet",
        "plans_name": manager.plans_name,
        "dataset_name": manager.dataset_name,
        "configuration": configuration,
        "plans_sha": plans_digest(plans),
        "network_class_name": conf.network_arch_class_name,
        "arch_kwargs": kwargs,
        "arch_kwargs_requires_import": list(conf.network_arch_init_kwargs_req_import),
        "spatial_dims": len(conf.patch_size),
        "in_channels": 1,
        "patch_size": [int(v) for v in conf.patch_size],
    }


def check_nnunet_store(store: Any, plans: str, configuration: str) -> None:
    """Refuse a store not prepared with nnU-Net's preprocessing of these plans and configuration.

    Args:
        store: An open :class:`~sidepair.data.store.Store`.
        plans: The run's plans file.
        configuration: The run's configuration.

    Raises:
        ConfigError: Naming the store and the prepare command that makes a matching one.
    """
    prepared = store.settings.nnunet
    if (
        prepared is None
        or prepared.configuration != configuration
        or prepared.plans_sha != plans_digest(read_plans(plans))
    ):
        what = "ours" if prepared is None else f"nnU-Net's for {prepared.plans} {prepared.configuration}"
        raise ConfigError(
            f"{store.path}: prepared with {what} preprocessing, not nnU-Net's for {plans} {configuration}; "
            f"run sidepair prepare --plans {plans} --configuration {configuration}"
        )


def is_nnunet(encoder_config: dict[str, Any]) -> bool:
    """Whether an encoder config describes nnU-Net's network."""
    return encoder_config.get("architecture") == "nnunet"
