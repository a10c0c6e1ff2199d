"""Recreate the example images (needs scikit-image for the astronaut photograph).

astronaut_photo.jpg: scikit-image's portrait of astronaut Eileen Collins (NASA, public
domain), the whole 512x512 photograph as it is (JPEG, quality 95), for `fill` to find,
align, fill and put back. astronaut.png: the same portrait scaled and cropped to the
layout of CelebA's aligned faces (178x218, eyes level near row 111, 38 pixels apart) so
the `celeba` preprocessing sees the face the way the model was trained to.
house_number.png: digits drawn by this script.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).parent
EYES = ((204, 102), (247, 103))  # eye centres in the 512x512 photograph
CELEBA_EYES_CENTRE, CELEBA_EYE_DISTANCE, CELEBA_SIZE = (88, 111), 38, (178, 218)


def astronaut() -> Image.Image:
    from skimage import data

    photo = data.astronaut()
    scale = CELEBA_EYE_DISTANCE / (EYES[1][0] - EYES[0][0])
    cx, cy = (EYES[0][0] + EYES[1][0]) / 2, (EYES[0][1] + EYES[1][1]) / 2
    w, h = round(CELEBA_SIZE[0] / scale), round(CELEBA_SIZE[1] / scale)
    left, top = round(cx - CELEBA_EYES_CENTRE[0] / scale), round(cy - CELEBA_EYES_CENTRE[1] / scale)
    pad = max(0, -top)  # the photograph ends above the hair: repeat its top rows
    padded = np.pad(photo, ((pad, 0), (0, 0), (0, 0)), mode="edge")
    crop = padded[top + pad : top + pad + h, left : left + w]
    return Image.fromarray(crop).resize(CELEBA_SIZE, Image.LANCZOS)


def astronaut_photo() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def house_number() -> Image.Image:
    im = Image.new("RGB", (32, 32), (46, 84, 140))
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=22)
    draw.text((16, 16), "47", fill=(235, 235, 225), font=font, anchor="mm")
    return im


if __name__ == "__main__":
    astronaut_photo().save(HERE / "astronaut_photo.jpg", quality=95)
    astronaut().save(HERE / "astronaut.png")
    house_number().save(HERE / "house_number.png")
