"""The held-out face photos and their boxes, as ``bench_faces`` reads them."""

from PIL import Image

from benchmarks import bench_faces, faces_album


def test_every_album_photo_is_shipped_with_boxes_inside_it():
    shipped = {p.stem for p in faces_album.ALBUM.glob("*.jpg")}
    assert shipped == set(faces_album.REQUIRED) and len(shipped) == 19
    assert set(faces_album.OPTIONAL) <= shipped
    for truth in (faces_album.REQUIRED, faces_album.OPTIONAL):
        for name, boxes in truth.items():
            with Image.open(faces_album.ALBUM / f"{name}.jpg") as image:
                width, height = image.size
            for left, top, right, bottom in boxes.values():
                assert 0 <= left < right <= width and 0 <= top < bottom <= height, name


def test_scoring_counts_hits_optional_faces_and_false_boxes():
    truth = faces_album.REQUIRED["wayne"]
    hit, extra, false = bench_faces.score("wayne", [truth["man in white"], (0, 0, 20, 20)])
    assert hit == ["man in white"] and extra == [] and false == [(0, 0, 20, 20)]
    tiny = faces_album.OPTIONAL["bar55_2"]["tiny dark faces behind, left"]
    hit, extra, false = bench_faces.score("bar55_2", [tiny, tiny])  # tiny ones match often
    assert hit == [] and len(extra) == 2 and false == []
