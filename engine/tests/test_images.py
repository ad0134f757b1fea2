"""A request's images (images.py): fitted to the video's size as `fit` says, turned upright by their EXIF
orientation, and refused (bad_request, naming the field) when they cannot be read, do not have the request's
SHA-256 or do not decode. Torch-free, like the module."""

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from reel_engine import images, protocol
from reel_engine.images import ImageError

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def thirds(width=300, height=100) -> Image.Image:
    """Left third red, middle third green, right third blue."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 3] = RED
    pixels[:, width // 3: 2 * width // 3] = GREEN
    pixels[:, 2 * width // 3:] = BLUE
    return Image.fromarray(pixels)


def ref(path) -> protocol.ImageRef:
    return protocol.ImageRef(str(path), hashlib.sha256(path.read_bytes()).hexdigest())


def close(pixel, colour, tolerance=12) -> bool:
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def test_cover_scales_to_cover_and_crops_the_centre():
    out = np.asarray(images.fit_image(thirds(), 64, 64, "cover"))
    assert out.shape == (64, 64, 3)
    # The centre 100x100 of the 300x100 picture is its green third: nothing of the red or blue ones is left (but
    # for the filter's reach across the crop's edges in the outermost columns).
    assert all(close(p, GREEN) for p in out[:, 3:-3].reshape(-1, 3))
    assert out[..., 0].max() < 128 and out[..., 2].max() < 128


def test_contain_scales_to_fit_inside_and_pads_with_black():
    out = np.asarray(images.fit_image(thirds(), 64, 64, "contain"))
    assert out.shape == (64, 64, 3)
    # 300x100 scaled into 64x64 is 64x21, centred: black bars above and below, the three colours side by side.
    rows = [y for y in range(64) if out[y].max() > 0]
    assert (rows[0], rows[-1]) == (22, 42)
    assert not out[:22].any() and not out[43:].any()
    middle = out[31]
    assert close(middle[5], RED) and close(middle[32], GREEN) and close(middle[58], BLUE)


def test_stretch_resizes_to_exactly_the_size():
    out = np.asarray(images.fit_image(thirds(), 64, 64, "stretch"))
    assert out.shape == (64, 64, 3)
    # The whole picture, squeezed horizontally and stretched vertically: all three colours over the full height.
    for y in (0, 32, 63):
        assert close(out[y][5], RED) and close(out[y][32], GREEN) and close(out[y][58], BLUE)


def test_an_image_of_the_video_size_is_kept_as_it_is():
    picture = thirds(96, 64)
    for fit in images.FITS:
        assert np.array_equal(np.asarray(images.fit_image(picture, 96, 64, fit)), np.asarray(picture)), fit


def test_the_exif_orientation_is_applied(tmp_path):
    """A JPEG stored 120 wide and 40 high whose EXIF says "rotate 90° clockwise to display" (orientation 6) is the
    40x120 picture people see, its stored top row on the right."""
    stored = np.zeros((40, 120, 3), np.uint8)
    stored[:8] = RED  # the stored top rows
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, format="JPEG", quality=95, exif=exif.tobytes())
    loaded = images.load("image", ref(path), 40, 120, "stretch")
    assert (loaded.width, loaded.height) == (40, 120)  # the source size after the orientation
    upright = np.asarray(loaded.image)
    assert close(upright[60][36], RED, 40) and close(upright[60][4], (0, 0, 0), 40)
    assert loaded.record() == {"sha256": ref(path).sha256, "width": 40, "height": 120, "fit": "stretch"}


@pytest.mark.parametrize("format, mode", [("PNG", "RGBA"), ("JPEG", "L"), ("WEBP", "RGB"), ("PNG", "P")])
def test_png_jpeg_and_webp_in_any_mode_become_rgb(tmp_path, format, mode):
    path = tmp_path / f"picture.{format.lower()}"
    thirds(90, 30).convert(mode).save(path, format=format)
    loaded = images.load("last_image", ref(path), 64, 32, "cover")
    assert loaded.image.mode == "RGB" and loaded.image.size == (64, 32) and (loaded.width, loaded.height) == (90, 30)


def test_a_sha256_mismatch_is_refused_naming_the_field(tmp_path):
    path = tmp_path / "a.png"
    thirds().save(path)
    wrong = protocol.ImageRef(str(path), "0" * 64)
    with pytest.raises(ImageError) as info:
        images.load("image", wrong, 64, 64, "cover")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.value.code == "bad_request"
    assert str(info.value) == f"image: the SHA-256 of {path} is {actual}, not the request's {'0' * 64}"


def test_a_truncated_file_is_refused_naming_the_field(tmp_path):
    buffer = io.BytesIO()
    thirds().save(buffer, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageError, match=rf"^last_image: {path} is not a decodable PNG, JPEG or WebP image \("):
        images.load("last_image", ref(path), 64, 64, "cover")


@pytest.mark.parametrize("content, fragment", [
    (b"not an image at all", "is not a decodable PNG, JPEG or WebP image"),
    (None, "is a GIF image; expected PNG, JPEG or WebP"),
])
def test_other_files_are_refused(tmp_path, content, fragment):
    path = tmp_path / "file"
    if content is None:
        thirds().save(path, format="GIF")
    else:
        path.write_bytes(content)
    with pytest.raises(ImageError, match=fragment) as info:
        images.load("image", ref(path), 64, 64, "cover")
    assert str(info.value).startswith(f"image: {path} ")


def test_a_missing_file_is_refused_naming_the_field(tmp_path):
    with pytest.raises(ImageError) as info:
        images.load("image", protocol.ImageRef(str(tmp_path / "gone.png"), "a" * 64), 64, 64, "cover")
    assert str(info.value) == f"image: cannot read {tmp_path / 'gone.png'}: No such file or directory"


def test_a_requests_images_and_their_records(tmp_path):
    path = tmp_path / "a.png"
    thirds(120, 60).save(path)
    req = protocol.GenerateRequest(job="j", prompt="p", negative_prompt="", width=64, height=32, frames=5, steps=1,
                                   guidance=1.0, seed=0, out_dir="/tmp/x", image=ref(path), fit="contain")
    loaded = images.load_request_images(req)
    assert loaded["last_image"] is None and loaded["image"].image.size == (64, 32)
    assert images.records(loaded) == {
        "image": {"sha256": ref(path).sha256, "width": 120, "height": 60, "fit": "contain"}, "last_image": None}
    assert images.records(None) == {"image": None, "last_image": None}
