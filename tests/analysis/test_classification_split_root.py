"""detkit analyze on a split root (split/train, split/val): one line naming the split folder to give as IMG_DIR."""

import cv2
import numpy as np

from detkit.cli.analyze import main


def test_a_split_root_names_the_split_the_predictions_came_from(tmp_path, capsys):
    root = tmp_path / "split"
    for split in ("train", "val"):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
            cv2.imwrite(str(root / split / name / "x.png"), np.zeros((8, 8, 3), np.uint8))
    preds = tmp_path / "predictions.csv"
    preds.write_text(f"file,frame,label_1,score_1\n{root / 'val' / 'a' / 'x.png'},,a,0.9\n")
    out = tmp_path / "ana"
    assert main([str(root), str(preds), "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert "give the split the predictions came from as IMG_DIR, e.g. " + str(root / "val") in err, err
    assert "data.train" not in err, err
    assert not out.exists()
