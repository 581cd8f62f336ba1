import pytest

from convviz import cli


def test_help_lists_the_demo(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    assert "demo" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_writes_model_curves_and_figures(tmp_path, monkeypatch):
    from convviz import data

    small = data.make_offline_dataset(tmp_path / "data", n_train=16, n_val=8, n_test=8)
    assert cli.main(["demo", "--out", str(tmp_path / "out"), "--epochs", "1", "--data", str(small)]) == 0
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"small_convnet.keras", "history.png", "activations_chelsea.png", "gradcam.png",
            "sparsity.png", "sparsity.csv"} <= written
