import numpy as np
import pytest

from firmware.render import noise as nz


def test_model_noise_is_the_block_mean_of_the_display_noise():
    tiles = nz.layout_tiles("diptych", 320, 180)
    vn = nz.make_visitor_noise(5, tiles, 320, 180, (32, 32))
    assert vn.screen_u8.shape == (180, 320, 3) and vn.model_eps.shape == (2, 3, 32, 32)
    # unit variance at both resolutions
    assert vn.model_eps.std() == pytest.approx(1.0, rel=0.1)
    eps_screen = (vn.screen_u8.astype(np.float32) - nz.EPS_ZERO) / nz.EPS_SCALE
    assert eps_screen.std() == pytest.approx(1.0, rel=0.1)
    # The visible crop of tile 0 (160 x 180 in a square of side 192, k = 6): block means of the screen
    # noise agree with the model noise where the blocks are fully visible.
    tile = tiles[0]
    side = nz.square_side(tile, 32)
    k = side // 32
    oy, ox = nz.crop_offsets(side, tile)
    by, bx = (oy + k - 1) // k, (ox + k - 1) // k  # first fully visible block row / column
    rows = slice(by * k - oy, (by + 4) * k - oy)
    cols = slice(bx * k - ox, (bx + 4) * k - ox)
    block = eps_screen[rows, cols].reshape(4, k, 4, k, 3).mean(axis=(1, 3)) * k
    model = vn.model_eps[0][:, by:by + 4, bx:bx + 4].transpose(1, 2, 0)
    # only the screen noise's quantisation differs: 1/64 per pixel, times k in the block mean
    assert np.abs(block - model).max() < 0.2


def test_dissolve_is_the_variance_preserving_forward_process():
    rng = np.random.default_rng(0)
    pic = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    eps = rng.standard_normal((64, 64, 3)).astype(np.float32)
    e8 = nz.quantise_eps(eps)
    for sigma in (0.1, 1.0, 5.0):
        got = nz.dissolve(pic, e8, sigma).astype(np.float32)
        x0 = pic.astype(np.float32) / 127.5 - 1
        epsq = (e8.astype(np.float32) - nz.EPS_ZERO) / nz.EPS_SCALE
        want = np.clip(((x0 + sigma * epsq) / np.sqrt(1 + sigma ** 2) + 1) * 127.5, 0, 255)
        assert np.abs(got - want).max() <= 1.01


def test_cover_fills_without_bars():
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :, 0] = 200
    out = nz.cover(img, 160, 90)
    assert out.shape == (90, 160, 3) and (out[..., 0] > 150).all()


@pytest.mark.parametrize("peak", [5.0, 80.0])
def test_the_held_sea_of_noise_is_the_configured_peak(peak):
    """Emergence before the first image: the visitor stays dissolved at [show] sigma_peak, not at 80."""
    from firmware.render.compositor import Compositor
    from firmware.show.machine import Cue, State

    comp = Compositor(64, 48, "full", 16, sigma_peak=peak)
    camera = np.full((48, 64, 3), 200, np.uint8)
    eps = nz.quantise_eps(np.random.default_rng(0).standard_normal((48, 64, 3)))
    cue = Cue(State.EMERGENCE, 0.0, 1, 0.5, 1.0, 0.0, 0.0, 1.0)
    got = comp.compose(cue, np.zeros_like(camera), camera, eps, None, None).copy()
    want = np.empty_like(camera)
    nz.dissolve(camera, eps, peak, out=want)
    assert np.array_equal(got, want)
