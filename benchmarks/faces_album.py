"""Faces counted by eye on photos the detection rules were never tuned on.

The photos are the rest of KPhotoAlbum 5.9.1's demo album (Debian package
``kphotoalbum``, GPL-2+; the five shared targets from that album are left out), shipped in
``benchmarks/data/faces-album/`` (see its ``SOURCES.md``): nine photos with people (couples,
pool players, a close-up, a man in a woolly hat against the light, a profile) and ten
without (a dog, a rabbit, fish, landscapes, planes), which test precision: animals'
faces are what a face detector most often takes for people. Four photos are stored
upright (the album keeps their rotation in its index, not in EXIF).

Boxes are (left, top, right, bottom) in the photos' pixels, drawn by eye on a 50 px grid;
the matching rule is ``bench_faces``' (centre inside or IoU >= 0.3).
"""

from __future__ import annotations

from pathlib import Path

Box = tuple[int, int, int, int]

ALBUM = Path(__file__).resolve().parent / "data" / "faces-album"

REQUIRED: dict[str, dict[str, Box]] = {
    "bar55_2": {"blond woman": (255, 105, 380, 255), "man": (375, 80, 510, 235)},
    "blackie": {},
    "donna": {},
    "donna_2": {},
    "grand_canyon_1": {"man, wind-blown": (125, 90, 200, 185),
                       "woman, squinting": (330, 160, 410, 255)},
    "grand_canyon_2": {"man in a woolly hat, eyes shut": (350, 235, 420, 320)},
    "grand_canyon_3": {},
    "jesper_2": {"man, close-up": (250, 100, 560, 430)},
    "new_wave_1": {"man, head on his hand": (320, 195, 440, 300)},
    "new_wave_2": {"young man, close-up": (270, 130, 545, 450)},
    "pool": {"man in red, profile": (280, 110, 360, 205),
             "man in white": (545, 100, 585, 155)},
    "pool_2": {"man in the dark": (220, 40, 290, 120)},
    "skagen": {},
    "skagen_2": {},
    "snow": {},
    "spiff": {},
    "spiff_2": {},
    "sunset": {},
    "wayne": {"man in white": (165, 245, 225, 320), "man in red, glasses": (470, 265, 525, 330)},
}
OPTIONAL: dict[str, dict[str, Box]] = {
    "bar55_2": {"tiny dark faces behind, left": (20, 190, 100, 260),
                "tiny dark faces behind, right": (680, 240, 745, 310)},
    "new_wave_2": {"man in the poster, right": (540, 95, 600, 160),
                   "tiny people in the poster, left": (0, 150, 250, 230)},
}
