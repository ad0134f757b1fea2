"""The images of a generate request (`image`, and `last_image` for first-last-frame to video): each file is read once,
checked against the SHA-256 the request gives, decoded with PIL (PNG, JPEG or WebP), turned upright by its EXIF
orientation, converted to RGB and fitted to the video's width x height, all before the job encodes any text or
touches the device. Torch-free: the real job runner (jobs.py) and the scripted one (scripted_jobs.py) both load a
request's images here, so both refuse the same files with the same `bad_request` errors and record the same facts
in job.json.

A file that cannot be read, whose bytes do not have the request's SHA-256, or that does not decode is a
`bad_request` naming the field (`image: …`): the request, not the engine, is wrong. The bytes that were hashed are
the bytes that are decoded, so a file replaced between the two cannot slip through.

Fitting (`fit`), with PIL's Lanczos filter (the filter diffusers' VaeImageProcessor resizes with):
- `cover` (the default): scaled to cover the whole frame, the excess cropped equally from both sides;
- `contain`: scaled to fit inside the frame, the rest black, the picture centred;
- `stretch`: resized to exactly width x height, the aspect ratio not kept.
The fitted image is exactly the video's size, so the diffusers pipelines' own resize of it is a no-op.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from .jobflow import JobFailure

FITS = ("cover", "contain", "stretch")
DEFAULT_FIT = "cover"
FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}  # PIL's format name -> the name in messages
IMAGE_FIELDS = ("image", "last_image")


class ImageError(JobFailure):
    """An image of the request cannot be used: a `bad_request` whose message starts with the field's name."""

    code = "bad_request"


@dataclass(frozen=True)
class JobImage:
    """One checked, decoded and fitted image of a request."""

    field: str  # "image" or "last_image"
    sha256: str
    width: int  # the source's pixels, after its EXIF orientation
    height: int
    fit: str
    image: object  # PIL.Image.Image, mode RGB, exactly the video's width x height

    def record(self) -> dict:
        """What job.json records about it."""
        return {"sha256": self.sha256, "width": self.width, "height": self.height, "fit": self.fit}


def fit_image(image, width: int, height: int, fit: str):
    """`image` (RGB) fitted to exactly width x height as `fit` says (see the module docstring)."""
    from PIL import Image, ImageOps

    lanczos = Image.Resampling.LANCZOS
    if fit == "cover":
        return ImageOps.fit(image, (width, height), method=lanczos, centering=(0.5, 0.5))
    if fit == "contain":
        return ImageOps.pad(image, (width, height), method=lanczos, color=(0, 0, 0), centering=(0.5, 0.5))
    if fit == "stretch":
        return image.resize((width, height), lanczos)
    raise ValueError(f"fit must be one of {', '.join(FITS)}, not {fit!r}")


def decode(field: str, data: bytes, path: str):
    """The upright RGB image in `data` (PNG, JPEG or WebP); ImageError naming `field` if it does not decode."""
    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as opened:
            kind = opened.format
            if kind not in FORMATS:
                raise ImageError(f"{field}: {path} is a {kind or 'unknown'} image; expected PNG, JPEG or WebP")
            opened.load()  # decodes every pixel now: a truncated or corrupt file fails here
            upright = ImageOps.exif_transpose(opened)
            return upright.convert("RGB")
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"{field}: {path} is refused: {e}") from None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, EOFError, … for broken files
        raise ImageError(f"{field}: {path} is not a decodable PNG, JPEG or WebP image "
                         f"({type(e).__name__}: {e})") from None


def load(field: str, ref, width: int, height: int, fit: str) -> JobImage:
    """Reads `ref` (protocol.ImageRef: path, sha256), checks its SHA-256, decodes and fits it to width x height."""
    try:
        with open(ref.path, "rb") as f:
            data = f.read()
    except (OSError, ValueError) as e:  # ValueError: a path with a NUL byte
        raise ImageError(f"{field}: cannot read {ref.path}: {getattr(e, 'strerror', None) or e}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != ref.sha256:
        raise ImageError(f"{field}: the SHA-256 of {ref.path} is {digest}, not the request's {ref.sha256}")
    image = decode(field, data, ref.path)
    source_width, source_height = image.size
    return JobImage(field=field, sha256=digest, width=source_width, height=source_height, fit=fit,
                    image=fit_image(image, width, height, fit))


def load_request_images(req) -> dict:
    """{"image": JobImage or None, "last_image": JobImage or None} for a generate request."""
    return {field: load(field, getattr(req, field), req.width, req.height, req.fit)
            if getattr(req, field) is not None else None for field in IMAGE_FIELDS}


def records(images: dict | None) -> dict:
    """job.json's `image` and `last_image`: each image's record, or None."""
    images = images or {}
    return {field: images[field].record() if images.get(field) is not None else None for field in IMAGE_FIELDS}
