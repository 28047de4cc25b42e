import pytest
import yaml

from sidepair.errors import ConfigError
from sidepair.experiment.config import bundled_configs, load_experiment_config
from sidepair.experiment.plan import PretrainSpec, plan_runs


def write(tmp_path, data):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


BASE = {
    "name": "t",
    "preset": "demo",
    "data": {"phantom": {"cases": 10}},
    "pretrain": [{"name": "masked", "sections": "masked"}, {"name": "half", "sections": "half"}],
    "segmentation": {"inits": ["scratch", "finetune", "frozen"], "fractions": [1.0, 0.1], "seeds": [0, 1]},
}


def test_bundled_configs_load_and_hold_the_papers_settings():
    assert set(bundled_configs()) == {"controls", "demo", "kits19-2d", "kits19-paper-3d", "real-2d"}
    paper = load_experiment_config("kits19-paper-3d")
    assert paper.preset == "kits19-paper"
    assert paper.prepare.spacing_zyx == (3.22, 1.62, 1.62) and paper.prepare.window == (-79, 304)
    # the paper's variant reads every training mask; the label-matched one is listed beside it
    assert [(v.sections, v.loss, v.mask_cases) for v in paper.pretrain] == [
        ("masked", "contrastive", "all"),
        ("masked", "contrastive", "matched"),
    ]
    assert paper.segmentation.loss == "paper" and paper.data.format == "kits"
    demo = load_experiment_config("demo")
    assert demo.data.phantom is not None
    assert len(demo.segmentation.fractions) >= 3 and len(demo.segmentation.seeds) >= 2
    assert demo.segmentation.steps == 960  # 240 left 21 labelled cases below 5 (docs/measurements.md)
    assert {"scratch", "finetune"} <= set(demo.segmentation.inits)
    assert [(v.sections, v.mask_cases) for v in demo.pretrain] == [("masked", "matched")]
    real = load_experiment_config("real-2d")
    assert real.segmentation.steps == 1500 and not real.segmentation.stop_on_plateau
    # Every arm of the paper's grid is trained by the strong recipe, not the paper's Adam and plateau.
    grid = paper.segmentation
    assert (grid.optimizer, grid.schedule, grid.steps, grid.validation) == ("sgd", "poly", 1000, "patches")
    assert grid.augment and grid.mirror and grid.labels == "kidney"
    assert {v.sections for v in load_experiment_config("kits19-2d").pretrain} == {"masked", "bbox", "half"}
    controls = load_experiment_config("controls")
    arms = {(v.task, v.sections, v.mask_cases, v.side_labels, v.mirror) for v in controls.pretrain}
    assert arms == {
        ("side-pair", "masked", "matched", None, None),
        ("side-pair", "half", "all", None, None),
        ("side-pair", "half", "all", None, True),
        ("side-pair", "masked", "matched", "random", None),
        ("restoration", "half", "all", None, None),
        ("contrastive-views", "half", "all", None, None),
    }
    assert controls.primary == "masked" and controls.data.phantom is not None
    assert controls.segmentation.seeds == [0, 1, 2] and len(controls.segmentation.fractions) == 3


def test_data_option_replaces_the_configs_paths(tmp_path):
    config = load_experiment_config("kits19-paper-3d", [str(tmp_path / "kits19")])
    assert config.data.paths == [str(tmp_path / "kits19")]
    demo = load_experiment_config("demo", [str(tmp_path / "mine")])
    assert demo.data.phantom is None and demo.data.paths == [str(tmp_path / "mine")]


def test_plan_covers_every_init_fraction_and_seed(tmp_path):
    runs = plan_runs(load_experiment_config(write(tmp_path, BASE)))
    # scratch + (finetune, frozen) x 2 variants = 5 inits, x 2 fractions x 2 seeds
    assert len(runs) == 20 and len({r.name for r in runs}) == 20
    assert {r.init for r in runs} == {
        "scratch",
        "ssl-masked",
        "ssl-half",
        "ssl-masked-frozen",
        "ssl-half-frozen",
    }
    assert [r.fraction for r in runs[:10]] == [0.1] * 10  # fractions sorted, smallest first
    assert "ssl-masked-frozen_f0.1_s1" in {r.name for r in runs}


@pytest.mark.parametrize(
    "change,message",
    [
        ({"data": {"paths": ["x"], "phantom": {"cases": 10}}}, "either data.paths"),
        ({"data": {}}, "either data.paths"),
        ({"segmentation": {"inits": ["finetune"]}}, "must hold scratch"),
        ({"segmentation": {"fractions": [0.0, 1.0]}}, "fractions must be in (0, 1]"),
        ({"segmentation": {"transfer_from": ["bbox"]}}, "transfer_from names ['bbox']"),
        ({"pretrain": [], "segmentation": {"inits": ["scratch", "finetune"]}}, "need at least one pretrain"),
        ({"preset": "nope"}, "unknown preset 'nope'"),
        ({"segmentation": {"seeds": [0, 0]}}, "without repeats"),
        ({"jobs": 0}, "jobs"),
        ({"data": {"paths": ["x"], "pixel_spacing": 0}}, "data.pixel_spacing"),
        ({"performance": {"precision": "fp16"}}, "performance.precision"),
        ({"extra": 1}, "extra"),
        ({"architecture": "nnunet"}, "architecture nnunet needs plans and configuration"),
        ({"plans": "nnUNetPlans.json"}, "plans and configuration are for architecture nnunet"),
    ],
)
def test_invalid_configs_name_the_field(tmp_path, change, message):
    with pytest.raises(ConfigError) as err:
        load_experiment_config(write(tmp_path, {**BASE, **change}))
    assert message in str(err.value)
    assert "exp.yaml" in str(err.value)


def test_missing_config_lists_the_bundled_ones(tmp_path):
    with pytest.raises(ConfigError, match="file not found .*bundled configs: controls, demo, kits19-2d"):
        load_experiment_config(tmp_path / "nope.yaml")


def test_augment_and_speed_options_reach_the_runs(tmp_path):
    from sidepair.experiment.runner import _pretrain_config, _train_config

    data = {
        **BASE,
        "pretrain": [{"name": "masked", "sections": "masked", "augment": True}],
        "segmentation": {**BASE["segmentation"], "augment": True},
        "performance": {"precision": "fp32", "compile": True},
    }
    config = load_experiment_config(write(tmp_path, data))
    run = plan_runs(config)[0]
    assert _train_config(config, tmp_path / "store", tmp_path, run)["augment"] is True
    assert _pretrain_config(config, tmp_path / "store", PretrainSpec("masked", "masked"))["augment"] is True
    assert config.performance.compile and config.performance.precision == "fp32"
    # Left out, the preset's hold: demo's segmentation recipe mirrors without other augmentation, and its
    # pretraining does not augment.
    plain = load_experiment_config(write(tmp_path, BASE))
    resolved = _train_config(plain, tmp_path / "store", tmp_path, plan_runs(plain)[0])
    assert resolved["augment"] is False and resolved["mirror"] is True and resolved["val_patches"] == 64
    assert _pretrain_config(plain, tmp_path / "store", PretrainSpec("masked", "masked"))["augment"] is False
    assert plain.performance.precision == "auto" and not plain.performance.compile
    assert load_experiment_config("kits19-paper-3d").performance.compile is True


@pytest.mark.integration
def test_architecture_nnunet_reaches_every_run(nnunet_planned, nnunet_store, tmp_path):
    from sidepair.experiment.runner import _pretrain_config, _train_config

    beside = tmp_path / "nnUNetPlans.json"  # a relative plans path is looked up beside the config
    beside.write_text(nnunet_planned["plans"].read_text(encoding="utf-8"), encoding="utf-8")
    data = {**BASE, "architecture": "nnunet", "plans": "nnUNetPlans.json", "configuration": "2d"}
    config = load_experiment_config(write(tmp_path, data))
    assert config.plans == str(beside.resolve())
    run = next(r for r in plan_runs(config) if r.pretrain is None)
    train = _train_config(config, nnunet_store, tmp_path, run)
    assert (train["architecture"], train["plans"], train["configuration"]) == ("nnunet", str(beside), "2d")
    assert train["patch_size"] == [64, 64]  # the plans' 2d patch, not the preset's
    pretrain = _pretrain_config(config, nnunet_store, PretrainSpec("half", "half"))
    assert (pretrain["architecture"], pretrain["configuration"]) == ("nnunet", "2d")


def test_a_reference_arm_adds_one_nnunet_run_per_fraction_and_seed(tmp_path):
    from sidepair.experiment.plan import REFERENCE

    (tmp_path / "nnUNetPlans.json").write_text("{}", encoding="utf-8")
    config = load_experiment_config(
        write(tmp_path, {**BASE, "reference": {"plans": "nnUNetPlans.json", "configuration": "2d"}})
    )
    assert config.reference.plans == str((tmp_path / "nnUNetPlans.json").resolve())  # beside the config
    runs = plan_runs(config)
    reference = [r for r in runs if r.init == REFERENCE]
    assert [(r.fraction, r.seed) for r in reference] == [(0.1, 0), (0.1, 1), (1.0, 0), (1.0, 1)]
    assert all(r.mode == "scratch" and r.variant is None and r.pretrain is None for r in reference)
    assert reference[0].name == f"{REFERENCE}_f0.1_s0"
    # Each fraction and seed ends with its reference run: a partial grid stays balanced.
    assert runs[len(runs) // 4 - 1].init == REFERENCE
    without = plan_runs(load_experiment_config(write(tmp_path, BASE)))
    assert len(runs) == len(without) + 4


def test_the_reference_arm_is_a_holm_family_of_its_own():
    from sidepair.experiment.plan import REFERENCE
    from sidepair.experiment.report import versus_scratch

    cases = [
        {"init": init, "fraction": 1.0, "group": f"p{k}", "kidney_dice": 0.8 + gain + 0.01 * k,
         "kidney_hd95": 10.0 - k, "kidney_nsd": 0.7}
        for init, gain in (("scratch", 0.0), ("ssl-masked", 0.02), ("ssl-half", 0.01), (REFERENCE, 0.05))
        for k in range(8)
    ]  # fmt: skip
    compared = versus_scratch(cases, ["scratch", "ssl-masked", "ssl-half", REFERENCE], [1.0])
    ssl = [c for c in compared if c["init"] != REFERENCE]
    ref = [c for c in compared if c["init"] == REFERENCE]
    assert len(ssl) == 6 and len(ref) == 3 and all(c["reference"] == "scratch" for c in compared)
    # Two SSL inits x 3 metrics in one family; the reference's 3 metrics in their own.
    assert {c["family"] for c in ssl} == {6} and {c["family"] for c in ref} == {3}
    dice = next(c for c in ref if c["metric"] == "kidney_dice")
    # Holm over its own 3: the smallest p times 3, not times 9.
    assert dice["mean_diff"] == pytest.approx(0.05) and dice["p_holm"] == pytest.approx(3 * dice["p"])
    without = versus_scratch(cases, ["scratch", "ssl-masked", "ssl-half"], [1.0])
    assert [c["p_holm"] for c in without] == [c["p_holm"] for c in ssl]  # the SSL p-values do not move


def test_a_reference_store_with_another_split_is_refused(small_phantom, small_store, tmp_path, monkeypatch):
    from sidepair.config import PreprocessSettings
    from sidepair.data.formats import open_dataset
    from sidepair.data.prepare import prepare
    from sidepair.data.store import Store
    from sidepair.errors import StoreError
    from sidepair.experiment import runner

    (tmp_path / "nnUNetPlans.json").write_text("{}", encoding="utf-8")
    config = load_experiment_config(
        write(tmp_path, {**BASE, "reference": {"plans": "nnUNetPlans.json", "configuration": "2d"}})
    )
    settings = PreprocessSettings(spacing_zyx=(5.0, 5.0, 5.0))
    same = prepare(open_dataset(small_phantom), tmp_path / "same", settings)
    other = prepare(open_dataset(small_phantom), tmp_path / "other", settings, split_seed=7)
    assert sorted(Store(other).labelled("test")) != sorted(Store(small_store).labelled("test"))
    for store, ok in ((same, True), (other, False)):
        monkeypatch.setattr(runner, "_prepare_data", lambda *args, s=store: s)
        if ok:
            assert runner._prepare_reference(config, tmp_path, False, Store(small_store), settings) == same
        else:
            with pytest.raises(StoreError, match=r"the reference arm's (train|val|test) split differs"):
                runner._prepare_reference(config, tmp_path, False, Store(small_store), settings)
