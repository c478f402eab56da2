"""Box label readers: YOLO text (ground truth and predictions) and M3FD's VOC XML, good and malformed files."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from data.pairs import PairingError
from downstream.detection.dataset import (DetectionSet, checked_pairs, load_ground_truth, pair_images_labels,
                                          read_predictions)
from downstream.detection.labels import (M3FD_CLASSES, LabelError, LabelWarning, make_boxes, read_labels,
                                         read_voc, read_yolo, write_yolo, xml_image_size)

VOC = """<annotation>
  <filename>00001.png</filename>
  <size><width>200</width><height>100</height><depth>3</depth></size>
  <object>
    <name>People</name>
    <bndbox><xmin>10</xmin><ymin>20</ymin><xmax>30</xmax><ymax>80</ymax></bndbox>
  </object>
  <object>
    <name>truck</name>
    <bndbox><xmin>100.5</xmin><ymin>40</ymin><xmax>190</xmax><ymax>90</ymax></bndbox>
  </object>
</annotation>
"""


def write(path, text):
    path.write_text(text)
    return path


def test_yolo_ground_truth_in_pixels(tmp_path):
    f = write(tmp_path / "a.txt", "0 0.5 0.5 0.2 0.4\n\n5 0.25 0.75 0.1 0.1\n")
    b = read_yolo(f, 6, 200, 100)
    np.testing.assert_allclose(b.xyxy, [[80, 30, 120, 70], [40, 70, 60, 80]])
    assert b.labels.tolist() == [0, 5] and b.scores is None


def test_yolo_predictions_round_trip(tmp_path):
    boxes = make_boxes([[10, 20, 50, 60], [0, 0, 200, 100]], [1, 3], [0.9, 0.25])
    write_yolo(tmp_path / "p.txt", boxes, 200, 100)
    back = read_yolo(tmp_path / "p.txt", 6, 200, 100, with_conf=True)
    np.testing.assert_allclose(back.xyxy, boxes.xyxy, atol=1e-3)
    np.testing.assert_allclose(back.scores, [0.9, 0.25])
    assert back.labels.tolist() == [1, 3]


def test_empty_file_means_no_objects(tmp_path):
    assert len(read_yolo(write(tmp_path / "e.txt", ""), 6, 10, 10)) == 0
    assert len(read_voc(write(tmp_path / "e.xml", "<annotation><size><width>5</width><height>5</height></size>"
                                                  "</annotation>"), M3FD_CLASSES)) == 0


@pytest.mark.parametrize("text, line, words", [
    ("0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2\n", 2, "expected 5 values"),
    ("0 0.5 0.5 0.2 0.2\n\n\nx 0.5 0.5 0.2 0.2\n", 4, "not a number"),
    ("7 0.5 0.5 0.2 0.2\n", 1, "not an integer in 0..5"),
    ("1.5 0.5 0.5 0.2 0.2\n", 1, "not an integer"),
    ("0 0.5 0.5 -0.2 0.2\n", 1, "negative box size"),
    ("0 0.5 nan 0.2 0.2\n", 1, "non-finite"),
])
def test_malformed_yolo_names_file_and_line(tmp_path, text, line, words):
    f = write(tmp_path / "bad.txt", text)
    with pytest.raises(LabelError) as err:
        read_yolo(f, 6, 100, 100)
    assert str(err.value).startswith(f"{f}, line {line}:") and words in str(err.value)


def test_prediction_needs_a_confidence_in_range(tmp_path):
    with pytest.raises(LabelError, match=r"line 1: expected 6 values"):
        read_yolo(write(tmp_path / "p.txt", "0 0.5 0.5 0.2 0.2\n"), 6, 100, 100, with_conf=True)
    with pytest.raises(LabelError, match=r"line 1: confidence 1.5 is outside"):
        read_yolo(write(tmp_path / "q.txt", "0 0.5 0.5 0.2 0.2 1.5\n"), 6, 100, 100, with_conf=True)


def test_box_outside_the_image_is_clipped_with_a_warning(tmp_path):
    f = write(tmp_path / "c.txt", "0 0.95 0.5 0.2 0.2\n1 1.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n")
    with pytest.warns(LabelWarning) as rec:
        b = read_yolo(f, 6, 100, 100)
    messages = [str(r.message) for r in rec]
    assert any("clipped to [85.0, 40.0, 100.0, 60.0]" in m and str(f) in m for m in messages)
    assert any("no area inside the 100x100 image; dropped" in m for m in messages)  # the second box lies wholly outside
    np.testing.assert_allclose(b.xyxy, [[85, 40, 100, 60], [40, 40, 60, 60]])
    assert b.labels.tolist() == [0, 2]
    # predictions: one warning per file; boxes without area are kept (they are false positives)
    p = write(tmp_path / "p.txt", "0 0.95 0.5 0.2 0.2 0.9\n1 1.5 0.5 0.2 0.2 0.8\n")
    with pytest.warns(LabelWarning, match=r"p.txt: 2 predicted box\(es\) reach outside the 100x100 image"):
        b = read_yolo(p, 6, 100, 100, with_conf=True)
    np.testing.assert_allclose(b.xyxy, [[85, 40, 100, 60], [100, 40, 100, 60]])


def test_voc_reader_m3fd_classes(tmp_path):
    f = write(tmp_path / "00001.xml", VOC)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to clip here
        b = read_voc(f, M3FD_CLASSES)
    np.testing.assert_allclose(b.xyxy, [[10, 20, 30, 80], [100.5, 40, 190, 90]])
    assert b.labels.tolist() == [0, 5]  # People, Truck (names match case-insensitively)
    assert xml_image_size(f) == (200, 100)
    assert read_labels(f, M3FD_CLASSES, 200, 100).labels.tolist() == [0, 5]


@pytest.mark.parametrize("text, line, words", [
    (VOC.replace("<name>truck</name>", "<name>Dog</name>"), 9, "unknown class 'Dog'"),
    (VOC.replace("</bndbox>\n  </object>\n  <object>", "</bndbox>\n  <object>", 1), 11, "not well-formed XML"),
    (VOC.replace("<xmax>30</xmax>", "<xmax>abc</xmax>"), 6, "<xmax> is not a number"),
    (VOC.replace("<ymin>20</ymin>", ""), 6, "has no <ymin>"),
    (VOC.replace("<xmax>30</xmax>", "<xmax>5</xmax>"), 6, "xmax < xmin"),
    ("<root/>", 1, "expected <annotation>"),
])
def test_malformed_voc_names_file_and_line(tmp_path, text, line, words):
    f = write(tmp_path / "bad.xml", text)
    with pytest.raises(LabelError) as err:
        read_voc(f, M3FD_CLASSES)
    assert str(err.value).startswith(f"{f}, line {line}:"), str(err.value)
    assert words in str(err.value)


def test_voc_size_must_match_the_image(tmp_path):
    f = write(tmp_path / "00001.xml", VOC)
    with pytest.raises(LabelError, match=r"<size> says 200x100 but the image .* is 640x480"):
        load_ground_truth(f, M3FD_CLASSES, 640, 480, tmp_path / "00001.png")


def test_pairing_reports_every_mismatch_per_file(tmp_path):
    import cv2
    img, lab = tmp_path / "img", tmp_path / "lab"
    img.mkdir()
    lab.mkdir()
    for n in ("a", "b", "c"):
        cv2.imwrite(str(img / f"{n}.png"), np.zeros((8, 10, 3), np.uint8))
    write(lab / "a.txt", "0 0.5 0.5 0.5 0.5\n")
    write(lab / "b.txt", "")
    write(lab / "b.xml", VOC)
    write(lab / "z.txt", "")
    pairing = pair_images_labels(img, lab)
    assert [p[0] for p in pairing.pairs] == ["a", "b"]
    assert pairing.problems() == [f"{img / 'c.png'}: image has no label file",
                                  f"{lab / 'z.txt'}: label file has no image",
                                  f"{lab / 'b.xml'}: ignored, another label file has the same base name"]
    lines = []
    with pytest.raises(PairingError, match=r"no label file for 1 image\(s\) \(e.g. c.png"):
        checked_pairs(pairing, lab, report=lines.append)
    assert len(lines) == 3
    pairs = checked_pairs(pairing, lab, allow_missing=True, report=lines.append)
    data = DetectionSet(pairs, M3FD_CLASSES)
    image, target, _ = data[0]
    assert image.shape == (3, 8, 10) and target["boxes"].tolist() == [[2.5, 2.0, 7.5, 6.0]]
    assert data[1][1]["boxes"].shape == (0, 4)


def test_missing_prediction_files_mean_no_detections(tmp_path):
    write(tmp_path / "a.txt", "0 0.5 0.5 0.5 0.5 0.8\n")
    write(tmp_path / "stray.txt", "")
    lines = []
    preds = read_predictions(tmp_path, [("a", 10, 10), ("b", 10, 10)], 6, report=lines.append)
    assert [len(p) for p in preds] == [1, 0]
    assert any("stray.txt: prediction file has no image" in ln for ln in lines)
    assert any("1 image(s) have no prediction file" in ln for ln in lines)
