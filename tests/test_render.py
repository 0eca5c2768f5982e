import numpy as np
from PIL import Image

from mosaic.layout import Layout
from mosaic.render import render_mosaic
from tests.conftest import write_jpeg


def test_render_places_each_photo_on_its_tile(tmp_path):
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0), (0, 250, 250),
               (250, 0, 250)]
    paths = [write_jpeg(tmp_path / f"{i}.jpg", c, size=(60, 40)) for i, c in enumerate(colours)]
    layout = Layout(rows=2, cols=3, tile_px=20, crop=(0, 0, 60, 40), target_size=(60, 40))
    sources = [(str(p), (1 / 6, 0.0, 5 / 6, 1.0)) for p in paths]
    out = render_mosaic(layout, sources, tmp_path / "out" / "mosaic.png", dpi=300)
    with Image.open(out) as image:
        assert image.size == (60, 40)
        assert round(image.info["dpi"][0]) == 300
        pixels = np.asarray(image.convert("RGB")).astype(int)
    for index, colour in enumerate(colours):
        row, col = divmod(index, 3)
        centre = pixels[row * 20 + 10, col * 20 + 10]
        assert np.abs(centre - colour).max() < 12
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mosaic.png"]
